/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

/**
 * Options of `StripeFake.start()`.
 */
export interface StripeFakeOptions {
  /**
   * Port to listen on (127.0.0.1). 0, the default, picks a free one.
   */
  port?: number
  /**
   * `api_version` written on events. Defaults to the installed SDK's pinned version.
   */
  apiVersion?: string
  /**
   * Freezes the fake clock at this unix timestamp from the start.
   */
  now?: number
}

/**
 * Spread into the `stripe` client's config: `new Stripe(key, { ...fake.clientOptions })`.
 */
export interface StripeFakeClientOptions {
  host: string
  port: number
  protocol: 'http'
}

/**
 * Kinds of injected faults.
 */
export type FaultKind = 'error' | 'rate_limit' | 'server_error' | 'timeout'

/**
 * One request the fake received.
 */
export interface RecordedRequest {
  /**
   * The `request-id` the fake answered with (`req_...`).
   */
  id: string
  method: string
  path: string
  /**
   * Parsed query string.
   */
  query: Record<string, any>
  /**
   * Parsed form body.
   */
  body: Record<string, any>
  /**
   * What the endpoint saw: the body for POST, the query otherwise.
   */
  params: Record<string, any>
  idempotencyKey: string | null
  stripeVersion: string | null
  apiKey: string | null
  /**
   * HTTP status answered; 0 when the fake never answered (timeout fault).
   */
  status: number
  /**
   * Wall-clock time the request arrived (ms since the epoch).
   */
  time: number
  /**
   * True when the response was an idempotent replay.
   */
  replayed: boolean
  /**
   * The injected fault that answered this request, if any.
   */
  fault: FaultKind | null
  /**
   * Lower-cased request headers.
   */
  headers: Record<string, string>
}

/**
 * Which requests a fault applies to.
 */
export interface FaultMatcher {
  /**
   * HTTP method (any when omitted).
   */
  method?: string
  /**
   * Exact path (`/v1/customers`) or a RegExp tested against the path (any when omitted).
   */
  path?: string | RegExp
  /**
   * How many matching requests the fault answers (1 by default).
   */
  times?: number
}

/**
 * An injected Stripe error response.
 */
export interface FailOptions extends FaultMatcher {
  status?: number
  type?: string
  code?: string
  declineCode?: string
  message?: string
  param?: string
  headers?: Record<string, string>
}

/**
 * An injected timeout: the fake holds the connection without answering, then drops it.
 */
export interface TimeoutOptions extends FaultMatcher {
  /**
   * How long to hold the socket before destroying it (30 s by default; set the client's `timeout`
   * lower so the SDK gives up first and raises `StripeConnectionError`).
   */
  holdMs?: number
}

/**
 * Options of `StripeFake.signPayload`.
 */
export interface SignOptions {
  /**
   * Unix timestamp of the signature (wall clock by default, so verification tolerance passes).
   */
  timestamp?: number
}

/**
 * Options of `fake.deliver()` / `fake.deliverAll()`.
 */
export interface DeliverOptions extends SignOptions {
  /**
   * Webhook signing secret (`whsec_...`).
   */
  secret?: string
  /**
   * Several secrets (rotation): the header carries one `v1=` per secret.
   */
  secrets?: string[]
  /**
   * Changes the body after signing so verification fails: `true` flips `livemode`, or a function
   * returning the body to send.
   */
  tamper?: boolean | ((body: string) => string)
  /**
   * Extra request headers.
   */
  headers?: Record<string, string>
}

/**
 * The receiver's answer to one delivery.
 */
export interface DeliveryResult {
  eventId: string
  status: number
  ok: boolean
  body: string
  headers: Record<string, string>
  /**
   * The `Stripe-Signature` header that was sent.
   */
  signature: string
}

/**
 * A webhook endpoint registered with `fake.addWebhookEndpoint()`.
 */
export interface WebhookEndpoint {
  id: string
  url: string
  secret: string
  /**
   * Event types delivered (`*` wildcards allowed); every type when omitted.
   */
  types?: string[]
}

/**
 * One automatic delivery attempt to a registered endpoint.
 */
export interface WebhookDelivery {
  eventId: string
  eventType: string
  endpointId: string
  url: string
  status: number | null
  ok: boolean
  error: string | null
  time: number
}

/**
 * What the customer does on the hosted Checkout page (`fake.completeCheckout`).
 */
export type { CheckoutCompletion } from './resources/checkout.ts'
