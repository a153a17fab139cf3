/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { InvalidConfigException } from '../errors.ts'
import type { BillingInterval, ResolvedBillingConfig, ResolvedPlan, ResolvedUsagePrice } from '../types.ts'

/**
 * The interval a plan's usage prices are billed at by default: monthly, unless the plan only has
 * another interval.
 */
export function baseUsageInterval(plan: ResolvedPlan): BillingInterval {
  if (plan.prices.length === 0 || plan.prices.some((price) => price.interval === 'month')) return 'month'
  return plan.prices[0].interval
}

/**
 * Intervals a plan's usage prices exist at in Stripe: one metered price per flat-price interval,
 * since a subscription's items must share one interval.
 */
export function usageIntervals(plan: ResolvedPlan): BillingInterval[] {
  const intervals = plan.prices.map((price) => price.interval)
  return intervals.length ? intervals : [baseUsageInterval(plan)]
}

/**
 * Lookup key of a usage price at an interval: the configured key at the base interval,
 * `<key>_<interval>` at the others (e.g. `pro_api_calls` and `pro_api_calls_year`).
 */
export function usageLookupKey(plan: ResolvedPlan, price: ResolvedUsagePrice, interval: BillingInterval): string {
  return interval === baseUsageInterval(plan) ? price.lookupKey : `${price.lookupKey}_${interval}`
}

/**
 * Read access to the catalog declared in `config/billing.ts`.
 */
export class Catalog {
  #config: ResolvedBillingConfig

  constructor(config: ResolvedBillingConfig) {
    this.#config = config
  }

  /**
   * Every plan, in declaration order.
   */
  plans(): ResolvedPlan[] {
    return Object.values(this.#config.plans)
  }

  /**
   * One plan; throws `E_BILLING_INVALID_CONFIG` for an unknown key.
   */
  plan(key: string): ResolvedPlan {
    const plan = this.#config.plans[key]
    if (!plan) throw new InvalidConfigException(`plans.${key}`, 'no such plan in the catalog')
    return plan
  }

  /**
   * Feature definitions by key.
   */
  features() {
    return this.#config.features
  }

  /**
   * Meter definitions by key.
   */
  meters() {
    return this.#config.meters
  }

  /**
   * The plan and price a Stripe lookup key belongs to.
   */
  priceByLookupKey(lookupKey: string) {
    for (const plan of this.plans()) {
      const price =
        plan.prices.find((candidate) => candidate.lookupKey === lookupKey) ??
        plan.usagePrices.find((candidate) => usageIntervals(plan).some((interval) => usageLookupKey(plan, candidate, interval) === lookupKey))
      if (price) return { plan, price }
    }
    return null
  }
}
