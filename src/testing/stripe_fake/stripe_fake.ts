/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { MAX_IDEMPOTENCY_KEY_LENGTH, PARAM_LIMITS } from './param_limits.ts'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type Stripe from 'stripe'
import { Billing } from './billing.ts'
import { resolvePaymentMethod } from './cards.ts'
import { Engine, type Route } from './engine.ts'
import { invalidRequest, StripeApiError } from './errors.ts'
import { parseForm, validateParams } from './form.ts'
import { PARAMS } from './params_schema.ts'
import { catalogRoutes } from './resources/catalog.ts'
import { checkoutRoutes, completeCheckout, type CheckoutCompletion } from './resources/checkout.ts'
import { customerRoutes } from './resources/customers.ts'
import { eventRoutes } from './resources/events.ts'
import { meterRoutes } from './resources/meters.ts'
import { subscriptionRoutes } from './resources/subscriptions.ts'
import { StripeFakeStore } from './store_view.ts'
import type {
  DeliverOptions,
  DeliveryResult,
  FailOptions,
  FaultKind,
  FaultMatcher,
  RecordedRequest,
  SignOptions,
  StripeFakeClientOptions,
  StripeFakeOptions,
  TimeoutOptions,
  WebhookDelivery,
  WebhookEndpoint,
} from './types.ts'
import { makeId, randomToken, type Obj } from './util.ts'
import { postEvent, signPayload } from './webhooks.ts'
import { MeterEventStream, V2Error } from './meter_event_stream.ts'

interface Fault {
  kind: FaultKind
  method?: string
  path?: string | RegExp
  remaining: number
  status: number
  type: string
  code?: string
  declineCode?: string
  message: string
  param?: string
  headers: Record<string, string>
  holdMs: number
}

interface CompiledRoute extends Route {
  pattern: RegExp
  keys: string[]
}

interface CachedResponse {
  fingerprint: string
  status: number
  body: string
  requestId: string
}

interface EndpointState extends WebhookEndpoint {
  chain: Promise<void>
}

const MAX_BODY = 1024 * 1024

function compile(route: Route): CompiledRoute {
  const keys: string[] = []
  const source = route.path
    .split('/')
    .map((segment) => {
      if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      keys.push(segment.slice(1))
      return '([^/]+)'
    })
    .join('/')
  return { ...route, pattern: new RegExp(`^${source}$`), keys }
}

function typeMatches(type: string, filters: string[] | undefined) {
  if (!filters || !filters.length) return true
  return filters.some((f) => (f === '*' ? true : f.endsWith('*') ? type.startsWith(f.slice(0, -1)) : f === type))
}

function pathMatches(path: string, matcher: string | RegExp | undefined) {
  if (matcher === undefined) return true
  if (typeof matcher === 'string') return matcher === path
  matcher.lastIndex = 0
  return matcher.test(path)
}

/**
 * A loopback fake of the Stripe API for tests and demos. Point the official `stripe` client at it:
 *
 * ```ts
 * const fake = await StripeFake.start()
 * const stripe = new Stripe('sk_test_x', { ...fake.clientOptions, maxNetworkRetries: 0 })
 * ```
 *
 * It keeps state in memory (customers, catalog, subscriptions, invoices, meters, entitlements,
 * checkout), rejects parameters the SDK does not declare like Stripe does, records every request and
 * event, replays idempotent requests, injects faults, runs a controllable clock and delivers signed
 * webhooks.
 */
export class StripeFake {
  #server: Server
  #engine: Engine
  #billing: Billing
  #routes: CompiledRoute[]
  #faults: Fault[] = []
  #requests: RecordedRequest[] = []
  #idempotency = new Map<string, CachedResponse>()
  #stream!: MeterEventStream
  #held = new Set<Socket>()
  #endpoints: EndpointState[] = []
  #deliveries: WebhookDelivery[] = []
  #deliveryState = new Map<string, Map<string, 'pending' | 'ok' | 'failed'>>()
  #abort = new AbortController()
  #port = 0

