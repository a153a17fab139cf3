/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Stripe } from 'stripe'
import { DateTime } from 'luxon'
import WebhookEvent from '../models/webhook_event.ts'
import { toDbDateTime } from '../models/columns.ts'
import { actors } from '../audit/actor.ts'
import { BillingException } from '../errors.ts'
import type { BillingManager } from '../billing_manager.ts'
import { builtInHandlers } from './handlers/main.ts'
import {
  verifyStripeSignature,
  WebhookNotConfiguredException,
  WebhookPayloadInvalidException,
  WebhookPayloadTooLargeException,
} from './stripe_signature.ts'
import type { WebhookContext, WebhookHandler } from './webhook_context.ts'
import debug from '../debug.ts'

/**
 * A handler failed: everything it wrote was rolled back, the event is marked `failed`, and the
 * endpoint answers 500 so Stripe retries.
 */
export class WebhookProcessingException extends BillingException {
  static status = 500
  static code = 'E_BILLING_WEBHOOK_PROCESSING_FAILED'
}

/**
 * Another delivery of the same event is being processed right now: answered 409 (with
 * `Retry-After`), not 2xx, so that Stripe retries this delivery. Were the other processing to fail
 * after this answer, a 2xx here could have made Stripe consider the event delivered.
 */
export class WebhookInProgressException extends BillingException {
  static status = 409
  static code = 'E_BILLING_WEBHOOK_IN_PROGRESS'

  async handle(error: this, ctx: import('@adonisjs/core/http').HttpContext) {
    ctx.response.header('retry-after', '5')
    return super.handle(error, ctx)
  }
}

/**
 * Outcome of handling one event.
 */
export type WebhookOutcome = 'processed' | 'ignored' | 'duplicate' | 'in_progress'

const PROVIDER = 'stripe'

/**
 * Verifies, stores and processes Stripe webhook events exactly once.
 *
 * 1. The signature is checked on the raw body bytes (several secrets while rotating).
 * 2. The event is inserted once (`unique(provider, event_id)`): a redelivery finds it.
 * 3. Processing locks the event row (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and runs the handlers in
 *    one transaction with their audit rows and the `processed` mark; a concurrent delivery of the same
 *    event skips it, a later one sees it processed. A handler error rolls everything back and marks
 *    the event `failed` so Stripe's retry (or `billing:webhooks:replay`) runs it again.
 * 4. Adonis events (`billing:subscription.updated`, ...) are emitted after commit only.
 */
export class WebhookProcessor {
  #manager: BillingManager
  #hostHandlers = new Map<string, WebhookHandler[]>()

  constructor(manager: BillingManager) {
    this.#manager = manager
  }

  /**
   * Adds a host handler for an event type (`'*'` for every type). It runs inside the event's
   * transaction after the package's own handler; write through `context.trx`.
   *
   * @example
   * billing.webhooks.on('invoice.payment_failed', async ({ event, customer, trx }) => { ... })
   */
  on(type: string, handler: WebhookHandler) {
    this.#hostHandlers.set(type, [...(this.#hostHandlers.get(type) ?? []), handler])
    return this
  }

  /**
   * Verifies and parses a delivery, then stores and processes it.
   */
  async receive(rawBody: Buffer, signature: string | undefined): Promise<{ eventId: string; type: string; outcome: WebhookOutcome }> {
    const { webhooks, stripe } = this.#manager.config
    if (rawBody.length > webhooks.maxBodyBytes) {
      throw new WebhookPayloadTooLargeException(`Payload of ${rawBody.length} bytes exceeds ${webhooks.maxBodyBytes}`)
    }
    if (stripe.webhookSecrets.length === 0) {
      if (!webhooks.allowUnsigned) throw new WebhookNotConfiguredException('No webhook secret configured (set STRIPE_WEBHOOK_SECRET)')
    } else {
      verifyStripeSignature(rawBody, signature, stripe.webhookSecrets, webhooks.tolerance)
    }
    const event = parseEvent(rawBody)
    const { inserted, status } = await this.#storeReturningStatus(event, rawBody.toString('utf8'))
    /**
     * Redelivery of an event already done: answer without opening a transaction
     */
    if (!inserted && (status === 'processed' || status === 'ignored')) return { eventId: event.id, type: event.type, outcome: 'duplicate' }
    const outcome = await this.process(event.id, { event })
    if (outcome === 'in_progress') throw new WebhookInProgressException(`${event.id} is being processed by another delivery; retry later`)
    return { eventId: event.id, type: event.type, outcome }
  }

