/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { Exception } from '@adonisjs/core/exceptions'
import type { HttpContext } from '@adonisjs/core/http'

/**
 * Base class of every error the package raises. Each subclass has a stable `code` (`E_BILLING_...`)
 * and an HTTP status; when one escapes to the host's exception handler it renders itself as an
 * RFC 9457 problem+json document, so API clients can branch on `code` without parsing messages.
 */
export class BillingException extends Exception {
  /**
   * Extra members of the problem document (never secrets).
   */
  details: Record<string, unknown> = {}

  /**
   * Renders the error as `application/problem+json`.
   */
  async handle(error: this, ctx: HttpContext) {
    ctx.response
      .status(error.status)
      .header('content-type', 'application/problem+json; charset=utf-8')
      .send(JSON.stringify(problemDocument(error)))
  }
}

/**
 * The problem+json body of a billing error.
 */
export function problemDocument(error: BillingException) {
  return {
    type: `https://adonis-billing.dev/problems/${error.code}`,
    title: error.name,
    status: error.status,
    code: error.code,
    detail: error.message,
    ...error.details,
  }
}

/**
 * The billing configuration (`config/billing.ts`) is invalid. The message names the offending key,
 * e.g. `plans.pro.features.sso2`.
 */
export class InvalidConfigException extends BillingException {
  static status = 500
  static code = 'E_BILLING_INVALID_CONFIG'

  /**
   * Dotted path of the offending configuration key.
   */
  key: string

  constructor(key: string, problem: string) {
    super(`Invalid billing config at "${key}": ${problem}`)
    this.key = key
  }
}

/**
 * A model passed to `billing.for()` is not billable (not composed with the `Billable` mixin, or not
 * persisted yet).
 */
export class NotBillableException extends BillingException {
  static status = 500
  static code = 'E_BILLING_NOT_BILLABLE'
}

/**
 * The request has no authenticated billable (used by the `entitled` middleware and `/me` routes).
 */
export class UnauthenticatedException extends BillingException {
  static status = 401
  static code = 'E_BILLING_UNAUTHENTICATED'
}

/**
 * The customer has no live subscription that could grant the feature.
 */
export class PaymentRequiredException extends BillingException {
  static status = 402
  static code = 'E_BILLING_PAYMENT_REQUIRED'
}

/**
 * The customer's plan does not include the feature.
 */
export class FeatureNotIncludedException extends BillingException {
  static status = 403
  static code = 'E_BILLING_FEATURE_NOT_INCLUDED'
}

/**
 * The audit chain does not verify: a row was edited, removed or inserted out of order.
 */
export class AuditChainBrokenException extends BillingException {
  static status = 500
  static code = 'E_BILLING_AUDIT_CHAIN_BROKEN'
}

/**
 * An argument of a public API call is invalid (amount, quantity, ...).
 */
export class InvalidArgumentException extends BillingException {
  static status = 422
  static code = 'E_BILLING_INVALID_ARGUMENT'
}

/**
 * A quota (metered feature) is spent for the current period. `retryAfter` is seconds until it resets.
 */
export class QuotaExceededException extends BillingException {
  static status = 429
  static code = 'E_BILLING_QUOTA_EXCEEDED'
  retryAfter: number | null = null

  async handle(error: this, ctx: HttpContext) {
    if (error.retryAfter !== null) ctx.response.header('retry-after', String(error.retryAfter))
    return super.handle(error, ctx)
  }
}

/**
 * An idempotency key was used before with a different payload (or, for quota consumption, was
 * already spent): nothing was stored. Send a new key for a new request.
 */
export class IdempotencyConflictException extends BillingException {
  static status = 409
  static code = 'E_BILLING_IDEMPOTENCY_CONFLICT'
}

/**
 * The caller is authenticated but not allowed to do this (an admin route without admin rights, a
 * usage write for a customer the caller may not write for).
 */
export class ForbiddenException extends BillingException {
  static status = 403
  static code = 'E_BILLING_FORBIDDEN'
}

/**
 * The billing database could not answer (a failure that is not the input's fault). The client gets
 * this generic 503 — never the database's own message.
 */
export class DatabaseUnavailableException extends BillingException {
  static status = 503
  static code = 'E_BILLING_DATABASE_UNAVAILABLE'
}

/**
 * The Stripe price a lookup key resolves to is not the catalog's price (another amount, currency,
 * interval or tiers): nothing is sold at a price the app does not run with. Run `node ace billing:sync`
 * (or deploy the catalog Stripe has). `changes` lists what differs.
 */
export class PriceMismatchException extends BillingException {
  static status = 503
  static code = 'E_BILLING_PRICE_MISMATCH'
  lookupKey = ''
  changes: string[] = []
}
