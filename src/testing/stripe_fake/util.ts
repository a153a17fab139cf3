/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHash, randomBytes } from 'node:crypto'
import { invalidRequest } from './errors.ts'

/**
 * A Stripe object as the fake stores it (plain JSON).
 */
export type Obj = Record<string, any>

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/**
 * A random base62 string.
 */
export function randomToken(length: number): string {
  const bytes = randomBytes(length)
  let out = ''
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i] % 62]
  return out
}

/**
 * A Stripe-like id: `prefix` followed by random base62 characters.
 */
export function makeId(prefix: string, length = 24): string {
  return `${prefix}${randomToken(length)}`
}

/**
 * A stable id derived from `parts` (same input, same id).
 */
export function stableId(prefix: string, ...parts: unknown[]): string {
  const digest = createHash('sha256').update(JSON.stringify(parts)).digest()
  let out = ''
  for (let i = 0; i < 24; i++) out += ALPHABET[digest[i] % 62]
  return `${prefix}${out}`
}

/**
 * Deep copy of a JSON value.
 */
export function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T)
}

/**
 * Whether two JSON values are equal.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/**
 * `numerator / denominator` rounded half up (away from zero for negatives), on integers, exactly.
 */
export function roundHalfUp(numerator: number, denominator: number): number {
  const n = BigInt(Math.round(numerator))
  const d = BigInt(Math.round(denominator))
  if (d === 0n) return 0
  const negative = n < 0n !== d < 0n
  const an = n < 0n ? -n : n
  const ad = d < 0n ? -d : d
  const q = (2n * an + ad) / (2n * ad)
  return Number(negative ? -q : q)
}

/**
 * `amount * factorNumerator / factorDenominator`, rounded half up, computed without float error.
 */
export function prorate(amount: number, factorNumerator: number, factorDenominator: number): number {
  const product = BigInt(amount) * BigInt(factorNumerator)
  const d = BigInt(factorDenominator)
  if (d === 0n) return 0
  const negative = product < 0n !== d < 0n
  const an = product < 0n ? -product : product
  const ad = d < 0n ? -d : d
  const q = (2n * an + ad) / (2n * ad)
  return Number(negative ? -q : q)
}

/**
 * Fixed-point scale of decimal amounts (Stripe allows 12 decimal places in `*_decimal` fields).
 */
export const PICO = 10n ** 12n

/**
 * Parses a decimal amount in minor units (`'0.05'`, `'2000'`) into units of 1e-12 minor units.
 */
export function toPico(value: string | number, name: string): bigint {
  const text = String(value).trim()
  const match = /^(\d+)(?:\.(\d{1,12}))?$/.exec(text)
  if (!match) throw invalidRequest(`Invalid decimal: ${text}`, { param: name })
  return BigInt(match[1]) * PICO + BigInt((match[2] ?? '').padEnd(12, '0') || '0')
}

/**
 * Formats a fixed-point amount like Stripe's `*_decimal` fields (`'0.05'`, `'2000'`).
 */
export function picoToDecimal(pico: bigint): string {
  const whole = pico / PICO
  const fraction = (pico % PICO).toString().padStart(12, '0').replace(/0+$/, '')
  return fraction ? `${whole}.${fraction}` : String(whole)
}

/**
 * Rounds a fixed-point amount to whole minor units, half up.
 */
export function picoToMinor(pico: bigint): number {
  const negative = pico < 0n
  const abs = negative ? -pico : pico
  const rounded = (abs * 2n + PICO) / (2n * PICO)
  return Number(negative ? -rounded : rounded)
}

/**
 * Adds `count` billing intervals to a unix timestamp, the way Stripe rolls periods (calendar months,
 * day clamped to the month's length, in UTC).
 */
export function addInterval(timestamp: number, interval: string, count = 1): number {
  if (interval === 'day') return timestamp + 86_400 * count
  if (interval === 'week') return timestamp + 7 * 86_400 * count
  const months = interval === 'year' ? 12 * count : count
  const date = new Date(timestamp * 1000)
  const day = date.getUTCDate()
  const target = new Date(date.getTime())
  target.setUTCDate(1)
  target.setUTCMonth(target.getUTCMonth() + months)
  const lastDay = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate()
  target.setUTCDate(Math.min(day, lastDay))
  return Math.floor(target.getTime() / 1000)
}

/**
 * "15 Jan 2025" in UTC, as Stripe writes dates in proration descriptions.
 */
export function formatDate(timestamp: number): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
  const date = new Date(timestamp * 1000)
  return `${date.getUTCDate()} ${months[date.getUTCMonth()]} ${date.getUTCFullYear()}`
}

