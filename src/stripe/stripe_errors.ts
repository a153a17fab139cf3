/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { BillingException } from '../errors.ts'

/**
 * Base of errors caused by a Stripe call. Carries Stripe's request id (`req_...`), error code,
 * decline code and parameter so support can find the call in the Stripe dashboard.
 */
export class StripeCallException extends BillingException {
  stripeRequestId: string | null = null
  stripeCode: string | null = null
  declineCode: string | null = null
  param: string | null = null
}

/** The card was declined (402). */
export class CardDeclinedException extends StripeCallException {
  static status = 402
  static code = 'E_BILLING_CARD_DECLINED'
}

/**
 * The payment needs customer authentication (3-D Secure). `clientSecret` lets the frontend confirm it
 * with Stripe.js.
 */
export class AuthenticationRequiredException extends StripeCallException {
  static status = 402
  static code = 'E_BILLING_AUTHENTICATION_REQUIRED'
  clientSecret: string | null = null
  paymentIntentId: string | null = null
}

/** Stripe rate limited us (it answered 429 even after retries). */
export class StripeRateLimitedException extends StripeCallException {
  static status = 503
  static code = 'E_BILLING_STRIPE_RATE_LIMITED'
}

/** Stripe could not be reached or failed (network error, timeout, 5xx after retries). */
export class StripeUnavailableException extends StripeCallException {
  static status = 503
  static code = 'E_BILLING_STRIPE_UNAVAILABLE'
}

/** Stripe refused the request as invalid (a bug or a catalog out of sync). */
export class StripeInvalidRequestException extends StripeCallException {
  static status = 500
  static code = 'E_BILLING_STRIPE_INVALID_REQUEST'
}

/** The API key is missing, wrong or lacks permissions. */
export class StripeNotConfiguredException extends StripeCallException {
  static status = 500
  static code = 'E_BILLING_STRIPE_NOT_CONFIGURED'
}

/**
 * Maps an error thrown by the `stripe` SDK to the package's typed exceptions (anything else is
 * returned untouched).
 */
export function mapStripeError(error: unknown): unknown {
  const source = error as any
  if (!source || typeof source.type !== 'string' || !source.type.startsWith('Stripe')) return error

  let mapped: StripeCallException
  const message = source.message ?? 'Stripe request failed'
  switch (source.type) {
    case 'StripeCardError':
      mapped =
        source.code === 'authentication_required'
          ? new AuthenticationRequiredException(message)
          : new CardDeclinedException(message)
      break
    case 'StripeRateLimitError':
      mapped = new StripeRateLimitedException(message)
      break
    case 'StripeConnectionError':
    case 'StripeAPIError':
      mapped = new StripeUnavailableException(message)
      break
    case 'StripeAuthenticationError':
    case 'StripePermissionError':
      mapped = new StripeNotConfiguredException(message)
      break
    default:
      mapped = new StripeInvalidRequestException(message)
  }
  mapped.cause = error
  mapped.stripeRequestId = source.requestId ?? source.headers?.['request-id'] ?? null
  mapped.stripeCode = source.code ?? null
  mapped.declineCode = source.decline_code ?? source.raw?.decline_code ?? null
  mapped.param = source.param ?? null
  mapped.details = {
    stripe_request_id: mapped.stripeRequestId,
    ...(mapped.stripeCode ? { stripe_code: mapped.stripeCode } : {}),
    ...(mapped.declineCode ? { decline_code: mapped.declineCode } : {}),
  }
  return mapped
}
