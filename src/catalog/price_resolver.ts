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
import { PLAN_METADATA_KEY, type PriceParams, priceChanges } from './price_params.ts'
import debug from '../debug.ts'

/**
 * Resolves catalog lookup keys to Stripe price ids, verified against the catalog the app runs with:
 * a price whose amount, currency, interval or tiers differ from the catalog is refused
 * (`E_BILLING_PRICE_MISMATCH`) and never cached. Verified prices are cached for a short time; the
 * cache is dropped when Stripe rejects a cached price (another process ran `billing:sync` and archived
 * it), and the call is retried once with the fresh price (`retryOnRejection`). A price must also be on
 * the plan's product, and a usage price must bill the catalog meter (the rule `billing:sync` applies).
 */
export class PriceResolver {
  #gateway: StripeGateway
  #expected: (lookupKey: string) => PriceParams | undefined
  #meterEventName: (meterKey: string) => string | undefined
  #ttlMs: number
  #cache = new Map<string, { price: Stripe.Price; expiresAt: number }>()
  #meterEvents = new Map<string, { eventName: string; active: boolean }>()

  /**
   * @param expected the catalog's parameters of a lookup key's price
   * @param meterEventName the Stripe event name of a catalog meter (a usage price must bill it)
   */
  constructor(
    gateway: StripeGateway,
    expected: (lookupKey: string) => PriceParams | undefined,
    meterEventName: (meterKey: string) => string | undefined = () => undefined,
    ttlMs = 5 * 60_000
  ) {
    this.#gateway = gateway
    this.#expected = expected
    this.#meterEventName = meterEventName
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
        stripe.prices.list({ lookup_keys: missing.slice(index, index + 10), active: true, limit: 100, expand: ['data.tiers', 'data.product'] })
      )
      if (page.data.some((price) => price.recurring?.meter)) await this.#loadMeters()
      const meters = this.#meterEvents
      for (const price of page.data) {
        if (!price.lookup_key) continue
        const expected = this.#expected(price.lookup_key)
        const changes = expected ? this.#changes(price, expected, meters) : []
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
   * What differs between Stripe's price and the catalog's, by the rule `billing:sync` applies: the
   * price must belong to the plan's product (its plan metadata) and a usage price must bill the
   * catalog meter's event.
   */
  #changes(price: Stripe.Price, expected: PriceParams, meters: Map<string, { eventName: string; active: boolean }>): string[] {
    const product = typeof price.product === 'string' ? null : price.product
    const planKey = expected.metadata && typeof expected.metadata === 'object' ? (expected.metadata as Record<string, string>)[PLAN_METADATA_KEY] : undefined
    const productId = product?.id ?? (price.product as string)
    const productOk = !planKey || (product && !('deleted' in product && product.deleted) && (product as Stripe.Product).metadata?.[PLAN_METADATA_KEY] === planKey)
    const eventName = expected.meterKey ? this.#meterEventName(expected.meterKey) : undefined
    const meterId = price.recurring?.meter ?? null
    const meter = meterId === null ? undefined : meters.get(meterId)
    const meterOk = !expected.meterKey || (eventName !== undefined && meter?.eventName === eventName && meter.active)
    return [
      ...priceChanges(price, expected, null, expected.meterKey ? (meterOk ? meterId : `the active meter of "${eventName}"`) : undefined),
      ...(productOk ? [] : [`product ${JSON.stringify(productId)} → the product of plan "${planKey}"`]),
    ]
  }

  /**
   * Reads Stripe's meters (id → event name and whether the meter is active), fresh with the prices
   */
  async #loadMeters() {
    await this.#gateway.call(async (stripe) => {
      for await (const meter of stripe.billing.meters.list({ limit: 100 })) this.#meterEvents.set(meter.id, { eventName: meter.event_name, active: meter.status === 'active' })
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
