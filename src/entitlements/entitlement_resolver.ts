/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import type Customer from '../models/customer.ts'
import Subscription from '../models/subscription.ts'
import type { BillingManager } from '../billing_manager.ts'
import { activeGrants } from './grants.ts'
import { applyGrants, combinePlanFeatures, subscriptionGrants } from './plan_entitlements.ts'
import type { CachedEntitlements } from './entitlement_cache.ts'
import { meterTotal } from '../usage/record_usage.ts'

/**
 * One resolved feature: a boolean, or a limit/quota with what is used (`limit: null` = unlimited).
 */
export type Entitlement = boolean | { limit: number | null; used: number; remaining: number | null; resetsAt?: string | null }

/**
 * What `billing.for(user).entitlements()` and `GET /billing/v1/me/entitlements` return.
 */
export interface EntitlementsSnapshot {
  /** A subscription grants something (402 vs 403 when a feature is missing) */
  live: boolean
  features: Record<string, Entitlement>
}

/**
 * Resolves entitlements from the catalog, live subscriptions (status policy and grace), add-ons and
 * grants; the plan/grant part is cached per customer (see `EntitlementCache`), usage is read live.
 */
export class EntitlementResolver {
  #manager: BillingManager

  constructor(manager: BillingManager) {
    this.#manager = manager
  }

  /**
   * Feature values from plans and grants, cached.
   */
  async values(customer: Customer, now = DateTime.utc()): Promise<CachedEntitlements & { subscriptions: Subscription[] }> {
    const { config } = this.#manager
    const cached = this.#manager.entitlementCache.get(customer.id, now.toMillis()) as (CachedEntitlements & { subscriptions: Subscription[] }) | null
    if (cached) return cached
    const [subscriptions, grants] = await Promise.all([
      Subscription.query({ client: this.#manager.db() }).where('customer_id', customer.id),
      activeGrants(this.#manager, customer.id, now),
    ])
    const granting = subscriptions.filter((subscription) => subscriptionGrants(subscription, config, now))
    const features = applyGrants(
      combinePlanFeatures(
        granting.map((subscription) => subscription.plan),
        config
      ),
      grants,
      config
    )

    /**
     * The answer changes by itself when a grant starts or ends, a subscription ends or a grace
     * period runs out: never cache past the earliest of those.
     */
    const boundaries = [
      ...grants.map((grant) => grant.expiresAt?.toMillis()),
      ...subscriptions.map((subscription) => subscription.endsAt?.toMillis()),
      ...subscriptions
        .filter((subscription) => subscription.status === 'past_due' && subscription.pastDueSince)
        .map((subscription) => subscription.pastDueSince!.plus({ days: config.policy.pastDueGraceDays }).toMillis()),
    ].filter((value): value is number => typeof value === 'number' && value > now.toMillis())
    const value = { live: granting.length > 0, features, validUntil: Math.min(Number.MAX_SAFE_INTEGER, ...boundaries), subscriptions: granting }
    this.#manager.entitlementCache.set(customer.id, value, now.toMillis())
    return value
  }

  /**
   * The current billing period of a customer for quotas: the period of a granting subscription, or
   * the calendar month (UTC).
   */
  period(subscriptions: Subscription[], now = DateTime.utc()) {
    const current = subscriptions.find((subscription) => subscription.currentPeriodStart && subscription.currentPeriodEnd && subscription.currentPeriodEnd > now)
    if (current) return { from: current.currentPeriodStart!, to: current.currentPeriodEnd! }
    return { from: now.startOf('month'), to: now.startOf('month').plus({ months: 1 }) }
  }

  /**
   * Everything the customer is entitled to, with usage.
   */
  async resolve(customer: Customer, billable: unknown = null, now = DateTime.utc()): Promise<EntitlementsSnapshot> {
    const { config } = this.#manager
    const values = await this.values(customer, now)
    const features: Record<string, Entitlement> = {}
    for (const [key, definition] of Object.entries(config.features)) {
      const value = values.features[key]
      if (definition.type === 'boolean') {
        features[key] = value === true
        continue
      }
      const limit = value === 'unlimited' ? null : typeof value === 'number' ? value : 0
      if (definition.type === 'limit') {
        const counter = this.#manager.usageCounters.get(key)
        const used = counter ? Number(await counter({ customer, billable })) : 0
        features[key] = { limit, used, remaining: limit === null ? null : Math.max(0, limit - used) }
      } else {
        const period = this.period(values.subscriptions, now)
        const used = await meterTotal(this.#manager.db(), customer.id, definition.meter, period.from, period.to)
        features[key] = { limit, used, remaining: limit === null ? null : Math.max(0, limit - used), resetsAt: period.to.toUTC().toISO() }
      }
    }
    return { live: values.live, features }
  }
}
