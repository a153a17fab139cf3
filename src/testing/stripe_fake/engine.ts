/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { FIXTURES, type FixtureName } from './fixtures.ts'
import { invalidRequest, resourceMissing } from './errors.ts'
import { ObjectStore } from './store.ts'
import { clone, int, jsonEqual, makeId, type Obj } from './util.ts'

/**
 * One API request as the handlers see it.
 */
export interface ApiRequest {
  method: string
  path: string
  /**
   * Query (GET/DELETE) or body (POST) parameters, parsed from bracket notation.
   */
  params: Obj
  /**
   * Values of the `:name` segments of the route.
   */
  ids: Record<string, string>
  requestId: string
  idempotencyKey: string | null
}

/**
 * Answers one request with the response body (errors are thrown as `StripeApiError`).
 */
export type Handler = (request: ApiRequest) => unknown

/**
 * One endpoint of the fake.
 */
export interface Route {
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  /**
   * Name of the SDK parameter type in `params_schema.ts` the request is validated against.
   */
  schema: string | null
  handler: Handler
}

/**
 * A meter event as the fake keeps it.
 */
export interface MeterEventRecord {
  event: Obj
  meter: string
  customer: string
  value: number
  receivedAt: number
  canceled: boolean
}

/**
 * State and shared machinery of the fake: the object store, the clock, events, rendering, lists
 * and `expand`. Resource modules register their routes on top of it.
 */
export class Engine {
  /**
   * Every stored object, by id.
   */
  readonly store = new ObjectStore()
  /**
   * Accepted meter events, in the order received.
   */
  meterEvents: MeterEventRecord[] = []
  /**
   * `api_version` written on events.
   */
  apiVersion: string
  /**
   * The request being handled (ids end up in `event.request`); null ids outside requests.
   */
  request: { id: string | null; idempotencyKey: string | null } = { id: null, idempotencyKey: null }
  /**
   * Called with every new event (webhook delivery hooks in here).
   */
  onEvent: ((event: Obj) => void) | null = null
  /**
   * How many webhook endpoints will receive an event of this type.
   */
  pendingWebhooks: (type: string) => number = () => 0
  /**
   * Per-type hooks that refresh derived fields of a copy before it is handed out.
   */
  readonly renderers = new Map<string, (copy: Obj) => void>()
  /**
   * Fields that only exist when expanded (`customer.subscriptions`, `checkout.session.line_items`).
   */
  readonly virtuals = new Map<string, (stored: Obj) => unknown>()

  #meta = new Map<string, Obj>()
  #deleted = new Set<string>()
  #eventTimes = new Map<string, number>()
  #fixedNow: number | null = null

  constructor(apiVersion: string) {
    this.apiVersion = apiVersion
  }

  /**
   * Current time of the fake clock (unix seconds).
   */
  now(): number {
    return this.#fixedNow ?? Math.floor(Date.now() / 1000)
  }

  /**
   * Freezes the clock at a unix timestamp.
   */
  setNow(timestamp: number) {
    this.#fixedNow = Math.floor(timestamp)
  }

  /**
   * Moves the clock forward (freezing it if it was following the wall clock).
   */
  advance(seconds: number) {
    this.#fixedNow = this.now() + Math.floor(seconds)
  }

  /**
   * Lets the clock follow the wall clock again.
   */
  useRealTime() {
    this.#fixedNow = null
  }

  /**
   * A deep copy of one of Stripe's fixture objects.
   */
  fixture(name: FixtureName): Obj {
    return clone(FIXTURES[name]) as Obj
  }

  /**
   * A new Stripe-like id.
   */
  id(prefix: string, length = 24): string {
    return makeId(prefix, length)
  }

  /**
   * Fake-only data kept next to a stored object (card behaviour, pending prorations, ...).
   */
  meta(id: string): Obj {
    let entry = this.#meta.get(id)
    if (!entry) {
      entry = {}
      this.#meta.set(id, entry)
    }
    return entry
  }

