/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHash } from 'node:crypto'
import type { Stripe } from 'stripe'
import { canonicalJson } from '../audit/canonical_json.ts'
import { mapStripeError, StripeNotConfiguredException } from './stripe_errors.ts'
import type { ResolvedBillingConfig } from '../types.ts'
import debug from '../debug.ts'


/**
 * Longest idempotency key Stripe accepts.
 */
export const MAX_IDEMPOTENCY_KEY = 255

/**
 * The Stripe API version the package is written and tested against (the `stripe` SDK 23.1.0 default).
 */
export const STRIPE_API_VERSION = '2026-10-28.endive'

/**
 * Owns the one `stripe` client of the app (imported lazily, off the hot path) and runs calls so that
 * every Stripe error surfaces as a typed `E_BILLING_*` exception.
 */
export class StripeGateway {
  #config: ResolvedBillingConfig
  #client?: Promise<Stripe>

  constructor(config: ResolvedBillingConfig) {
    this.#config = config
  }

  /**
   * The configured client. Throws `E_BILLING_STRIPE_NOT_CONFIGURED` without a secret key.
   */
  client(): Promise<Stripe> {
    if (!this.#client) {
      const options = this.#config.stripe
      if (!options.secretKey) {
        return Promise.reject(new StripeNotConfiguredException('Stripe is not configured: set STRIPE_SECRET_KEY'))
      }
      this.#client = import('stripe').then(({ default: StripeClient }) => {
        debug('stripe client for %s://%s:%s', options.protocol, options.host ?? 'api.stripe.com', options.port ?? 443)
        return new StripeClient(options.secretKey!, {
          apiVersion: (options.apiVersion ?? STRIPE_API_VERSION) as any,
          maxNetworkRetries: options.maxNetworkRetries,
          timeout: options.timeout,
          telemetry: false,
          appInfo: { name: 'adonis-billing' },
          ...(options.host ? { host: options.host } : {}),
          ...(options.port ? { port: options.port } : {}),
          ...(options.protocol ? { protocol: options.protocol } : {}),
        })
      })
    }
    return this.#client
  }

  /**
   * Runs `fn` with the client, mapping Stripe errors to typed exceptions.
   */
  async call<T>(fn: (stripe: Stripe) => Promise<T>): Promise<T> {
    const stripe = await this.client()
    try {
      return await fn(stripe)
    } catch (error) {
      throw mapStripeError(error)
    }
  }

  /**
   * A deterministic idempotency key: the same operation with the same parameters on the same local
   * state version yields the same key, so a retried call (even from another instance, within Stripe's
   * 24 h window) replays the first result instead of charging twice.
   */
  static idempotencyKey(operation: string, scope: string | number, params: unknown): string {
    const digest = createHash('sha256').update(canonicalJson(params)).digest('hex').slice(0, 32)
    const key = `adonis-billing:${operation}:${scope}:${digest}`
    /**
     * Stripe refuses keys over 255 characters: a long scope (a long lookup key) is hashed instead
     */
    if (key.length <= MAX_IDEMPOTENCY_KEY) return key
    return `adonis-billing:${operation.slice(0, 100)}:${createHash('sha256').update(`${operation}\u0000${scope}`).digest('hex')}:${digest}`
  }
}