/**
 * Reads an optional string parameter.
 */
export function str(value: unknown, name: string): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (typeof value !== 'string') throw invalidRequest(`Invalid string: ${JSON.stringify(value)}`, { param: name })
  return value
}

/**
 * Reads an optional string parameter where '' means "unset" (null).
 */
export function nullableStr(value: unknown, name: string): string | null | undefined {
  const s = str(value, name)
  return s === '' ? null : s
}

/**
 * Reads an optional integer parameter (`Invalid integer: x` otherwise).
 */
export function int(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number' && Number.isInteger(value)) return value
  if (typeof value === 'string' && /^-?\d+$/.test(value.trim())) return Number(value.trim())
  throw invalidRequest(`Invalid integer: ${typeof value === 'string' ? value : JSON.stringify(value)}`, {
    code: 'parameter_invalid_integer',
    param: name,
  })
}

/**
 * Reads an optional decimal parameter (for percentages).
 */
export function decimal(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number' && Number.isFinite(value)) return value
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value.trim())
  throw invalidRequest(`Invalid decimal: ${String(value)}`, { param: name })
}

/**
 * Reads an optional boolean parameter (`true`/`false`).
 */
export function bool(value: unknown, name: string): boolean | undefined {
  if (value === undefined || value === '') return undefined
  if (value === true || value === 'true') return true
  if (value === false || value === 'false') return false
  throw invalidRequest(`Invalid boolean: ${String(value)}`, { param: name })
}

/**
 * Reads an optional array parameter (a scalar is read as a one-element array).
 */
export function arr(value: unknown): unknown[] | undefined {
  if (value === undefined || value === '') return undefined
  if (Array.isArray(value)) return value
  if (value && typeof value === 'object') return Object.values(value)
  return [value]
}

/**
 * Reads an optional object parameter.
 */
export function obj(value: unknown, name: string): Obj | undefined {
  if (value === undefined || value === '') return undefined
  if (value && typeof value === 'object' && !Array.isArray(value)) return value as Obj
  throw invalidRequest(`Invalid hash`, { param: name })
}

/**
 * Applies a `metadata` parameter to existing metadata with Stripe's rules: `metadata=''` clears
 * everything, `metadata[key]=''` removes one key, at most 50 keys of at most 40 characters with
 * values of at most 500 characters.
 */
export function applyMetadata(current: Obj | null | undefined, value: unknown, name = 'metadata'): Obj {
  const out: Obj = { ...(current ?? {}) }
  if (value === undefined) return out
  if (value === '' || value === null) return {}
  if (typeof value !== 'object') throw invalidRequest('Invalid hash', { param: name })
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value as Obj)
  for (const [key, raw] of entries) {
    if (key.length > 40) {
      throw invalidRequest(`Metadata keys can have a maximum length of 40 characters.`, { param: `${name}[${key}]` })
    }
    if (raw === '' || raw === null) {
      delete out[key]
      continue
    }
    const v = typeof raw === 'object' ? JSON.stringify(raw) : String(raw)
    if (v.length > 500) {
      throw invalidRequest(`Metadata values can have a maximum length of 500 characters.`, { param: `${name}[${key}]` })
    }
    out[key] = v
  }
  if (Object.keys(out).length > 50) {
    throw invalidRequest('You can have a maximum of 50 metadata keys.', { param: name })
  }
  return out
}

/**
 * Checks one allowed value (Stripe's `Invalid <param>: must be one of a, b or c`).
 */
export function oneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T | undefined {
  const s = str(value, name)
  if (s === undefined || s === '') return undefined
  if (!(allowed as readonly string[]).includes(s)) {
    const list =
      allowed.length > 1 ? `${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}` : allowed[0]
    throw invalidRequest(`Invalid ${name}: must be one of ${list}`, { param: name })
  }
  return s as T
}

/**
 * Whether a unix timestamp matches a `created`-style filter (`123` or `{ gt, gte, lt, lte }`).
 */
export function matchesRange(value: number, filter: unknown, name: string): boolean {
  if (filter === undefined || filter === '') return true
  if (typeof filter === 'string' || typeof filter === 'number') return value === int(filter, name)
  const f = filter as Obj
  const gt = int(f.gt, `${name}[gt]`)
  const gte = int(f.gte, `${name}[gte]`)
  const lt = int(f.lt, `${name}[lt]`)
  const lte = int(f.lte, `${name}[lte]`)
  if (gt !== undefined && !(value > gt)) return false
  if (gte !== undefined && !(value >= gte)) return false
  if (lt !== undefined && !(value < lt)) return false
  if (lte !== undefined && !(value <= lte)) return false
  return true
}
