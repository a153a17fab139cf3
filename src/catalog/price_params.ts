/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Stripe } from 'stripe'
import type { BillingInterval, ResolvedPlan, ResolvedRecurringPrice, ResolvedUsagePrice } from '../types.ts'
import { fixedText, parseFixed } from '../usage/decimal.ts'
import { baseUsageInterval, usageIntervals, usageLookupKey } from './catalog.ts'

/**
 * Metadata keys that tie Stripe objects to the catalog.
 */
export const PLAN_METADATA_KEY = 'adonis_billing_plan'

/**
 * The one rule for "this Stripe price is the catalog's price": the parameters a catalog price is
 * created with, and what differs between a live Stripe price and them. `billing:sync` replaces a price
 * that differs; checkout and subscriptions refuse one (`PriceResolver`).
 */

/**
 * Price parameters before the product and meter ids are known (they may be created in the same run).
 */
export type PriceParams = Omit<Stripe.PriceCreateParams, 'product'> & { meterKey?: string }

function flatPriceParams(plan: ResolvedPlan, price: ResolvedRecurringPrice): PriceParams {
  return {
    currency: price.currency,
    unit_amount: price.amount,
    recurring: { interval: price.interval, interval_count: price.intervalCount },
    tax_behavior: price.taxBehavior,
    lookup_key: price.lookupKey,
    nickname: `${plan.name} (${price.interval})`,
    metadata: { [PLAN_METADATA_KEY]: plan.key },
  }
}

function usagePriceParams(plan: ResolvedPlan, price: ResolvedUsagePrice, interval: BillingInterval, decimal: (value: string) => any): PriceParams {
  const intervalCount = plan.prices.find((candidate) => candidate.interval === interval)?.intervalCount ?? 1
  const base: PriceParams = {
    currency: price.currency,
    recurring: { interval, interval_count: intervalCount, usage_type: 'metered' },
    tax_behavior: price.taxBehavior,
    lookup_key: usageLookupKey(plan, price, interval),
    nickname: interval === baseUsageInterval(plan) ? `${plan.name} (${price.meter})` : `${plan.name} (${price.meter}, ${interval})`,
    metadata: { [PLAN_METADATA_KEY]: plan.key, adonis_billing_meter: price.meter },
    meterKey: price.meter,
  }
  switch (price.model) {
    case 'per_unit':
      return { ...base, billing_scheme: 'per_unit', unit_amount_decimal: decimal(String(price.unitAmount)) }
    case 'package':
      return {
        ...base,
        billing_scheme: 'per_unit',
        unit_amount: price.amount,
        transform_quantity: { divide_by: price.packageSize, round: price.round ?? 'up' },
      }
    default:
      return {
        ...base,
        billing_scheme: 'tiered',
        tiers_mode: price.model,
        tiers: price.tiers.map((tier) => ({
          up_to: tier.upTo,
          ...(tier.unitAmount !== undefined ? { unit_amount_decimal: decimal(String(tier.unitAmount)) } : {}),
          ...(tier.flatAmount !== undefined ? { flat_amount: tier.flatAmount } : {}),
        })),
      }
  }
}

/**
 * A decimal as canonical text (`'007.50'` and Stripe's `'7.5'` compare equal)
 */
function decimalString(value: unknown): string | null {
  if (value === null || value === undefined) return null
  const text = String(value)
  const fixed = parseFixed(text)
  return fixed === null ? text : fixedText(fixed)
}

/**
 * What differs between a live price and the wanted parameters (fields Stripe never lets us update).
 */
export function priceChanges(live: Stripe.Price, wanted: PriceParams, productId: string | null, meterId?: string | null): string[] {
  const changes: string[] = []
  const compare = (name: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a ?? null) !== JSON.stringify(b ?? null)) changes.push(`${name} ${JSON.stringify(a ?? null)} → ${JSON.stringify(b ?? null)}`)
  }
  compare('currency', live.currency, wanted.currency)
  compare('interval', live.recurring?.interval, wanted.recurring?.interval)
  compare('interval count', live.recurring?.interval_count, wanted.recurring?.interval_count ?? 1)
  compare('usage type', live.recurring?.usage_type, wanted.recurring?.usage_type ?? 'licensed')
  compare('tax behavior', live.tax_behavior, wanted.tax_behavior)
  if (productId) compare('product', typeof live.product === 'string' ? live.product : live.product.id, productId)
  if (meterId !== undefined) compare('meter', live.recurring?.meter ?? null, meterId)
  if (wanted.billing_scheme === 'tiered') {
    compare('tiers mode', live.tiers_mode, wanted.tiers_mode)
    compare(
      'tiers',
      (live.tiers ?? []).map((tier) => [tier.up_to ?? 'inf', decimalString(tier.unit_amount_decimal ?? tier.unit_amount), tier.flat_amount ?? null]),
      (wanted.tiers ?? []).map((tier) => [tier.up_to, decimalString(tier.unit_amount_decimal), tier.flat_amount ?? null])
    )
  } else if (wanted.unit_amount_decimal !== undefined) {
    compare('unit amount', decimalString(live.unit_amount_decimal ?? live.unit_amount), decimalString(wanted.unit_amount_decimal))
  } else {
    compare('amount', live.unit_amount, wanted.unit_amount)
  }
  /**
   * A package price divides the quantity; any other price must not (a per-unit price at the package's
   * amount would bill 1000× too little)
   */
  compare('package', live.transform_quantity ?? null, wanted.transform_quantity ?? null)
  return changes
}

/**
 * Every Stripe price of a plan, with the parameters it must have: the flat prices and each usage
 * price for every interval the plan sells.
 */
export function planPriceParams(plan: ResolvedPlan, decimal: (value: string) => any = (value) => value): PriceParams[] {
  return [
    ...plan.prices.map((price) => flatPriceParams(plan, price)),
    ...plan.usagePrices.flatMap((price) => usageIntervals(plan).map((interval) => usagePriceParams(plan, price, interval, decimal))),
  ]
}
