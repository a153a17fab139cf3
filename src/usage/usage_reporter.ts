/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHash } from 'node:crypto'
import { DateTime } from 'luxon'
import type { BillingManager } from '../billing_manager.ts'
import { fromDbDateTime, toDbDateTime } from '../models/columns.ts'
import debug from '../debug.ts'
import { meterValue } from './record_usage.ts'

const REPORTS = 'billing_usage_reports'
/** Stripe accepts meter events up to 35 days back */
const STRIPE_MAX_AGE_DAYS = 35

/**
 * Turns closed hourly usage windows into `billing_usage_reports` rows (an outbox) and sends them to
 * Stripe Billing Meters, exactly once per window and correction:
 * - a window closes `settleSeconds` after its hour ends; its report has the deterministic identifier
 *   `<customer>:<meter>:<window start>:0`, so planners on several workers insert it once;
 * - usage that arrives after its window was reported becomes a correction report (`…:1`, `…:2`) for
 *   the difference (sum and count meters) or the new value (last, max and unique_count meters, which
 *   Stripe keeps as `last`; max and unique_count report the billing-period-to-date value, so the last
 *   one Stripe keeps is the period's): never lost, never counted twice;
 * - senders lock due reports with `FOR UPDATE SKIP LOCKED` (PostgreSQL), so workers share the outbox;
 *   Stripe deduplicates the identifier for 24 h, so a crash between sending and marking is harmless
 *   (the resend's "already exists" answer marks the report sent);
 * - 429, 5xx and network errors back off exponentially with jitter; v1 calls (the fallback) are limited
 *   to one in flight per customer and meter across workers, as Stripe requires.
 * Stripe meter values are whole numbers: a fractional window total is rounded half up.
 */
export class UsageReporter {
  #manager: BillingManager
  /**
   * The current v2 meter event session (token and expiry, ms)
   */
  #session: { token: string; expiresAt: number } | null = null

  constructor(manager: BillingManager) {
    this.#manager = manager
  }