  /**
   * A stored, not deleted object of the given `object` type.
   */
  find(id: unknown, objectType?: string): Obj | undefined {
    if (typeof id !== 'string' || this.#deleted.has(id)) return undefined
    const found = this.store.get(id)
    if (!found || (objectType && found.object !== objectType)) return undefined
    return found
  }

  /**
   * Like {@link find}, but throws Stripe's `resource_missing` (404 for URL ids, 400 for parameters).
   */
  require(id: unknown, objectType: string, label: string, param = 'id', status?: number): Obj {
    const found = this.find(id, objectType)
    if (!found) throw resourceMissing(label, String(id ?? ''), param, status ?? (param === 'id' ? 404 : 400))
    return found
  }

  /**
   * Stores an object.
   */
  save(object: Obj): Obj {
    return this.store.put(object)
  }

  /**
   * Marks an object deleted (it stays readable as `{ id, object, deleted: true }`).
   */
  markDeleted(id: string) {
    this.#deleted.add(id)
  }

  /**
   * Whether the object was deleted.
   */
  isDeleted(id: string) {
    return this.#deleted.has(id)
  }

  /**
   * Every stored, not deleted object of a type, newest first.
   */
  all(objectType: string): Obj[] {
    return this.store.list(objectType).filter((o) => !this.#deleted.has(o.id))
  }

  /**
   * A copy of a stored object with derived fields refreshed, safe to hand out.
   */
  render(object: Obj): Obj {
    const copy = clone(object)
    this.renderers.get(object.object)?.(copy)
    return copy
  }

  /**
   * Records a v1 event (shape of Stripe's `event` fixture). `created` never goes backwards and strictly
   * increases per object, so consumers can order two events about the same object by `created`.
   */
  emit(type: string, object: Obj, previous?: Obj): Obj {
    const key = String(object.id ?? object.customer ?? type)
    const last = this.#eventTimes.get(key)
    const created = last === undefined ? this.now() : Math.max(this.now(), last + 1)
    this.#eventTimes.set(key, created)
    const event = this.fixture('event')
    Object.assign(event, {
      id: this.id('evt_'),
      object: 'event',
      api_version: this.apiVersion,
      created,
      data: previous ? { object: this.render(object), previous_attributes: previous } : { object: this.render(object) },
      livemode: false,
      pending_webhooks: this.pendingWebhooks(type),
      request: { id: this.request.id, idempotency_key: this.request.idempotencyKey },
      type,
    })
    if (!previous) delete event.data.previous_attributes
    this.save(event)
    this.onEvent?.(event)
    return event
  }

  /**
   * Applies `mutate` to a stored object and, when something visible changed, emits `eventType` with
   * `previous_attributes` (the previous value of every changed top-level field).
   */
  change(object: Obj, mutate: (object: Obj) => void, eventType: string | null): Obj | null {
    const before = this.render(object)
    mutate(object)
    const after = this.render(object)
    const previous: Obj = {}
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (!jsonEqual(before[key], after[key])) previous[key] = before[key] ?? null
    }
    if (!Object.keys(previous).length) return null
    if (eventType) this.emit(eventType, object, previous)
    return previous
  }

  /**
   * A Stripe list (`{ object: 'list', data, has_more, url }`) over `items` (already newest first),
   * honouring `limit`, `starting_after` and `ending_before`. Items are copied (`render` also refreshes
   * derived fields of stored objects).
   */
  list(items: Obj[], params: Obj, url: string, render = true): Obj {
    const limit = params.limit === undefined || params.limit === '' ? 10 : int(params.limit, 'limit')!
    if (limit < 1 || limit > 100) {
      throw invalidRequest(`Invalid limit: must be between 1 and 100`, { param: 'limit' })
    }
    let page: Obj[]
    let hasMore: boolean
    const startingAfter = params.starting_after
    const endingBefore = params.ending_before
    if (startingAfter) {
      const index = items.findIndex((o) => o.id === startingAfter)
      if (index === -1) throw invalidRequest(`No such object: '${startingAfter}'`, { param: 'starting_after', code: 'resource_missing' })
      const rest = items.slice(index + 1)
      page = rest.slice(0, limit)
      hasMore = rest.length > limit
    } else if (endingBefore) {
      const index = items.findIndex((o) => o.id === endingBefore)
      if (index === -1) throw invalidRequest(`No such object: '${endingBefore}'`, { param: 'ending_before', code: 'resource_missing' })
      const before = items.slice(0, index)
      page = before.slice(Math.max(0, before.length - limit))
      hasMore = before.length > limit
    } else {
      page = items.slice(0, limit)
      hasMore = items.length > limit
    }
    return { object: 'list', data: page.map((o) => (render ? this.render(o) : clone(o))), has_more: hasMore, url }
  }

  /**
   * Applies `expand[]` paths (`customer`, `latest_invoice.payments`, `data.customer` on lists).
   */
  expand(value: unknown, paths: unknown): unknown {
    if (paths === undefined || paths === '') return value
    const list = Array.isArray(paths) ? paths : typeof paths === 'object' && paths ? Object.values(paths) : [paths]
    for (const path of list) {
      const segments = String(path).split('.')
      if (segments.length > 4) {
        throw invalidRequest(`You cannot expand more than 4 levels of a property. Property: ${path}`, { param: 'expand' })
      }
      value = this.#expandPath(value, segments, String(path))
    }
    return value
  }

  #expandPath(target: unknown, segments: string[], path: string): unknown {
    if (!segments.length || target === null || target === undefined) return target
    if (Array.isArray(target)) return target.map((t) => this.#expandPath(t, segments, path))
    if (typeof target !== 'object') return target
    const node = target as Obj
    const [head, ...rest] = segments
    if ((node.object === 'list' || node.object === 'search_result') && head === 'data') {
      node.data = (node.data as Obj[]).map((item) => this.#expandPath(item, rest, path))
      return node
    }
    let value = node[head]
    if (value === undefined) {
      const stored = typeof node.id === 'string' ? this.store.get(node.id) : undefined
      const virtual = stored ? this.virtuals.get(`${stored.object}.${head}`) : undefined
      if (!virtual) throw invalidRequest(`This property cannot be expanded (${head}).`, { param: 'expand' })
      value = virtual(stored!)
    } else {
      value = this.#resolve(value, head)
    }
    node[head] = rest.length ? this.#expandPath(value, rest, path) : value
    return node
  }

  #resolve(value: unknown, field: string): unknown {
    if (Array.isArray(value)) return value.map((v) => (typeof v === 'string' ? this.#resolve(v, field) : v))
    if (typeof value !== 'string') return value
    const stored = this.store.get(value)
    if (!stored) throw invalidRequest(`This property cannot be expanded (${field}).`, { param: 'expand' })
    if (this.#deleted.has(value)) return { id: value, object: stored.object, deleted: true }
    return this.render(stored)
  }

  /**
   * Forgets every object, event and meter event (the clock is kept).
   */
  clear() {
    this.store.clear()
    this.meterEvents = []
    this.#meta.clear()
    this.#deleted.clear()
    this.#eventTimes.clear()
  }
}
