/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { ResolvedUsagePrice } from '../types.ts'
import { InvalidArgumentException } from '../errors.ts'

/**
 * Fixed-point decimals with 12 fractional digits on BigInt: exact for every amount and quantity the
 * catalog and meters allow (never a float).
 */
const SCALE = 10n ** 12n

function toFixed(value: number | string): bigint {
  const text = typeof value === 'number' ? (Number.isSafeInteger(value) ? String(value) : value.toFixed(12)) : value
  const match = /^(\d+)(?:\.(\d{1,12}))?$/.exec(text)
  if (!match) throw new InvalidArgumentException(`Not a non-negative decimal: ${JSON.stringify(value)}`)
  return BigInt(match[1]) * SCALE + BigInt((match[2] ?? '').padEnd(12, '0'))
}

function toText(value: bigint): string {
  const integer = value / SCALE
  const fraction = (value % SCALE).toString().padStart(12, '0').replace(/0+$/, '')
  return fraction ? `${integer}.${fraction}` : String(integer)
}

/**
 * Round half up to a whole minor unit (what Stripe does with the line total).
 */
function roundHalfUp(value: bigint): number {
  return Number((value + SCALE / 2n) / SCALE)
}

/**
 * One tier's share of a charge.
 */
export interface TierCharge {
  tier: number
  /** Units billed in this tier (decimal string) */
  quantity: string
  unitAmount: string
  flatAmount: number
  /** Unrounded amount of the tier in minor units (decimal string) */
  amount: string
}

/**
 * A usage charge: the total in minor units (rounded half up once, at the end) and its breakdown.
 */
export interface UsageCharge {
  currency: string
  model: ResolvedUsagePrice['model']
  quantity: string
  amount: number
  tiers: TierCharge[]
}

/**
 * Prices a quantity with a usage price, following Stripe's models:
 * - `per_unit`: quantity × unit amount;
 * - `package`: whole packages (rounded up, or down with `round: 'down'`) × package amount;
 * - `graduated`: each tier bills the units that fall in it (plus its flat amount when any unit does);
 * - `volume`: every unit at the rate of the tier the total falls in (plus that tier's flat amount).
 * Nothing is charged for a quantity of 0.
 */
export function priceUsage(price: ResolvedUsagePrice, quantityInput: number | string): UsageCharge {
  const quantity = toFixed(quantityInput)
  const base = { currency: price.currency, model: price.model, quantity: toText(quantity) }
  if (quantity === 0n) return { ...base, amount: 0, tiers: [] }

  switch (price.model) {
    case 'per_unit': {
      const unit = toFixed(price.unitAmount)
      const amount = (quantity * unit) / SCALE
      return { ...base, amount: roundHalfUp(amount), tiers: [{ tier: 1, quantity: toText(quantity), unitAmount: toText(unit), flatAmount: 0, amount: toText(amount) }] }
    }
    case 'package': {
      const size = BigInt(price.packageSize) * SCALE
      const whole = quantity / size
      const packages = price.round === 'down' || quantity % size === 0n ? whole : whole + 1n
      const amount = packages * BigInt(price.amount) * SCALE
      return {
        ...base,
        amount: roundHalfUp(amount),
        tiers: [{ tier: 1, quantity: String(packages), unitAmount: String(price.amount), flatAmount: 0, amount: toText(amount) }],
      }
    }
    default: {
      const tiers: TierCharge[] = []
      let total = 0n
      let floor = 0n
      for (const [index, tier] of price.tiers.entries()) {
        const ceiling = tier.upTo === 'inf' ? null : BigInt(tier.upTo) * SCALE
        const unit = toFixed(tier.unitAmount ?? 0)
        const flat = BigInt(tier.flatAmount ?? 0) * SCALE
        if (price.model === 'volume') {
          if (ceiling === null || quantity <= ceiling) {
            const amount = (quantity * unit) / SCALE + flat
            tiers.push({ tier: index + 1, quantity: toText(quantity), unitAmount: toText(unit), flatAmount: tier.flatAmount ?? 0, amount: toText(amount) })
            total = amount
            break
          }
          continue
        }
        if (quantity <= floor) break
        const inTier = (ceiling === null ? quantity : quantity < ceiling ? quantity : ceiling) - floor
        const amount = (inTier * unit) / SCALE + flat
        tiers.push({ tier: index + 1, quantity: toText(inTier), unitAmount: toText(unit), flatAmount: tier.flatAmount ?? 0, amount: toText(amount) })
        total += amount
        if (ceiling === null) break
        floor = ceiling
      }
      return { ...base, amount: roundHalfUp(total), tiers }
    }
  }
}
