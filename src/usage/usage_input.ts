/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHash } from 'node:crypto'
import { canonicalJson } from '../audit/canonical_json.ts'

/**
 * Largest integer part of a usage quantity. The columns are numeric(30,12) (18 integer digits): a
 * quantity of at most 15 digits leaves room for the sum of 1000 such records in one hourly rollup,
 * and the database refuses (422, nothing stored) a rollup that would still overflow.
 */
export const MAX_QUANTITY_DIGITS = 15

const DECIMAL = new RegExp(`^\\d{1,${MAX_QUANTITY_DIGITS}}(\\.\\d{1,12})?$`)

/**
 * Deepest nesting of usage `properties` (objects and arrays).
 */
const MAX_DEPTH = 8

/**
 * Why a string cannot be stored as is (`null` when it can): both databases keep well-formed Unicode
 * only — PostgreSQL refuses NUL, SQLite re-encodes lone surrogates, so two distinct keys would collapse.
 */
export function textProblem(value: unknown, maxLength: number): string | null {
  if (typeof value !== 'string' || value.length === 0) return 'is required'
  if (value.length > maxLength) return `must be at most ${maxLength} characters`
  if (value.includes('\u0000')) return 'must not contain NUL characters'
  if (!value.isWellFormed()) return 'must be well-formed Unicode (no lone surrogates)'
  return null
}

/**
 * Why `properties` cannot be stored (`null` when they can): every key and string well-formed and
 * NUL-free (PostgreSQL's jsonb refuses `\u0000`), nesting bounded.
 */
export function propertiesProblem(value: unknown, depth = 0): string | null {
  if (depth > MAX_DEPTH) return `must nest at most ${MAX_DEPTH} levels`
  if (typeof value === 'string') return value.includes('\u0000') || !value.isWellFormed() ? 'must hold well-formed Unicode text without NUL' : null
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = propertiesProblem(item, depth + 1)
      if (problem) return problem
    }
    return null
  }
  if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes('\u0000') || !key.isWellFormed()) return 'must have well-formed keys without NUL'
      const problem = propertiesProblem(item, depth + 1)
      if (problem) return problem
    }
  }
  return null
}

/**
 * A non-negative quantity as canonical decimal text (`'2.50'` → `'2.5'`), or `null` when it is not
 * one. Numbers are read through their shortest text form, never rounded.
 */
export function quantityText(value: unknown): string | null {
  const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : value
  if (typeof text !== 'string' || !DECIMAL.test(text)) return null
  const [integer, fraction = ''] = text.split('.')
  const digits = integer.replace(/^0+(?=\d)/, '')
  const decimals = fraction.replace(/0+$/, '')
  return decimals ? `${digits}.${decimals}` : digits
}

/**
 * The hash a repeated idempotency key is compared by: what the record says, canonically.
 */
export function usagePayloadHash(record: { meter: string; quantity: string; at: string | null; properties: unknown }): string {
  return createHash('sha256').update(canonicalJson(record)).digest('hex')
}
