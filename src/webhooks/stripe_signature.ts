/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHmac, timingSafeEqual } from 'node:crypto'
import { BillingException } from '../errors.ts'

/**
 * A webhook was refused before being stored (400 problem+json, never 500).
 */
export class WebhookRejectedException extends BillingException {
  static status = 400
  static code = 'E_BILLING_WEBHOOK_REJECTED'
}

/** No `Stripe-Signature` header. */
export class WebhookSignatureMissingException extends WebhookRejectedException {
  static code = 'E_BILLING_WEBHOOK_SIGNATURE_MISSING'
}

/** The signature does not match the body with any configured secret. */
export class WebhookSignatureInvalidException extends WebhookRejectedException {
  static code = 'E_BILLING_WEBHOOK_SIGNATURE_INVALID'
}

/** The signed timestamp is outside the tolerance (too old, or too far in the future). */
export class WebhookTimestampException extends WebhookRejectedException {
  static code = 'E_BILLING_WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE'
}

/** The body is not a JSON Stripe event. */
export class WebhookPayloadInvalidException extends WebhookRejectedException {
  static code = 'E_BILLING_WEBHOOK_PAYLOAD_INVALID'
}

/** The body is larger than `webhooks.maxBodyBytes`. */
export class WebhookPayloadTooLargeException extends WebhookRejectedException {
  static status = 413
  static code = 'E_BILLING_WEBHOOK_PAYLOAD_TOO_LARGE'
}

/** No webhook secret is configured (outside tests): answered 503 so Stripe keeps retrying. */
export class WebhookNotConfiguredException extends BillingException {
  static status = 503
  static code = 'E_BILLING_WEBHOOK_NOT_CONFIGURED'
}

/**
 * Parses `t=...,v1=...,v1=...` (unknown schemes such as `v0` are ignored).
 */
function parseHeader(header: string) {
  let timestamp: number | null = null
  const signatures: Buffer[] = []
  for (const part of header.split(',')) {
    const index = part.indexOf('=')
    if (index === -1) continue
    const key = part.slice(0, index).trim()
    const value = part.slice(index + 1).trim()
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value)
    if (key === 'v1' && /^[0-9a-f]{64}$/i.test(value)) signatures.push(Buffer.from(value, 'hex'))
  }
  return { timestamp, signatures }
}

/**
 * Verifies a `Stripe-Signature` header against the raw body bytes: HMAC-SHA256 of
 * `${t}.${body}` with each configured secret (several while rotating) compared in constant time with
 * each `v1` signature, and `t` within `toleranceSeconds` of now in both directions (the stripe SDK only
 * checks age). Throws a `WebhookRejectedException` subclass.
 */
export function verifyStripeSignature(
  rawBody: Buffer,
  header: string | undefined | null,
  secrets: string[],
  toleranceSeconds: number,
  nowSeconds = Math.floor(Date.now() / 1000)
) {
  if (!header) throw new WebhookSignatureMissingException('Missing Stripe-Signature header')
  const { timestamp, signatures } = parseHeader(header)
  if (timestamp === null || signatures.length === 0) {
    throw new WebhookSignatureInvalidException('Malformed Stripe-Signature header')
  }

  let matched = false
  for (const secret of secrets) {
    const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest()
    for (const signature of signatures) {
      /**
       * Check every pair (no early exit) so timing does not tell which secret or position matched
       */
      if (timingSafeEqual(expected, signature)) matched = true
    }
  }
  if (!matched) throw new WebhookSignatureInvalidException('No signature matches the payload')

  const skew = nowSeconds - timestamp
  if (skew > toleranceSeconds) throw new WebhookTimestampException(`Signature timestamp is ${skew}s old (tolerance ${toleranceSeconds}s)`)
  if (-skew > toleranceSeconds) {
    throw new WebhookTimestampException(`Signature timestamp is ${-skew}s in the future (tolerance ${toleranceSeconds}s)`)
  }
  return timestamp
}
