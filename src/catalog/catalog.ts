/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { InvalidConfigException } from '../errors.ts'
import type { ResolvedBillingConfig, ResolvedPlan } from '../types.ts'

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
      const price = [...plan.prices, ...plan.usagePrices].find((candidate) => candidate.lookupKey === lookupKey)
      if (price) return { plan, price }
    }
    return null
  }
}
