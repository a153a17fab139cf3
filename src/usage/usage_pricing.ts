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
import { SCALE, fixedText, parseFixed, roundHalfUp } from './decimal.ts'

function toFixed(value: number | string): bigint {
  const fixed = parseFixed(typeof value === 'number' && !Number.isSafeInteger(value) && Number.isFinite(value) ? value.toFixed(12) : value)
  if (fixed === null) throw new InvalidArgumentException(`Not a non-negative decimal: ${JSON.stringify(value)}`)
  return fixed
}


/**
 * Round half up to a whole minor unit (what Stripe does with the line total).
 */
function roundMinor(value: bigint): number {
  return Number(roundHalfUp(value))
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
 * A quantity of 0 falls in the first tier, so a tiered price bills the first tier's flat amount even
 * with no usage (as Stripe does: its tiers start at 0); per-unit and package prices bill nothing.
 */
export function priceUsage(price: ResolvedUsagePrice, quantityInput: number | string): UsageCharge {
  const quantity = toFixed(quantityInput)
  const base = { currency: price.currency, model: price.model, quantity: fixedText(quantity) }
  if (quantity === 0n && (price.model === 'per_unit' || price.model === 'package')) return { ...base, amount: 0, tiers: [] }

  switch (price.model) {
    case 'per_unit': {
      const unit = toFixed(price.unitAmount)
      const amount = (quantity * unit) / SCALE
      return { ...base, amount: roundMinor(amount), tiers: [{ tier: 1, quantity: fixedText(quantity), unitAmount: fixedText(unit), flatAmount: 0, amount: fixedText(amount) }] }
    }
    case 'package': {
      const size = BigInt(price.packageSize) * SCALE
      const whole = quantity / size
      const packages = price.round === 'down' || quantity % size === 0n ? whole : whole + 1n
      const amount = packages * BigInt(price.amount) * SCALE
      return {
        ...base,
        amount: roundMinor(amount),
        tiers: [{ tier: 1, quantity: String(packages), unitAmount: String(price.amount), flatAmount: 0, amount: fixedText(amount) }],
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
            tiers.push({ tier: index + 1, quantity: fixedText(quantity), unitAmount: fixedText(unit), flatAmount: tier.flatAmount ?? 0, amount: fixedText(amount) })
            total = amount
            break
          }
          continue
        }
        if (quantity <= floor && index > 0) break
        const inTier = (ceiling === null ? quantity : quantity < ceiling ? quantity : ceiling) - floor
        const amount = (inTier * unit) / SCALE + flat
        tiers.push({ tier: index + 1, quantity: fixedText(inTier), unitAmount: fixedText(unit), flatAmount: tier.flatAmount ?? 0, amount: fixedText(amount) })
        total += amount
        if (ceiling === null) break
        floor = ceiling
      }
      return { ...base, amount: roundMinor(total), tiers }
    }
  }
}
