/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Engine, Route } from './engine.ts'
import { StripeApiError } from './errors.ts'
import { randomToken, type Obj } from './util.ts'

/**
 * Session lifetime of the v2 meter event stream (15 minutes, as Stripe's).
 */
export const METER_EVENT_SESSION_SECONDS = 15 * 60

/**
 * A v2 error answer: `{ error: { type, code, message } }` (the SDK maps `type` to its error classes,
 * e.g. `temporary_session_expired` → `TemporarySessionExpiredError`).
 */
export class V2Error extends Error {
  status: number
  type: string
  constructor(status: number, type: string, message: string) {
    super(message)
    this.status = status
    this.type = type
  }

  body() {
    return JSON.stringify({ error: { type: this.type, code: this.type, message: this.message } })
  }
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString()

/**
 * The v2 meter event API: `POST /v2/billing/meter_event_session` (secret key → a 15-minute session
 * token) and `POST /v2/billing/meter_event_stream` (session token; 1 to 100 events, JSON). Events go
 * through the same validation as v1 meter events; as on Stripe, the stream answers before processing:
 * an invalid event does not fail the request (it lands in `errors`), and a repeated identifier is
 * dropped silently.
 */
export class MeterEventStream {
  #engine: Engine
  #createV1: Route['handler']
  #sessions = new Map<string, number>()
  /** Events the stream refused, with why */
  readonly errors: Array<{ event: Obj; message: string }> = []

  constructor(engine: Engine, createV1: Route['handler']) {
    this.#engine = engine
    this.#createV1 = createV1
  }

  handles(path: string) {
    return path === '/v2/billing/meter_event_session' || path === '/v2/billing/meter_event_stream'
  }

  /**
   * Answers a v2 request (throws `V2Error`).
   */
  handle(method: string, path: string, token: string | null, rawBody: string): unknown {
    if (method !== 'POST') throw new V2Error(404, 'not_found', `Unrecognized request URL (${method}: ${path}).`)
    let body: Obj
    try {
      body = rawBody ? JSON.parse(rawBody) : {}
    } catch {
      throw new V2Error(400, 'invalid_request_error', 'The request body must be JSON.')
    }
    const now = this.#engine.now()
    if (path === '/v2/billing/meter_event_session') {
      if (!token || !/^(sk|rk)_test_\S+$/.test(token)) throw new V2Error(401, 'invalid_request_error', 'Invalid API Key provided.')
      const authenticationToken = `mes_tok_${randomToken(32)}`
      this.#sessions.set(authenticationToken, now + METER_EVENT_SESSION_SECONDS)
      return {
        id: `mes_${randomToken(24)}`,
        object: 'v2.billing.meter_event_session',
        authentication_token: authenticationToken,
        created: iso(now),
        expires_at: iso(now + METER_EVENT_SESSION_SECONDS),
        livemode: false,
      }
    }
    const expiresAt = token ? this.#sessions.get(token) : undefined
    if (expiresAt === undefined) throw new V2Error(401, 'invalid_request_error', 'Invalid meter event session token.')
    if (now >= expiresAt) throw new V2Error(401, 'temporary_session_expired', 'Your meter event session has expired. Create a new session.')
    const events = body.events
    if (!Array.isArray(events) || events.length < 1 || events.length > 100) {
      throw new V2Error(400, 'invalid_request_error', '`events` must contain between 1 and 100 events.')
    }
    for (const event of events as Obj[]) {
      const timestamp = typeof event.timestamp === 'string' ? Math.floor(Date.parse(event.timestamp) / 1000) : undefined
      try {
        this.#createV1({
          method: 'POST',
          path: '/v1/billing/meter_events',
          params: { event_name: event.event_name, identifier: event.identifier, payload: event.payload, ...(timestamp !== undefined ? { timestamp: String(timestamp) } : {}) },
          ids: {},
          requestId: `req_${randomToken(14)}`,
          idempotencyKey: null,
        })
      } catch (error) {
        if (error instanceof StripeApiError && /already exists/.test(error.message)) continue
        this.errors.push({ event, message: error instanceof Error ? error.message : String(error) })
      }
    }
    return {}
  }
}