  /**
   * Read access to stored objects and recorded events.
   */
  readonly store: StripeFakeStore

  private constructor(options: StripeFakeOptions & { apiVersion: string }) {
    this.#engine = new Engine(options.apiVersion)
    if (options.now !== undefined) this.#engine.setNow(options.now)
    this.#billing = new Billing(this.#engine)
    this.store = new StripeFakeStore(this.#engine)
    this.#routes = [
      ...customerRoutes(this.#engine, this.#billing),
      ...catalogRoutes(this.#engine, this.#billing),
      ...meterRoutes(this.#engine),
      ...subscriptionRoutes(this.#engine, this.#billing),
      ...checkoutRoutes(this.#engine, this.#billing),
      ...eventRoutes(this.#engine, (id) => this.#deliverySucceeded(id)),
    ].map(compile)
    const createMeterEvent = this.#routes.find((route) => route.method === 'POST' && route.path === '/v1/billing/meter_events')!
    this.#stream = new MeterEventStream(this.#engine, createMeterEvent.handler)
    this.#engine.onEvent = (event) => this.#onEvent(event)
    this.#engine.pendingWebhooks = (type) => this.#endpoints.filter((e) => typeMatches(type, e.types)).length
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json', 'request-id': `req_${randomToken(14)}` })
          res.end(JSON.stringify({ error: { type: 'api_error', message: `StripeFake internal error: ${String(error?.message ?? error)}` } }))
        }
      })
    })
    this.#server.on('connection', (socket) => {
      socket.on('error', () => {})
    })
  }

  /**
   * Starts a fake listening on 127.0.0.1 (`port: 0`, the default, picks a free port).
   */
  static async start(options: StripeFakeOptions = {}): Promise<StripeFake> {
    const apiVersion = options.apiVersion ?? (await import('stripe')).default.API_VERSION
    const fake = new StripeFake({ ...options, apiVersion })
    await new Promise<void>((resolve, reject) => {
      fake.#server.once('error', reject)
      fake.#server.listen(options.port ?? 0, '127.0.0.1', () => {
        fake.#server.off('error', reject)
        resolve()
      })
    })
    const address = fake.#server.address()
    fake.#port = typeof address === 'object' && address ? address.port : 0
    return fake
  }

  /**
   * Builds a `Stripe-Signature` header for a raw body with the SDK's `generateTestHeaderString`
   * (one `v1` per secret when given several).
   */
  static signPayload(rawBody: string, secret: string | string[], options: SignOptions = {}): Promise<string> {
    return signPayload(rawBody, secret, options)
  }

  /**
   * Port the fake listens on.
   */
  get port(): number {
    return this.#port
  }

  /**
   * Base URL, e.g. `http://127.0.0.1:51234`.
   */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`
  }

  /**
   * Options to spread into the `stripe` client config.
   */
  get clientOptions(): StripeFakeClientOptions {
    return { host: '127.0.0.1', port: this.#port, protocol: 'http' }
  }

  /**
   * `api_version` written on events.
   */
  get apiVersion(): string {
    return this.#engine.apiVersion
  }

  /**
   * Stops listening, drops held connections and aborts webhook deliveries in flight.
   */
  async close(): Promise<void> {
    this.#abort.abort()
    for (const socket of this.#held) socket.destroy()
    this.#held.clear()
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }

  // -----------------------------------------------------------------------------------------------
  // Inspection
  // -----------------------------------------------------------------------------------------------

  /**
   * Every request received so far, in order (copies).
   */
  get requests(): RecordedRequest[] {
    return structuredClone(this.#requests)
  }

  /**
   * Requests matching a method (or `*`) and an exact path or RegExp.
   */
  requestsTo(method: string, path?: string | RegExp): RecordedRequest[] {
    return this.requests.filter((r) => (method === '*' || r.method === method.toUpperCase()) && pathMatches(r.path, path))
  }

  /**
   * The last request (optionally the last one matching method and path).
   */
  lastRequest(method?: string, path?: string | RegExp): RecordedRequest | undefined {
    const list = method ? this.requestsTo(method, path) : this.requests
    return list[list.length - 1]
  }

  /**
   * Clears every object, event, fault, idempotency key, webhook endpoint and logged request, and lets
   * the clock follow the wall clock again.
   */
  reset() {
    this.#engine.clear()
    this.#engine.useRealTime()
    this.#faults = []
    this.#requests = []
    this.#idempotency.clear()
    this.#endpoints = []
    this.#deliveries = []
    this.#deliveryState.clear()
  }

  // -----------------------------------------------------------------------------------------------
  // Clock
  // -----------------------------------------------------------------------------------------------

  /**
   * Current time of the fake clock (unix seconds).
   */
  now(): number {
    return this.#engine.now()
  }

  /**
   * Freezes the clock at a unix timestamp (used for `created`, trials, periods, meter windows).
   */
  setNow(timestamp: number): this {
    this.#engine.setNow(timestamp)
    return this
  }

  /**
   * Moves the clock forward by `seconds` (nothing is billed: use `advanceToPeriodEnd` for renewals).
   */
  advance(seconds: number): this {
    this.#engine.advance(seconds)
    return this
  }

  /**
   * Moves the clock to the end of a subscription's current period (or trial) and does what Stripe
   * does there: roll the period and invoice it (charging the card), end the trial, cancel a
   * subscription set to cancel, or expire an incomplete one after 23 hours.
   */
  advanceToPeriodEnd(subscriptionId: string): { subscription: Stripe.Subscription; invoice: Stripe.Invoice | null } {
    const sub = this.#engine.find(subscriptionId, 'subscription')
    if (!sub) throw new Error(`StripeFake: no subscription ${subscriptionId}`)
    const { subscription, invoice } = this.#billing.advanceToPeriodEnd(sub)
    return {
      subscription: this.#engine.render(subscription) as Stripe.Subscription,
      invoice: invoice ? (this.#engine.render(invoice) as Stripe.Invoice) : null,
    }
  }

  // -----------------------------------------------------------------------------------------------
  // Customer-side helpers
  // -----------------------------------------------------------------------------------------------

  /**
   * Completes a Checkout session as if the customer paid on the hosted page.
   */
  completeCheckout(sessionId: string, input: CheckoutCompletion = {}): Stripe.Checkout.Session {
    return completeCheckout(this.#engine, this.#billing, sessionId, input) as Stripe.Checkout.Session
  }

  /**
   * Pays an open invoice as if the customer confirmed its payment client-side (3-D Secure passed,
   * or a card entered for a `default_incomplete` subscription). Incomplete / past-due
   * subscriptions become active.
   */
  completeInvoicePayment(invoiceId: string, options: { paymentMethod?: string } = {}): Stripe.Invoice {
    const invoice = this.#engine.find(invoiceId, 'invoice')
    if (!invoice) throw new Error(`StripeFake: no invoice ${invoiceId}`)
    const pm = options.paymentMethod ? resolvePaymentMethod(this.#engine, options.paymentMethod, 'payment_method') : undefined
    this.#billing.pay(invoice, { paymentMethod: pm, authenticated: true })
    return this.#engine.render(invoice) as Stripe.Invoice
  }

  // -----------------------------------------------------------------------------------------------
  // Faults
  // -----------------------------------------------------------------------------------------------

  /**
   * Answers the next matching request(s) with a Stripe error (402 `card_error` / `card_declined` by
   * default). Nothing is changed in the fake's state.
   */
  failNext(options: FailOptions = {}): this {
    const status = options.status ?? 402
    const type = options.type ?? (status === 402 ? 'card_error' : status >= 500 ? 'api_error' : 'invalid_request_error')
    this.#faults.push({
      kind: 'error',
      method: options.method?.toUpperCase(),
      path: options.path,
      remaining: options.times ?? 1,
      status,
      type,
      code: options.code ?? (status === 402 ? 'card_declined' : undefined),
      declineCode: options.declineCode ?? (status === 402 && !options.code ? 'generic_decline' : undefined),
      message: options.message ?? (status === 402 ? 'Your card was declined.' : 'An error occurred (injected by StripeFake).'),
      param: options.param,
      headers: options.headers ?? {},
      holdMs: 0,
    })
    return this
  }

  /**
   * Answers the next matching request(s) with 429 `rate_limit` (with `Stripe-Should-Retry: true`, so
   * the SDK retries when `maxNetworkRetries > 0`).
   */
  rateLimitNext(options: FaultMatcher & { message?: string } = {}): this {
    this.#faults.push({
      kind: 'rate_limit',
      method: options.method?.toUpperCase(),
      path: options.path,
      remaining: options.times ?? 1,
      status: 429,
      type: 'invalid_request_error',
      code: 'rate_limit',
      message:
        options.message ??
        'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.',
      headers: { 'stripe-should-retry': 'true' },
      holdMs: 0,
    })
    return this
  }

  /**
   * Answers the next matching request(s) with 500 `api_error` (the SDK retries 5xx when
   * `maxNetworkRetries > 0`).
   */
  serverErrorNext(options: FaultMatcher & { message?: string; status?: number } = {}): this {
    this.#faults.push({
      kind: 'server_error',
      method: options.method?.toUpperCase(),
      path: options.path,
      remaining: options.times ?? 1,
      status: options.status ?? 500,
      type: 'api_error',
      message: options.message ?? 'An unknown error occurred (injected by StripeFake).',
      headers: {},
      holdMs: 0,
    })
    return this
  }

  /**
   * Never answers the next matching request(s): the connection is held, then destroyed after
   * `holdMs`, so the SDK raises `StripeConnectionError` once its `timeout` elapses.
   */
  timeoutNext(options: TimeoutOptions = {}): this {
    this.#faults.push({
      kind: 'timeout',
      method: options.method?.toUpperCase(),
      path: options.path,
      remaining: options.times ?? 1,
      status: 0,
      type: '',
      message: '',
      headers: {},
      holdMs: options.holdMs ?? 30_000,
    })
    return this
  }

  /**
   * Drops every pending fault.
   */
  clearFaults(): this {
    this.#faults = []
    return this
  }

  #takeFault(method: string, path: string): Fault | null {
    const fault = this.#faults.find((f) => (!f.method || f.method === method) && pathMatches(path, f.path))
    if (!fault) return null
    fault.remaining -= 1
    if (fault.remaining <= 0) this.#faults.splice(this.#faults.indexOf(fault), 1)
    return fault
  }

  // -----------------------------------------------------------------------------------------------
  // Webhooks
  // -----------------------------------------------------------------------------------------------

  /**
   * POSTs one event (object or id) to `url` with a valid `Stripe-Signature` header.
   */
  async deliver(url: string, eventOrId: string | Stripe.Event | Obj, options: DeliverOptions): Promise<DeliveryResult> {
    const event = typeof eventOrId === 'string' ? this.#engine.find(eventOrId, 'event') : eventOrId
    if (!event) throw new Error(`StripeFake: no event ${String(eventOrId)}`)
    return postEvent(url, event as Obj, options)
  }

  /**
   * Delivers every recorded event (optionally only some types, `*` wildcards allowed) in the order
   * they happened.
   */
  async deliverAll(url: string, options: DeliverOptions & { types?: string[] }): Promise<DeliveryResult[]> {
    const results: DeliveryResult[] = []
    for (const event of this.#engine.all('event').reverse()) {
      if (!typeMatches(event.type, options.types)) continue
      results.push(await postEvent(url, event, options))
    }
    return results
  }

  /**
   * Registers a webhook endpoint: every new event (of `types`, when given) is delivered to it
   * automatically, in order. Await `flushWebhooks()` to wait for deliveries.
   */
  addWebhookEndpoint(url: string, secret: string, options: { types?: string[] } = {}): WebhookEndpoint {
    const endpoint: EndpointState = { id: makeId('we_'), url, secret, types: options.types, chain: Promise.resolve() }
    this.#endpoints.push(endpoint)
    return { id: endpoint.id, url, secret, types: options.types }
  }

  /**
   * Stops delivering to an endpoint.
   */
  removeWebhookEndpoint(id: string): this {
    this.#endpoints = this.#endpoints.filter((e) => e.id !== id)
    return this
  }

  /**
   * Waits until every automatic delivery queued so far (and those it triggers) has finished.
   */
  async flushWebhooks(): Promise<void> {
    for (;;) {
      const chains = this.#endpoints.map((e) => e.chain)
      await Promise.all(chains)
      if (this.#endpoints.every((e, i) => e.chain === chains[i])) return
    }
  }

  /**
   * Queues failed automatic deliveries again (like Stripe's retries).
   */
  retryFailedWebhooks(): this {
    for (const [eventId, states] of this.#deliveryState) {
      for (const [endpointId, state] of states) {
        if (state !== 'failed') continue
        const endpoint = this.#endpoints.find((e) => e.id === endpointId)
        if (endpoint) this.#enqueue(endpoint, eventId)
      }
    }
    return this
  }

  /**
   * Every automatic delivery attempt so far.
   */
  get webhookDeliveries(): WebhookDelivery[] {
    return structuredClone(this.#deliveries)
  }

  #onEvent(event: Obj) {
    for (const endpoint of this.#endpoints) {
      if (typeMatches(event.type, endpoint.types)) this.#enqueue(endpoint, event.id)
    }
  }

  #enqueue(endpoint: EndpointState, eventId: string) {
    let states = this.#deliveryState.get(eventId)
    if (!states) {
      states = new Map()
      this.#deliveryState.set(eventId, states)
    }
    states.set(endpoint.id, 'pending')
    endpoint.chain = endpoint.chain.then(() => this.#deliverToEndpoint(endpoint, eventId))
  }

  async #deliverToEndpoint(endpoint: EndpointState, eventId: string) {
    const event = this.#engine.store.get(eventId)
    if (!event || this.#abort.signal.aborted) return
    const record: WebhookDelivery = {
      eventId,
      eventType: event.type,
      endpointId: endpoint.id,
      url: endpoint.url,
      status: null,
      ok: false,
      error: null,
      time: Date.now(),
    }
    try {
      const result = await postEvent(endpoint.url, event, { secret: endpoint.secret }, AbortSignal.any([this.#abort.signal, AbortSignal.timeout(10_000)]))
      record.status = result.status
      record.ok = result.ok
    } catch (error) {
      record.error = error instanceof Error ? error.message : String(error)
    }
    this.#deliveries.push(record)
    this.#deliveryState.get(eventId)?.set(endpoint.id, record.ok ? 'ok' : 'failed')
    const states = [...(this.#deliveryState.get(eventId)?.values() ?? [])]
    event.pending_webhooks = states.filter((s) => s !== 'ok').length
  }

  #deliverySucceeded(eventId: string): boolean {
    const states = this.#deliveryState.get(eventId)
    if (!states) return true
    return [...states.values()].every((s) => s === 'ok')
  }

  // -----------------------------------------------------------------------------------------------
  // HTTP
  // -----------------------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse) {
    const requestId = `req_${randomToken(14)}`
    const method = (req.method ?? 'GET').toUpperCase()
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const path = url.pathname.replace(/\/+$/, '') || '/'
    const headers: Record<string, string> = {}
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value
    }
    const rawBody = await this.#readBody(req)
    const idempotencyKey = headers['idempotency-key'] ?? null
    const stripeVersion = headers['stripe-version'] ?? null
    const record: RecordedRequest = {
      id: requestId,
      method,
      path,
      query: {},
      body: {},
      params: {},
      idempotencyKey,
      stripeVersion,
      apiKey: null,
      status: 0,
      time: Date.now(),
      replayed: false,
      fault: null,
      headers,
    }
    this.#requests.push(record)

    const send = (status: number, body: string, extra: Record<string, string> = {}) => {
      record.status = status
      const out: Record<string, string> = {
        'content-type': 'application/json',
        'request-id': requestId,
        'stripe-version': stripeVersion ?? this.#engine.apiVersion,
        'access-control-allow-origin': '*',
        ...extra,
      }
      if (idempotencyKey) out['idempotency-key'] = idempotencyKey
      res.writeHead(status, out)
      res.end(body)
    }
    const sendError = (error: StripeApiError) =>
      send(error.status, JSON.stringify(error.toPayload(requestId, this.#engine.now()), null, 2), error.headers)

    if (this.#stream.handles(path)) return this.#handleV2(req, method, path, rawBody, headers, record, send)

    try {
      record.query = parseForm(url.search.slice(1))
      const contentType = headers['content-type'] ?? ''
      if (method === 'POST' && rawBody && contentType.includes('json')) {
        throw invalidRequest('StripeFake only accepts application/x-www-form-urlencoded bodies (v1 API).')
      }
      record.body = method === 'POST' ? parseForm(rawBody) : {}
      record.params = method === 'POST' ? { ...record.query, ...record.body } : record.query
    } catch (error) {
      if (error instanceof StripeApiError) return sendError(error)
      throw error
    }

    // Faults answer before anything else and never touch state.
    const fault = this.#takeFault(method, path)
    if (fault) {
      record.fault = fault.kind
      if (fault.kind === 'timeout') return this.#hold(req, fault.holdMs)
      return sendError(
        new StripeApiError(fault.status, fault.type, fault.message, {
          code: fault.code,
          declineCode: fault.declineCode,
          param: fault.param,
          headers: fault.headers,
        })
      )
    }

    const authorization = headers.authorization ?? ''
    let apiKey: string | null = null
    if (/^bearer /i.test(authorization)) apiKey = authorization.slice(7).trim()
    else if (/^basic /i.test(authorization)) apiKey = Buffer.from(authorization.slice(6), 'base64').toString('utf8').split(':')[0]
    record.apiKey = apiKey
    if (!apiKey) {
      return sendError(
        new StripeApiError(
          401,
          'invalid_request_error',
          "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."
        )
      )
    }
    if (!/^(sk|rk)_test_\S+$/.test(apiKey)) {
      const redacted = apiKey.length > 12 ? `${apiKey.slice(0, 8)}${'*'.repeat(Math.max(0, apiKey.length - 12))}${apiKey.slice(-4)}` : '***'
      return sendError(
        new StripeApiError(401, 'invalid_request_error', `Invalid API Key provided: ${redacted}`, { code: 'api_key_invalid' })
      )
    }

    let route: CompiledRoute | undefined
    let match: RegExpExecArray | null = null
    for (const candidate of this.#routes) {
      if (candidate.method !== method) continue
      const m = candidate.pattern.exec(path)
      if (!m) continue
      route = candidate
      match = m
      break
    }
    if (!route || !match) {
      return sendError(
        invalidRequest(
          `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
          { status: 404 }
        )
      )
    }

    if (idempotencyKey !== null && idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
      return sendError(
        invalidRequest(`Invalid idempotency key: it must be at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters long (it is ${idempotencyKey.length}).`, {
          param: 'Idempotency-Key',
        })
      )
    }
    const cacheKey = method === 'POST' && idempotencyKey ? `${apiKey}\u0000${idempotencyKey}` : null
    const fingerprint = JSON.stringify([method, path, record.params])
    if (cacheKey) {
      const cached = this.#idempotency.get(cacheKey)
      if (cached) {
        if (cached.fingerprint !== fingerprint) {
          return sendError(
            new StripeApiError(
              400,
              'idempotency_error',
              `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`
            )
          )
        }
        record.replayed = true
        return send(cached.status, cached.body, { 'idempotent-replayed': 'true', 'original-request': cached.requestId })
      }
    }

    const ids: Record<string, string> = {}
    route.keys.forEach((key, i) => (ids[key] = decodeURIComponent(match![i + 1])))
    let status = 200
    let body: string
    this.#engine.request = { id: requestId, idempotencyKey }
    try {
      if (route.schema) {
        const schema = PARAMS[route.schema]
        if (!schema) throw new Error(`StripeFake: no parameter schema ${route.schema}`)
        validateParams(record.params, schema, [], PARAM_LIMITS[route.schema])
      }
      const result = route.handler({ method, path, params: record.params, ids, requestId, idempotencyKey })
      body = JSON.stringify(this.#engine.expand(result, record.params.expand), null, 2)
    } catch (error) {
      if (!(error instanceof StripeApiError)) {
        const message = error instanceof Error ? error.message : String(error)
        error = new StripeApiError(500, 'api_error', `StripeFake internal error: ${message}`)
      }
      const apiError = error as StripeApiError
      status = apiError.status
      body = JSON.stringify(apiError.toPayload(requestId, this.#engine.now()), null, 2)
      if (cacheKey && status === 402) this.#idempotency.set(cacheKey, { fingerprint, status, body, requestId })
      return send(status, body, apiError.headers)
    } finally {
      this.#engine.request = { id: null, idempotencyKey: null }
    }
    if (cacheKey) this.#idempotency.set(cacheKey, { fingerprint, status, body, requestId })
    return send(status, body)
  }

  /**
   * The v2 meter event API (JSON bodies, session tokens); faults apply as on v1.
   */
  #handleV2(
    req: IncomingMessage,
    method: string,
    path: string,
    rawBody: string,
    headers: Record<string, string>,
    record: RecordedRequest,
    send: (status: number, body: string, extra?: Record<string, string>) => void
  ) {
    try {
      record.body = rawBody ? JSON.parse(rawBody) : {}
    } catch {
      record.body = {}
    }
    record.params = record.body
    const authorization = headers.authorization ?? ''
    record.apiKey = /^bearer /i.test(authorization) ? authorization.slice(7).trim() : null
    const fault = this.#takeFault(method, path)
    if (fault) {
      record.fault = fault.kind
      if (fault.kind === 'timeout') return this.#hold(req, fault.holdMs)
      return send(fault.status, new V2Error(fault.status, fault.status === 429 ? 'rate_limit' : 'api_error', fault.message ?? 'Injected fault').body())
    }
    try {
      return send(200, JSON.stringify(this.#stream.handle(method, path, record.apiKey, rawBody)))
    } catch (error) {
      if (error instanceof V2Error) return send(error.status, error.body())
      throw error
    }
  }

  /**
   * Meter events Stripe accepted (v1 calls and v2 stream), oldest first.
   */
  get meterEvents(): Array<Record<string, any>> {
    return this.#engine.meterEvents.map((record) => structuredClone(record.event))
  }

  /**
   * Events the v2 meter event stream accepted but could not process, with why.
   */
  get meterEventStreamErrors() {
    return structuredClone(this.#stream.errors)
  }

  #readBody(req: IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      req.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_BODY) {
          reject(new Error('Request body too large'))
          req.destroy()
          return
        }
        chunks.push(chunk)
      })
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
      req.on('error', reject)
    })
  }

  #hold(req: IncomingMessage, holdMs: number) {
    const socket = req.socket
    this.#held.add(socket)
    const timer = setTimeout(() => socket.destroy(), holdMs)
    timer.unref()
    socket.once('close', () => {
      clearTimeout(timer)
      this.#held.delete(socket)
    })
  }
}