  /**
   * Creates the report rows for windows closed before `now - settleSeconds`. Returns how many.
   */
  async plan(options: { now?: DateTime; settleSeconds?: number } = {}): Promise<number> {
    const now = options.now ?? DateTime.utc()
    const closedBefore = now.minus({ seconds: options.settleSeconds ?? 300 }).startOf('hour')
    const oldest = now.minus({ days: STRIPE_MAX_AGE_DAYS }).plus({ hours: 1 }).startOf('hour')
    const db = this.#manager.db()
    const meters = this.#manager.config.meters

    const rollups = await db
      .from('billing_usage_rollups as r')
      .join('billing_customers as c', 'c.id', 'r.customer_id')
      .whereNotNull('c.stripe_customer_id')
      .where('r.bucket', '<', toDbDateTime(closedBefore))
      .where('r.bucket', '>=', toDbDateTime(oldest))
      .select('r.customer_id', 'r.meter', 'r.bucket', 'r.sum', 'r.count', 'r.max', 'r.last')
    const reported = await db
      .from(REPORTS)
      .where('window_start', '>=', toDbDateTime(oldest))
      .select('customer_id', 'meter', 'window_start', 'quantity', 'identifier')
      .orderBy('id')
    const byWindow = new Map<string, { total: number; last: number | null; count: number }>()
    for (const row of reported) {
      const key = `${row.customer_id}:${row.meter}:${fromDbDateTime(row.window_start)!.toISO()}`
      const entry = byWindow.get(key) ?? { total: 0, last: null, count: 0 }
      entry.total += Number(row.quantity)
      entry.last = Number(row.quantity)
      entry.count++
      byWindow.set(key, entry)
    }

    let created = 0
    const stamp = toDbDateTime(now)
    /**
     * Billing periods per customer (subscription periods), for meters whose Stripe formula is `last`
     * but whose value spans the period: max and unique_count report the period-to-date value
     */
    const periods = new Map<number, Array<{ start: DateTime; end: DateTime }>>()
    const periodStart = async (customerId: number, at: DateTime) => {
      if (!periods.has(customerId)) {
        const rows = await db.from('billing_subscriptions').where('customer_id', customerId).whereNotNull('current_period_start').select('current_period_start', 'current_period_end')
        periods.set(customerId, rows.map((row) => ({ start: fromDbDateTime(row.current_period_start)!, end: fromDbDateTime(row.current_period_end)! })))
      }
      return periods.get(customerId)!.find((period) => period.start <= at && at < period.end)?.start ?? at.startOf('month')
    }
    for (const rollup of rollups) {
      const meter = meters[rollup.meter]
      if (!meter) continue
      const windowStart = fromDbDateTime(rollup.bucket)!
      const customerId = Number(rollup.customer_id)
      const value =
        meter.aggregation === 'max' || meter.aggregation === 'unique_count'
          ? await meterValue(db, { key: rollup.meter, ...meter }, customerId, await periodStart(customerId, windowStart), windowStart.plus({ hours: 1 }))
          : meter.aggregation === 'count'
            ? Number(rollup.count)
            : meter.aggregation === 'last'
              ? Number(rollup.last)
              : Number(rollup.sum)
      const key = `${rollup.customer_id}:${rollup.meter}:${windowStart.toISO()}`
      const previous = byWindow.get(key)
      const additive = meter.aggregation === 'sum' || meter.aggregation === 'count'
      const quantity = additive ? value - (previous?.total ?? 0) : value
      if (additive ? quantity <= 0 : previous?.last === value) continue
      const inserted = await db
        .knexQuery()
        .table(REPORTS)
        .insert({
          customer_id: rollup.customer_id,
          meter: rollup.meter,
          window_start: toDbDateTime(windowStart),
          window_end: toDbDateTime(windowStart.plus({ hours: 1 })),
          quantity: String(quantity),
          identifier: `${key}:${previous?.count ?? 0}`,
          status: 'pending',
          attempts: 0,
          created_at: stamp,
          updated_at: stamp,
        })
        .onConflict(['identifier'])
        .ignore()
        .returning('id')
      created += inserted.length
    }
    debug('usage reporter planned %d report(s)', created)
    return created
  }

