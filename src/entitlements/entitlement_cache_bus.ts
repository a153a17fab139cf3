/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { ApplicationService } from '@adonisjs/core/types'
import { InvalidConfigException } from '../errors.ts'
import type { EntitlementCache } from './entitlement_cache.ts'
import debug from '../debug.ts'

/**
 * Keys published on the bus: one per customer, in the store's root namespace (bentocache drops the
 * namespace from bus messages, so the prefix is what tells our messages apart).
 */
export const ENTITLEMENT_BUS_KEY_PREFIX = 'adonis_billing:entitlements:'

/**
 * The slice of `@adonisjs/cache` (bentocache) this module uses.
 */
interface CacheManagerLike {
  use(store: string): { delete(options: { key: string }): Promise<unknown> }
  on(event: 'bus:message:received', listener: (payload: { message: { keys: string[]; type: string } }) => void): unknown
  off(event: 'bus:message:received', listener: (payload: { message: { keys: string[]; type: string } }) => void): unknown
}

/**
 * Carries entitlement invalidations between app instances over the bus of an `@adonisjs/cache`
 * store (`entitlements.cacheStore`): after a change commits on one instance, the customer's key is
 * deleted from that store, bentocache publishes the deletion, and every other instance drops the
 * customer from its own in-process cache. Reads never touch the store: warm checks stay in memory.
 */
export class EntitlementCacheBus {
  #manager: CacheManagerLike
  #store: ReturnType<CacheManagerLike['use']>
  #cache: EntitlementCache
  #listener = (payload: { message: { keys: string[]; type: string } }) => this.#receive(payload.message)
  /** Invalidations received from other instances (for health checks and tests) */
  received = 0

  private constructor(manager: CacheManagerLike, storeName: string, cache: EntitlementCache) {
    this.#manager = manager
    this.#cache = cache
    /**
     * `use()` creates the store, which subscribes its bus: from here on messages arrive
     */
    this.#store = manager.use(storeName)
    manager.on('bus:message:received', this.#listener)
    cache.onInvalidate((customerId) => this.publish(customerId))
  }

  /**
   * Connects the cache of this instance to the named store's bus. Fails with
   * `E_BILLING_INVALID_CONFIG` when `@adonisjs/cache` is not set up or the store does not exist.
   */
  static async connect(app: ApplicationService, storeName: string, cache: EntitlementCache): Promise<EntitlementCacheBus> {
    if (!app.container.hasBinding('cache.manager' as any)) {
      throw new InvalidConfigException(
        'entitlements.cacheStore',
        'needs @adonisjs/cache: install it ("node ace add @adonisjs/cache") and register its provider'
      )
    }
    const manager = (await app.container.make('cache.manager' as any)) as CacheManagerLike
    try {
      return new EntitlementCacheBus(manager, storeName, cache)
    } catch (error: any) {
      throw new InvalidConfigException('entitlements.cacheStore', `"${storeName}" is not a store of config/cache.ts (${error?.message ?? error})`)
    }
  }

  /**
   * Tells the other instances that a customer's entitlements changed. Never throws: a lost message
   * leaves the TTL (`policy.cacheTtlSeconds`) as the staleness bound.
   */
  publish(customerId: number) {
    this.#store.delete({ key: `${ENTITLEMENT_BUS_KEY_PREFIX}${customerId}` }).catch((error) => {
      debug('entitlement invalidation of customer %d not published: %s', customerId, error?.message ?? error)
    })
  }

  #receive(message: { keys: string[]; type: string }) {
    if (message.type === 'clear') {
      this.received++
      this.#cache.clear()
      return
    }
    for (const key of message.keys ?? []) {
      if (!key.startsWith(ENTITLEMENT_BUS_KEY_PREFIX)) continue
      const customerId = Number(key.slice(ENTITLEMENT_BUS_KEY_PREFIX.length))
      if (!Number.isSafeInteger(customerId)) continue
      this.received++
      this.#cache.invalidate(customerId, { publish: false })
      debug('entitlements of customer %d invalidated by another instance', customerId)
    }
  }

  /**
   * Stops listening (app shutdown).
   */
  close() {
    this.#manager.off('bus:message:received', this.#listener)
    this.#cache.onInvalidate(null)
  }
}
