/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import Customer from '../models/customer.ts'
import type { FeatureValue } from '../types.ts'

/**
 * What is cached per customer: the resolved plan and grant values (usage counts are read live).
 */
export interface CachedEntitlements {
  live: boolean
  features: Record<string, FeatureValue>
  /** End of the earliest grant or period boundary that changes the answer by itself (ms) */
  validUntil: number
}

/**
 * Per-customer entitlement cache of one app instance. Every change that may alter entitlements bumps
 * the customer's `entitlement_version` in its transaction (`bumpEntitlementVersion`) and drops the
 * entry here after commit, so this instance never serves a stale answer after a commit. Other
 * instances drop theirs when the invalidation reaches them over the `@adonisjs/cache` bus
 * (`entitlements.cacheStore`, see `EntitlementCacheBus`) or, without a bus, when the TTL
 * (`policy.cacheTtlSeconds`) runs out: that is then the staleness bound across instances.
 */
export class EntitlementCache {
  #entries = new Map<number, CachedEntitlements & { expiresAt: number }>()
  /**
   * Billable identity (`type:id`) → customer id. A billable's customer row never changes id, so this
   * mapping needs no invalidation; it is bounded to keep memory flat.
   */
  #customerIds = new Map<string, number>()
  #ttlMs: number
  #publish: ((customerId: number) => void) | null = null
  static readonly MAX_IDENTITIES = 50_000

  constructor(ttlSeconds: number) {
    this.#ttlMs = ttlSeconds * 1000
  }

  get(customerId: number, now = Date.now()): CachedEntitlements | null {
    const entry = this.#entries.get(customerId)
    if (!entry) return null
    if (entry.expiresAt <= now || entry.validUntil <= now) {
      this.#entries.delete(customerId)
      return null
    }
    return entry
  }

  set(customerId: number, value: CachedEntitlements, now = Date.now()) {
    if (this.#ttlMs <= 0) return
    this.#entries.set(customerId, { ...value, expiresAt: now + this.#ttlMs })
  }

  /**
   * The customer id known for a billable identity, if any.
   */
  customerIdFor(identity: string): number | undefined {
    return this.#customerIds.get(identity)
  }

  /**
   * Remembers which customer a billable identity belongs to.
   */
  rememberCustomer(identity: string, customerId: number) {
    if (this.#customerIds.size >= EntitlementCache.MAX_IDENTITIES) this.#customerIds.clear()
    this.#customerIds.set(identity, customerId)
  }

  /**
   * Drops a customer's entry, and tells the other instances (when a bus is connected) unless the
   * invalidation came from them.
   */
  invalidate(customerId: number, options: { publish?: boolean } = {}) {
    this.#entries.delete(customerId)
    if (options.publish !== false) this.#publish?.(customerId)
  }

  /**
   * Drops every entry of this instance (the billable → customer mapping too).
   */
  clear() {
    this.#entries.clear()
    this.#customerIds.clear()
  }

  /**
   * Where invalidations go besides this instance (set by `EntitlementCacheBus`).
   */
  onInvalidate(publish: ((customerId: number) => void) | null) {
    this.#publish = publish
  }
}

/**
 * Bumps a customer's entitlement version inside `trx` and, once it commits, drops the customer's
 * cached entitlements.
 */
export async function bumpEntitlementVersion(cache: EntitlementCache, trx: TransactionClientContract, customerId: number, extra: Record<string, unknown> = {}) {
  await trx
    .from(Customer.table)
    .where('id', customerId)
    .update({ ...extra, entitlement_version: trx.raw('entitlement_version + 1') })
  trx.after('commit', () => cache.invalidate(customerId))
}