  /**
   * Sends due reports in batches until none is left (or `maxBatches`). Returns the counts.
   */
  async send(options: { batchSize?: number; maxBatches?: number; now?: () => DateTime } = {}) {
    const batchSize = options.batchSize ?? 100
    const clock = options.now ?? (() => DateTime.utc())
    const meterIds = await this.#meterIds()
    let sent = 0
    let failed = 0
    for (let batch = 0; batch < (options.maxBatches ?? Number.MAX_SAFE_INTEGER); batch++) {
      const done = await this.#manager.db().transaction(async (trx) => {
        const due = await trx
          .from(`${REPORTS} as u`)
          .join('billing_customers as c', 'c.id', 'u.customer_id')
          .whereIn('u.status', ['pending', 'failed'])
          .where((query) => query.whereNull('u.next_attempt_at').orWhere('u.next_attempt_at', '<=', toDbDateTime(clock())))
          .orderBy('u.id')
          .limit(batchSize)
          .select('u.id', 'u.meter', 'u.window_start', 'u.quantity', 'u.identifier', 'u.attempts', 'c.stripe_customer_id')
          .if(trx.dialect.name === 'postgres', (query) => query.forUpdate('u').skipLocked())
        /**
         * v2 stream first (batches of at most 100), v1 per report as the fallback
         */
        const outcomes = new Map<number, { ok: true } | { ok: false; error: string }>()
        if (this.#manager.config.usage.transport === 'v2' && due.length) {
          for (let index = 0; index < due.length; index += 100) {
            const chunk = due.slice(index, index + 100)
            if (await this.#streamV2(chunk, clock)) for (const report of chunk) outcomes.set(report.id, { ok: true })
          }
        }
        let skipped = 0
        for (const report of due) {
          const meter = this.#manager.config.meters[report.meter]
          let outcome = outcomes.get(report.id)
          if (!outcome) {
            /**
             * v1 allows one concurrent call per customer and meter: across workers, a report whose
             * customer and meter another worker is sending waits for the next run
             */
            if (trx.dialect.name === 'postgres') {
              const { rows } = await trx.rawQuery('select pg_try_advisory_xact_lock(hashtext(?)) as ok', [`adonis-billing:v1:${report.stripe_customer_id}:${report.meter}`])
              if (!rows[0].ok) {
                skipped++
                continue
              }
            }
            outcome = await this.#sendOne(report, meter?.eventName ?? report.meter, meterIds)
          }
          const now = clock()
          if (outcome.ok) {
            sent++
            await trx.from(REPORTS).where('id', report.id).update({ status: 'sent', sent_at: toDbDateTime(now), attempts: Number(report.attempts) + 1, error: null, updated_at: toDbDateTime(now) })
          } else {
            failed++
            const attempts = Number(report.attempts) + 1
            const delay = Math.min(3600, 5 * 2 ** Math.min(attempts, 10)) * (0.5 + Math.random())
            await trx
              .from(REPORTS)
              .where('id', report.id)
              .update({ status: 'failed', attempts, error: outcome.error, next_attempt_at: toDbDateTime(now.plus({ seconds: Math.round(delay) })), updated_at: toDbDateTime(now) })
          }
        }
        /**
         * Done when the outbox is drained, or when everything left is another worker's to send
         */
        return due.length < batchSize || skipped === due.length
      })
      if (done) break
    }
    return { sent, failed }
  }

  /**
   * Sends up to 100 reports on the v2 meter event stream. The session token is renewed a minute before
   * its 15 minutes run out, and once more if Stripe says it expired. False when the stream failed
   * (the caller falls back to v1).
   */
  async #streamV2(reports: any[], clock: () => DateTime): Promise<boolean> {
    const events = reports.map((report) => ({
      event_name: this.#manager.config.meters[report.meter]?.eventName ?? report.meter,
      identifier: meterEventIdentifier(report.identifier),
      timestamp: fromDbDateTime(report.window_start)!.toISO()!,
      payload: { stripe_customer_id: report.stripe_customer_id, value: String(Math.round(Number(report.quantity))) },
    }))
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const token = await this.#sessionToken(clock, attempt > 0)
        await this.#manager.stripe.call((stripe) => stripe.v2.billing.meterEventStream.create({ events }, { apiKey: token } as any))
        return true
      } catch (error: any) {
        const expired = error?.cause?.type === 'TemporarySessionExpiredError' || error?.stripeCode === 'temporary_session_expired' || /session has expired/.test(String(error?.message))
        debug('v2 meter event stream failed (%s)%s', error?.message, expired ? ', renewing the session' : '')
        if (!expired) return false
      }
    }
    return false
  }

  async #sessionToken(clock: () => DateTime, renew: boolean): Promise<string> {
    if (!renew && this.#session && this.#session.expiresAt - 60_000 > clock().toMillis()) return this.#session.token
    const session = await this.#manager.stripe.call((stripe) => stripe.v2.billing.meterEventSession.create())
    this.#session = { token: session.authentication_token, expiresAt: Date.parse(String(session.expires_at)) }
    return this.#session.token
  }

  async #meterIds() {
    return this.#manager.stripe.call(async (stripe) => {
      const ids = new Map<string, string>()
      for await (const meter of stripe.billing.meters.list({ limit: 100 })) ids.set(meter.event_name, meter.id)
      return ids
    })
  }

  async #sendOne(report: any, eventName: string, meterIds: Map<string, string>): Promise<{ ok: true } | { ok: false; error: string }> {
    if (!meterIds.has(eventName)) return { ok: false, error: `No Stripe meter for event "${eventName}" (run billing:sync)` }
    const value = Math.round(Number(report.quantity))
    try {
      await this.#manager.stripe.call((stripe) =>
        stripe.billing.meterEvents.create({
          event_name: eventName,
          identifier: meterEventIdentifier(report.identifier),
          timestamp: Math.floor(fromDbDateTime(report.window_start)!.toSeconds()),
          payload: { stripe_customer_id: report.stripe_customer_id, value: String(value) },
        })
      )
      return { ok: true }
    } catch (error: any) {
      /**
       * Sent before a crash, not marked: Stripe already has it
       */
      if (/already exists/.test(String(error?.message))) return { ok: true }
      return { ok: false, error: String(error?.message ?? error).slice(0, 1000) }
    }
  }

  /**
   * Compares local hourly totals with Stripe's meter event summaries since `since` and returns every
   * difference (reported windows only: an unreported window is not a difference yet).
   */
  async reconcile(options: { since?: DateTime; until?: DateTime } = {}) {
    const until = (options.until ?? DateTime.utc()).startOf('hour')
    const since = (options.since ?? until.minus({ days: 1 })).startOf('hour')
    const db = this.#manager.db()
    const meterIds = await this.#meterIds()
    const rows = await db
      .from(`${REPORTS} as u`)
      .join('billing_customers as c', 'c.id', 'u.customer_id')
      .where('u.window_start', '>=', toDbDateTime(since))
      .where('u.window_start', '<', toDbDateTime(until))
      .select('u.customer_id', 'u.meter', 'c.stripe_customer_id')
      .groupBy('u.customer_id', 'u.meter', 'c.stripe_customer_id')
    const differences: Array<{ customerId: number; meter: string; windowStart: string; local: number; stripe: number }> = []
    for (const row of rows) {
      const meter = this.#manager.config.meters[row.meter]
      const meterId = meter && meterIds.get(meter.eventName)
      if (!meterId) continue
      const remote = new Map<number, number>()
      await this.#manager.stripe.call(async (stripe) => {
        for await (const summary of stripe.billing.meters.listEventSummaries(meterId, {
          customer: row.stripe_customer_id,
          start_time: Math.floor(since.toSeconds()),
          end_time: Math.floor(until.toSeconds()),
          value_grouping_window: 'hour',
          limit: 100,
        })) {
          remote.set(summary.start_time, Number(summary.aggregated_value))
        }
      })
      const local = await db
        .from('billing_usage_rollups')
        .where('customer_id', row.customer_id)
        .where('meter', row.meter)
        .where('bucket', '>=', toDbDateTime(since))
        .where('bucket', '<', toDbDateTime(until))
        .select('bucket', 'sum', 'count', 'max', 'last')
      const seen = new Set<number>()
      for (const bucket of local) {
        const start = Math.floor(fromDbDateTime(bucket.bucket)!.toSeconds())
        seen.add(start)
        const value = Math.round(Number(meter!.aggregation === 'count' ? bucket.count : meter!.aggregation === 'max' ? bucket.max : meter!.aggregation === 'last' ? bucket.last : bucket.sum))
        const stripeValue = remote.get(start) ?? 0
        if (value !== stripeValue) differences.push({ customerId: Number(row.customer_id), meter: row.meter, windowStart: DateTime.fromSeconds(start, { zone: 'utc' }).toISO()!, local: value, stripe: stripeValue })
      }
      for (const [start, value] of remote) {
        if (!seen.has(start) && value !== 0) differences.push({ customerId: Number(row.customer_id), meter: row.meter, windowStart: DateTime.fromSeconds(start, { zone: 'utc' }).toISO()!, local: 0, stripe: value })
      }
    }
    return differences
  }
}

/**
 * The identifier Stripe deduplicates a meter event by: deterministic per report, at most 100
 * characters (the API's limit) — a long one (long meter key) is replaced by its hash.
 */
export function meterEventIdentifier(identifier: string): string {
  const full = `adonis-billing:${identifier}`
  return full.length <= 100 ? full : `adonis-billing:${createHash('sha256').update(identifier).digest('hex')}`
}
