/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { DeliverOptions, DeliveryResult, SignOptions } from './types.ts'
import type { Obj } from './util.ts'

/**
 * Builds a `Stripe-Signature` header (`t=...,v1=...[,v1=...]`) for a raw body with the SDK's own
 * `webhooks.generateTestHeaderString`, one `v1` per secret. The SDK is imported lazily.
 */
export async function signPayload(payload: string, secret: string | string[], options: SignOptions = {}): Promise<string> {
  const { default: Stripe } = await import('stripe')
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000)
  const secrets = Array.isArray(secret) ? secret : [secret]
  if (!secrets.length) throw new Error('StripeFake.signPayload needs at least one secret')
  const signatures = secrets.map((s) => {
    const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: s, timestamp })
    const v1 = header.split(',').find((part) => part.startsWith('v1='))
    if (!v1) throw new Error(`Unexpected test header from the stripe SDK: ${header}`)
    return v1
  })
  return [`t=${timestamp}`, ...signatures].join(',')
}

/**
 * The JSON body Stripe posts for an event (pretty printed, like Stripe's).
 */
export function eventPayload(event: Obj): string {
  return JSON.stringify(event, null, 2)
}

function tamperBody(body: string): string {
  if (body.includes('"livemode": false')) return body.replace('"livemode": false', '"livemode": true')
  return `${body} `
}

/**
 * POSTs an event to `url` like Stripe does: raw JSON body and a `Stripe-Signature` header.
 */
export async function postEvent(url: string, event: Obj, options: DeliverOptions, signal?: AbortSignal): Promise<DeliveryResult> {
  const secrets = options.secrets ?? (options.secret ? [options.secret] : [])
  if (!secrets.length) throw new Error('StripeFake.deliver needs `secret` (or `secrets`)')
  const body = eventPayload(event)
  const signature = await signPayload(body, secrets, { timestamp: options.timestamp })
  const sent = options.tamper ? (typeof options.tamper === 'function' ? options.tamper(body) : tamperBody(body)) : body
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
      'stripe-signature': signature,
      ...options.headers,
    },
    body: sent,
    signal: signal ?? AbortSignal.timeout(10_000),
  })
  const text = await response.text()
  return {
    eventId: event.id,
    status: response.status,
    ok: response.ok,
    body: text,
    headers: Object.fromEntries(response.headers.entries()),
    signature,
  }
}
