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
import type { BillingManager } from '../billing_manager.ts'
import { loadEntitlementRows, type EntitlementSubscription } from './entitlement_rows.ts'
import { applyGrants, combinePlanFeatures, isGranted, subscriptionGrants } from './plan_entitlements.ts'
import type { CachedEntitlements } from './entitlement_cache.ts'
import { meterValue } from '../usage/meter_reading.ts'
import { fixedText } from '../usage/decimal.ts'

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
   * The decision for one feature from this instance's cache alone, without a query or an await:
   * null on a miss (then ask `values()`). The `entitled` middleware's warm path.
   */
  cachedDecision(billableType: string, billableId: string, feature: string): 'granted' | 'no_plan' | 'not_included' | null {
    const cache = this.#manager.entitlementCache
    const customerId = cache.customerIdFor(`${billableType}:${billableId}`)
    const cached = customerId === undefined ? null : cache.get(customerId)
    if (!cached) return null
    if (isGranted(cached.features[feature])) return 'granted'
    return cached.live ? 'not_included' : 'no_plan'
  }

  /**
   * Feature values from plans and grants for a customer (by id, or by billable identity), cached.
   * A miss costs one query (`loadEntitlementRows`). Null when the customer does not exist.
   */
  async values(
    by: { customerId: number } | { billableType: string; billableId: string },
    now = DateTime.utc()
  ): Promise<(CachedEntitlements & { customerId: number; subscriptions: EntitlementSubscription[] }) | null> {
    const { config } = this.#manager
    const cache = this.#manager.entitlementCache
    const identity = 'customerId' in by ? null : `${by.billableType}:${by.billableId}`
    const knownId = 'customerId' in by ? by.customerId : cache.customerIdFor(identity!)
    const cached = knownId === undefined ? null : cache.get(knownId, now.toMillis())
    if (cached) return cached as CachedEntitlements & { customerId: number; subscriptions: EntitlementSubscription[] }

    const rows = await loadEntitlementRows(this.#manager.db(), by)
    if (!rows) return null
    if (identity) cache.rememberCustomer(identity, rows.customerId)
    const grants = rows.grants.filter((grant) => grant.startsAt <= now && (!grant.expiresAt || grant.expiresAt > now))
    const granting = rows.subscriptions.filter((subscription) => subscriptionGrants(subscription, config, now))
    const fromPlans = combinePlanFeatures(
      granting.map((subscription) => subscription.plan),
      config
    )
    let live = granting.length > 0
    if (config.entitlements.source === 'stripe') {
      const active = new Set(rows.stripeEntitlements ?? (await this.#fetchStripeEntitlements(rows.customerId, rows.stripeCustomerId)))
      for (const [key, definition] of Object.entries(config.features)) {
        if (definition.type === 'boolean') fromPlans[key] = active.has(key)
      }
      live = live || active.size > 0
    }
    const features = applyGrants(fromPlans, grants, config)

    /**
     * The answer changes by itself when a grant starts or ends, a subscription ends or a grace
     * period runs out: never cache past the earliest of those.
     */
    const boundaries = [
      ...rows.grants.flatMap((grant) => [grant.startsAt.toMillis(), grant.expiresAt?.toMillis()]),
      ...rows.subscriptions.map((subscription) => subscription.endsAt?.toMillis()),
      ...rows.subscriptions
        .filter((subscription) => subscription.status === 'past_due')
        .map((subscription) => (subscription.pastDueSince ?? subscription.updatedAt).plus({ days: config.policy.pastDueGraceDays }).toMillis()),
    ].filter((value): value is number => typeof value === 'number' && value > now.toMillis())
    const value = {
      customerId: rows.customerId,
      live,
      features,
      validUntil: Math.min(Number.MAX_SAFE_INTEGER, ...boundaries),
      subscriptions: granting,
    }
    cache.set(rows.customerId, value, now.toMillis())
    return value
  }

  /**
   * Stripe Entitlements mode, on a miss (no summary webhook stored yet): the list API, stored on the
   * customer (a cache fill, not a change: no version bump).
   */
  async #fetchStripeEntitlements(customerId: number, stripeCustomerId: string | null): Promise<string[]> {
    if (!stripeCustomerId) return []
    const keys = await this.#manager.stripe.call(async (stripe) => {
      const found: string[] = []
      for await (const entitlement of stripe.entitlements.activeEntitlements.list({ customer: stripeCustomerId, limit: 100 })) {
        found.push(entitlement.lookup_key)
      }
      return found.sort()
    })
    await this.#manager
      .db()
      .from('billing_customers')
      .where('id', customerId)
      .whereNull('stripe_entitlements')
      .update({ stripe_entitlements: JSON.stringify(keys) })
    return keys
  }

  /**
   * The current billing period of a customer for quotas: the period of a granting subscription, or
   * the calendar month (UTC).
   */
  period(subscriptions: EntitlementSubscription[], now = DateTime.utc()) {
    const current = subscriptions.find((subscription) => subscription.currentPeriodStart && subscription.currentPeriodEnd && subscription.currentPeriodEnd > now)
    if (current) return { from: current.currentPeriodStart!, to: current.currentPeriodEnd! }
    return { from: now.startOf('month'), to: now.startOf('month').plus({ months: 1 }) }
  }

  /**
   * Everything the customer is entitled to, with usage.
   */
  async resolve(customer: Customer, billable: unknown = null, now = DateTime.utc()): Promise<EntitlementsSnapshot> {
    const { config } = this.#manager
    const values = (await this.values({ customerId: customer.id }, now))!
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
        const meter = config.meters[definition.meter]
        /**
         * Exact, shown as a JSON number
         */
        const used = Number(fixedText(await meterValue(this.#manager.db(), { key: definition.meter, aggregation: meter.aggregation, uniqueProperty: meter.uniqueProperty }, customer.id, period.from, period.to)))
        features[key] = { limit, used, remaining: limit === null ? null : Math.max(0, limit - used), resetsAt: period.to.toUTC().toISO() }
      }
    }
    return { live: values.live, features }
  }
}
