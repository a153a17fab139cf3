/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import { column } from '@adonisjs/lucid/orm'

/**
 * Converts a luxon DateTime to the one representation the billing tables use on every dialect:
 * an ISO-8601 UTC string with milliseconds (`2026-11-26T08:00:00.000Z`). PostgreSQL parses it into
 * `timestamptz`; SQLite stores it as text that sorts chronologically. Use it for query bindings too.
 */
export function toDbDateTime(value: DateTime): string {
  if (!value.isValid) throw new TypeError(`Invalid DateTime: ${value.invalidReason}`)
  return value.toUTC().toISO()!
}

/**
 * Reads a stored timestamp back as a UTC DateTime (pg gives Date objects, SQLite gives text).
 */
export function fromDbDateTime(value: unknown): DateTime | null {
  if (value === null || value === undefined) return null
  if (DateTime.isDateTime(value)) return value.toUTC()
  if (value instanceof Date) return DateTime.fromJSDate(value, { zone: 'utc' })
  if (typeof value === 'number') return DateTime.fromMillis(value, { zone: 'utc' })
  const text = String(value)
  const iso = DateTime.fromISO(text, { zone: 'utc' })
  return iso.isValid ? iso : DateTime.fromSQL(text, { zone: 'utc' })
}

/**
 * A UTC timestamp column (see `toDbDateTime`).
 */
export function utcDateTime(options: { autoCreate?: boolean; autoUpdate?: boolean; columnName?: string } = {}) {
  return column.dateTime({
    ...options,
    prepare: (value: DateTime | null | undefined) => (DateTime.isDateTime(value) ? toDbDateTime(value) : value),
    consume: (value: unknown) => fromDbDateTime(value),
    serialize: (value: DateTime | null) => (value ? value.toUTC().toISO() : value),
  })
}

/**
 * An integer amount of money in minor units, stored as `bigint`. pg returns bigints as strings;
 * they are turned back into numbers, refusing anything beyond Number.MAX_SAFE_INTEGER.
 */
export function minorUnits(options: { columnName?: string } = {}) {
  return column({
    ...options,
    consume: (value: unknown) => {
      if (value === null || value === undefined) return value
      const number = Number(value)
      if (!Number.isSafeInteger(number)) throw new RangeError(`Amount ${value} is not a safe integer`)
      return number
    },
  })
}

/**
 * Normalizes a decimal read from the database to a string (`'12.5'`), never a float in memory.
 */
export function normalizeDecimal(value: unknown): string | null {
  if (value === null || value === undefined) return null
  const text = typeof value === 'number' ? value.toFixed(12) : String(value)
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text
}

/**
 * A decimal quantity, kept as a string in memory.
 */
export function decimal(options: { columnName?: string } = {}) {
  return column({ ...options, consume: normalizeDecimal, prepare: (value: unknown) => (value === null || value === undefined ? value : String(value)) })
}

/**
 * SQLite hands JSON columns back as text; pg parses them, so a JSON string document (such as a grant
 * of `"unlimited"`) arrives as a plain string that is not JSON text itself.
 */
function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/**
 * A JSON document column (json on PostgreSQL, text on SQLite).
 */
export function json(options: { columnName?: string } = {}) {
  return column({
    ...options,
    prepare: (value: unknown) => (value === null || value === undefined ? null : JSON.stringify(value)),
    consume: (value: unknown) => (typeof value === 'string' ? parseJsonText(value) : (value ?? null)),
  })
}

/**
 * A boolean column (SQLite returns 0/1).
 */
export function bool(options: { columnName?: string } = {}) {
  return column({ ...options, consume: (value: unknown) => (value === null || value === undefined ? value : Boolean(value)) })
}
