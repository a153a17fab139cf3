/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

/**
 * Exact non-negative decimals with 12 fractional digits on BigInt, for usage quantities and tier
 * amounts: never a float. `Fixed` values are the decimal × 10^12.
 */
export type Fixed = bigint

export const SCALE = 10n ** 12n

const TEXT = /^(\d+)(?:\.(\d{1,12}))?$/

/**
 * Parses decimal text (as stored: canonical text on SQLite, `numeric` text on PostgreSQL) or a safe
 * integer. `null` when it is not a non-negative decimal with at most 12 fractional digits.
 */
export function parseFixed(value: unknown): Fixed | null {
  if (typeof value === 'bigint') return value >= 0n ? value * SCALE : null
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? BigInt(value) * SCALE : null
  if (typeof value !== 'string') return null
  const match = TEXT.exec(value)
  if (!match) return null
  return BigInt(match[1]) * SCALE + BigInt((match[2] ?? '').padEnd(12, '0'))
}

/**
 * Like `parseFixed`, for values read back from the database: a value that is not a decimal is a
 * corrupt row, reported with the column it came from.
 */
export function fixedOf(value: unknown, what = 'quantity'): Fixed {
  if (value === null || value === undefined) return 0n
  /**
   * A float only comes from a SQLite column not yet migrated to text: read through its shortest form
   */
  const fixed = parseFixed(typeof value === 'string' ? value.trim() : typeof value === 'number' && !Number.isInteger(value) ? String(value) : value)
  if (fixed === null) throw new Error(`Not an exact decimal ${what}: ${JSON.stringify(String(value)).slice(0, 60)}`)
  return fixed
}

/**
 * Canonical decimal text: no leading zeros, no trailing fractional zeros (`2.5`, `12`).
 */
export function fixedText(value: Fixed): string {
  const integer = value / SCALE
  const fraction = (value % SCALE).toString().padStart(12, '0').replace(/0+$/, '')
  return fraction ? `${integer}.${fraction}` : String(integer)
}

/**
 * Rounds half up to a whole number (what Stripe bills: meter values and line totals are integers).
 */
export function roundHalfUp(value: Fixed): bigint {
  return (value + SCALE / 2n) / SCALE
}

export function maxFixed(a: Fixed, b: Fixed): Fixed {
  return a > b ? a : b
}