  /**
   * Stores the event, telling whether this call inserted it and, if not, the stored status. One round
   * trip on PostgreSQL (`ON CONFLICT DO NOTHING`, then the stored row in the same statement: an event
   * being processed is not waited for, so a concurrent delivery learns it is in progress at once), two
   * elsewhere.
   */
  async #storeReturningStatus(event: Stripe.Event, payload: string): Promise<{ inserted: boolean; status: string | null }> {
    const db = this.#manager.db()
    if (db.dialect.name === 'postgres') {
      const now = toDbDateTime(DateTime.utc())
      const result = await db.rawQuery(
        `with inserted as (insert into ${WebhookEvent.table} (provider, event_id, type, api_version, livemode, payload, status, attempts, stripe_created_at, received_at, created_at, updated_at) ` +
          `values (?, ?, ?, ?, ?, ?, 'received', 0, ?, ?, ?, ?) on conflict (provider, event_id) do nothing returning status) ` +
          `select status, true as inserted from inserted ` +
          `union all select status, false from ${WebhookEvent.table} where provider = ? and event_id = ? and not exists (select 1 from inserted)`,
        [
          PROVIDER,
          event.id,
          event.type,
          event.api_version ?? null,
          event.livemode ?? false,
          payload,
          toDbDateTime(DateTime.fromSeconds(event.created, { zone: 'utc' })),
          now,
          now,
          now,
          PROVIDER,
          event.id,
        ] as any[]
      )
      const row = result.rows[0]
      /**
       * The conflicting row committed after this statement's snapshot: read it now
       */
      if (!row) return this.#storedStatus(event.id)
      return { inserted: row.inserted, status: row.status }
    }
    if (await this.store(event, payload)) return { inserted: true, status: 'received' }
    return this.#storedStatus(event.id)
  }

  async #storedStatus(eventId: string): Promise<{ inserted: false; status: string | null }> {
    const row = await this.#manager.db().from(WebhookEvent.table).where('provider', PROVIDER).where('event_id', eventId).select('status').first()
    return { inserted: false, status: row?.status ?? null }
  }

  /**
   * Stores a verified event once; returns false when it was already there.
   */
  async store(event: Stripe.Event, payload: string = JSON.stringify(event)): Promise<boolean> {
    const now = toDbDateTime(DateTime.utc())
    const inserted = await this.#manager
      .db()
      .knexQuery()
      .table(WebhookEvent.table)
      .insert({
        provider: PROVIDER,
        event_id: event.id,
        type: event.type,
        api_version: event.api_version ?? null,
        livemode: event.livemode ?? false,
        payload,
        status: 'received',
        attempts: 0,
        stripe_created_at: toDbDateTime(DateTime.fromSeconds(event.created, { zone: 'utc' })),
        received_at: now,
        created_at: now,
        updated_at: now,
      })
      .onConflict(['provider', 'event_id'])
      .ignore()
      .returning('id')
    return inserted.length > 0
  }

  /**
   * Processes a stored event (again, with `force`, even when already processed: replays).
   */
  async process(eventId: string, options: { force?: boolean; event?: Stripe.Event } = {}): Promise<WebhookOutcome> {
    const started = performance.now()
    const emitted: Array<[string, Record<string, unknown>]> = []
    try {
      return await this.#manager.db().transaction(async (trx) => {
        const row = await trx
          .from(WebhookEvent.table)
          .where('provider', PROVIDER)
          .where('event_id', eventId)
          .select('id', 'status', 'attempts', ...(options.event ? [] : ['payload']))
          .if(trx.dialect.name === 'postgres', (query) => query.forUpdate().skipLocked())
          .first()
        if (!row) return 'in_progress' as const
        if ((row.status === 'processed' || row.status === 'ignored') && !options.force) return 'duplicate' as const

        const event = options.event ?? ((typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload) as Stripe.Event)
        if ((event as { redacted?: unknown }).redacted === true) {
          throw new WebhookProcessingException(`${eventId} was pruned (billing:webhooks:prune): its payload is gone, it cannot be processed again`)
        }
        const context: WebhookContext = {
          manager: this.#manager,
          trx,
          event,
          observedAt: DateTime.fromSeconds(event.created, { zone: 'utc' }),
          actor: actors.webhook(event.id),
          customer: null,
          emit: (name, payload) => emitted.push([name, payload]),
        }
        const handlers = [builtInHandlers[event.type], ...(this.#hostHandlers.get(event.type) ?? []), ...(this.#hostHandlers.get('*') ?? [])].filter(
          (handler): handler is WebhookHandler => !!handler
        )
        /**
         * The handlers' audit rows are written with the processed mark, in one statement on PostgreSQL
         */
        this.#manager.audit.batch(trx)
        let status: 'processed' | 'ignored' = 'ignored'
        for (const handler of handlers) {
          if ((await handler(context)) !== 'ignored') status = 'processed'
        }

        const now = toDbDateTime(DateTime.utc())
        await this.#manager.audit.flushBatch(trx, {
          sql: `update ${WebhookEvent.table} set status = ?, attempts = ?, error = null, processed_at = ?, processing_ms = ?, updated_at = ? where id = ?`,
          bindings: [status, Number(row.attempts) + 1, now, Math.round(performance.now() - started), now, row.id],
        })
        trx.after('commit', () => {
          for (const [name, payload] of emitted) {
            this.#manager.emitter.emit(name as any, { ...payload, eventId: event.id, type: event.type, customerId: context.customer?.id ?? null })
          }
        })
        debug('webhook %s %s: %s', event.id, event.type, status)
        return status
      })
    } catch (error: any) {
      const message = String(error?.message ?? error).slice(0, 2000)
      await this.#manager
        .db()
        .from(WebhookEvent.table)
        .where('provider', PROVIDER)
        .where('event_id', eventId)
        .update({
          status: 'failed',
          attempts: this.#manager.db().raw('attempts + 1'),
          error: message,
          processing_ms: Math.round(performance.now() - started),
          updated_at: toDbDateTime(DateTime.utc()),
        })
      debug('webhook %s failed: %s', eventId, message)
      throw new WebhookProcessingException(`Processing ${eventId} failed: ${message}`, { cause: error })
    }
  }
}

/**
 * Parses and checks the shape of a Stripe event.
 */
function parseEvent(rawBody: Buffer): Stripe.Event {
  let event: any
  try {
    event = JSON.parse(rawBody.toString('utf8'))
  } catch {
    throw new WebhookPayloadInvalidException('Body is not JSON')
  }
  const valid =
    event &&
    typeof event === 'object' &&
    event.object === 'event' &&
    typeof event.id === 'string' &&
    /^evt_[A-Za-z0-9_]{1,250}$/.test(event.id) &&
    typeof event.type === 'string' &&
    /^[a-z0-9_.]{1,100}$/.test(event.type) &&
    Number.isSafeInteger(event.created) &&
    event.data &&
    typeof event.data.object === 'object' &&
    event.data.object !== null
  if (!valid) throw new WebhookPayloadInvalidException('Body is not a Stripe event (object, id, type, created, data.object)')
  return event as Stripe.Event
}
