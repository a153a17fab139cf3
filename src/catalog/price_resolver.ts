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
import { StripeInvalidRequestException } from '../stripe/stripe_errors.ts'
import { InvalidConfigException, PriceMismatchException } from '../errors.ts'
import { type PriceParams, priceChanges } from './price_params.ts'
import debug from '../debug.ts'

/**
 * Resolves catalog lookup keys to Stripe price ids, verified against the catalog the app runs with:
 * a price whose amount, currency, interval or tiers differ from the catalog is refused
 * (`E_BILLING_PRICE_MISMATCH`) and never cached. Verified prices are cached for a short time; the
 * cache is dropped when Stripe rejects a cached price (another process ran `billing:sync` and archived
 * it), and the call is retried once with the fresh price (`retryOnRejection`).
 */
export class PriceResolver {
  #gateway: StripeGateway
  #expected: (lookupKey: string) => PriceParams | undefined
  #ttlMs: number
  #cache = new Map<string, { price: Stripe.Price; expiresAt: number }>()

  constructor(gateway: StripeGateway, expected: (lookupKey: string) => PriceParams | undefined, ttlMs = 5 * 60_000) {
    this.#gateway = gateway
    this.#expected = expected
    this.#ttlMs = ttlMs
  }

  /**
   * Active Stripe prices for the lookup keys, in the same order. Throws `E_BILLING_INVALID_CONFIG`
   * naming the key when Stripe has no such price, `E_BILLING_PRICE_MISMATCH` when Stripe's price is
   * not the catalog's (run `node ace billing:sync`).
   */
  async resolve(lookupKeys: string[]): Promise<Stripe.Price[]> {
    const now = Date.now()
    const missing = [...new Set(lookupKeys.filter((key) => (this.#cache.get(key)?.expiresAt ?? 0) <= now))]
    const mismatches = new Map<string, { price: Stripe.Price; changes: string[] }>()
    for (let index = 0; index < missing.length; index += 10) {
      const page = await this.#gateway.call((stripe) =>
        stripe.prices.list({ lookup_keys: missing.slice(index, index + 10), active: true, limit: 100, expand: ['data.tiers'] })
      )
      for (const price of page.data) {
        if (!price.lookup_key) continue
        const expected = this.#expected(price.lookup_key)
        const changes = expected ? priceChanges(price, expected, null) : []
        if (changes.length) {
          this.#cache.delete(price.lookup_key)
          mismatches.set(price.lookup_key, { price, changes })
          continue
        }
        this.#cache.set(price.lookup_key, { price, expiresAt: now + this.#ttlMs })
      }
    }
    return lookupKeys.map((key) => {
      const mismatch = mismatches.get(key)
      if (mismatch) {
        const error = new PriceMismatchException(
          `Stripe's price "${key}" (${mismatch.price.id}) is not the catalog's: ${mismatch.changes.join(', ')} (Stripe → catalog). Run "node ace billing:sync".`
        )
        error.lookupKey = key
        error.changes = mismatch.changes
        throw error
      }
      const cached = this.#cache.get(key)
      if (!cached) throw new InvalidConfigException(`prices.${key}`, 'no active Stripe price has this lookup key: run "node ace billing:sync"')
      return cached.price
    })
  }

  /**
   * Runs a Stripe call that uses resolved prices; when Stripe rejects a price (archived or deleted,
   * e.g. by `billing:sync` in another process), drops the cache and runs it once more, so it resolves
   * (and verifies) the current price.
   */
  async retryOnRejection<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (error) {
      if (!isPriceRejection(error)) throw error
      debug('Stripe rejected a cached price (%s): resolving again', (error as Error).message)
      this.clear()
      return run()
    }
  }

  /**
   * Forgets cached prices (after a sync, or when Stripe rejected one).
   */
  clear() {
    this.#cache.clear()
  }
}

/**
 * Stripe's answer to a price it no longer accepts: an invalid request on a price parameter
 * (inactive, archived, or no such price).
 */
function isPriceRejection(error: unknown): boolean {
  if (!(error instanceof StripeInvalidRequestException)) return false
  const param = error.param ?? ''
  return /price/.test(param) || /\bprice\b.*\b(inactive|archived)\b|no such price/i.test(error.message)
}
