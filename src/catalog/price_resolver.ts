/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Stripe } from 'stripe'
import type { StripeGateway } from '../stripe/stripe_gateway.ts'
import { InvalidConfigException } from '../errors.ts'

/**
 * Resolves catalog lookup keys to Stripe price ids, caching them for a short time (a price change by
 * `billing:sync` moves the lookup key to a new price; the cache then expires).
 */
export class PriceResolver {
  #gateway: StripeGateway
  #ttlMs: number
  #cache = new Map<string, { price: Stripe.Price; expiresAt: number }>()

  constructor(gateway: StripeGateway, ttlMs = 5 * 60_000) {
    this.#gateway = gateway
    this.#ttlMs = ttlMs
  }

  /**
   * Active Stripe prices for the lookup keys, in the same order. Throws `E_BILLING_INVALID_CONFIG`
   * naming the key when Stripe has no such price (run `node ace billing:sync`).
   */
  async resolve(lookupKeys: string[]): Promise<Stripe.Price[]> {
    const now = Date.now()
    const missing = lookupKeys.filter((key) => (this.#cache.get(key)?.expiresAt ?? 0) <= now)
    for (let index = 0; index < missing.length; index += 10) {
      const page = await this.#gateway.call((stripe) =>
        stripe.prices.list({ lookup_keys: missing.slice(index, index + 10), active: true, limit: 100 })
      )
      for (const price of page.data) {
        if (price.lookup_key) this.#cache.set(price.lookup_key, { price, expiresAt: now + this.#ttlMs })
      }
    }
    return lookupKeys.map((key) => {
      const cached = this.#cache.get(key)
      if (!cached) throw new InvalidConfigException(`prices.${key}`, 'no active Stripe price has this lookup key: run "node ace billing:sync"')
      return cached.price
    })
  }

  /**
   * Forgets cached prices (after a sync).
   */
  clear() {
    this.#cache.clear()
  }
}
