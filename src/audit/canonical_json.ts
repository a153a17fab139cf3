/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

/**
 * JSON with object keys sorted at every depth and `undefined` dropped, so the same value always
 * serializes to the same bytes (the input of audit hashes).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value))
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : sortKeys(item)))
  if (value && typeof value === 'object' && isPlainObject(value)) {
    /**
     * No prototype: a `__proto__` key (JSON.parse makes it an own property) is kept and hashed,
     * not turned into a prototype assignment that drops it
     */
    const sorted: Record<string, unknown> = Object.create(null)
    for (const key of Object.keys(value).sort()) {
      const item = (value as Record<string, unknown>)[key]
      if (item !== undefined) sorted[key] = sortKeys(item)
    }
    return sorted
  }
  if (value && typeof (value as any).toJSON === 'function') return sortKeys((value as any).toJSON())
  return value
}

function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}
