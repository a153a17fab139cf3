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
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { fromDbDateTime, toDbDateTime } from '../models/columns.ts'
import debug from '../debug.ts'
import { type MeterRef, meterValue, usageAggregate } from './meter_reading.ts'
import { type Fixed, SCALE, fixedOf, roundHalfUp } from './decimal.ts'

const REPORTS = 'billing_usage_reports'
/** Stripe accepts meter events up to 35 days back */
const STRIPE_MAX_AGE_DAYS = 35
/**
 * Reports are stamped no older than this, so a day of retries still lands inside Stripe's 35 days
 */
const FRESH_DAYS = 34

type Period = { start: DateTime; end: DateTime }

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
   * Creates the report rows for windows closed before `now - settleSeconds`. Returns how many. Each
   * customer and meter is planned on its own: one whose rows cannot be read (a corrupt value) is
   * marked `blocked` in the outbox with the error (see `billing:usage:status`) and the rest go on.
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
      .orderBy('r.bucket')
      .select('r.customer_id', 'r.meter', 'r.bucket', 'r.sum', 'r.count', 'r.max', 'r.last')
    /**
     * Periods whose reports expired (too old for Stripe when due) while the period can still be
     * stamped: planned again even when no usage of theirs is in the planning range any more
     */
    const expired = await db
      .from(`${REPORTS} as u`)
      .join('billing_customers as c', 'c.id', 'u.customer_id')
      .whereNotNull('c.stripe_customer_id')
      .where('u.status', 'expired')
      .where('u.period_end', '>', toDbDateTime(now.minus({ days: FRESH_DAYS })))
      .distinct('u.customer_id', 'u.meter', 'u.window_start')
    const groups = new Map<string, { customerId: number; meter: string; rollups: any[]; expired: DateTime[] }>()
    const groupOf = (customerId: number, meter: string) => {
      const key = `${customerId}\u0000${meter}`
      if (!groups.has(key)) groups.set(key, { customerId, meter, rollups: [], expired: [] })
      return groups.get(key)!
    }
    for (const rollup of rollups) {
      if (Object.hasOwn(meters, rollup.meter)) groupOf(Number(rollup.customer_id), rollup.meter).rollups.push(rollup)
    }
    for (const row of expired) {
      if (Object.hasOwn(meters, row.meter)) groupOf(Number(row.customer_id), row.meter).expired.push(fromDbDateTime(row.window_start)!)
    }

    let created = 0
    for (const { customerId, meter, rollups: group, expired: expiredPeriods } of groups.values()) {
      try {
        /**
         * One planner per customer and meter at a time, across workers: it reads what was reported,
         * computes the budget and inserts inside one transaction holding a lock on that pair
         * (PostgreSQL advisory lock; SQLite's write lock, taken first), so two planners can never
         * each insert a delta the other already counted
         */
        created += await db.transaction(async (trx) => {
          if (trx.dialect.name === 'postgres') await trx.rawQuery('select pg_advisory_xact_lock(hashtext(?))', [`adonis-billing:plan:${customerId}:${meter}`])
          else await trx.rawQuery('update billing_usage_reports set id = id where 0')
          return this.#planMeter(trx, customerId, { key: meter, ...meters[meter] }, { rollups: group, expired: expiredPeriods, now, closedBefore })
        })
        await db.from(REPORTS).where('identifier', blockedIdentifier(customerId, meter)).delete()
      } catch (error: any) {
        debug('usage reporter could not plan customer %d meter %s: %s', customerId, meter, error?.message)
        await this.#block(customerId, meter, error, now)
      }
    }
    debug('usage reporter planned %d report(s)', created)
    return created
  }

  /**
   * Marks a customer's meter as blocked (one outbox row, never sent) with why: shown by
   * `billing:usage:status` until a later run plans it.
   */
  async #block(customerId: number, meter: string, error: unknown, now: DateTime) {
    const stamp = toDbDateTime(now)
    const message = String((error as any)?.message ?? error).slice(0, 1000)
    await this.#manager
      .db()
      .knexQuery()
      .table(REPORTS)
      .insert({
        customer_id: customerId,
        meter,
        window_start: stamp,
        window_end: stamp,
        quantity: '0',
        identifier: blockedIdentifier(customerId, meter),
        status: 'blocked',
        attempts: 0,
        error: message,
        created_at: stamp,
        updated_at: stamp,
      })
      .onConflict(['identifier'])
      .merge({ error: message, updated_at: stamp })
  }

  /**
   * Plans one customer's meter. Windows are hours split where a billing period starts or ends inside
   * one (the parts come from the events' own timestamps), so every report lands in the period its
   * usage belongs to. Stripe meter values are whole numbers:
   * - sum and count meters report, per period, integer deltas of the rounded cumulative total, so what
   *   Stripe sums for the period is the period's usage rounded half up once (what `preview()` prices),
   *   never a sum of per-window roundings;
   * - last, max and unique_count meters report the (period-to-date) value rounded half up.
   * Each report row keeps the period it was counted in: a period that stops being a subscription's
   * current one (a renewal) keeps its bounds, so its windows are never regrouped and counted again.
   * Stripe takes meter events up to 35 days old: usage of a window older than `FRESH_DAYS` is
   * reported at the next window of its period that is recent enough (for sum and count meters, the
   * running total carries it), else at the period's latest closed hour.
   */
  async #planMeter(
    db: TransactionClientContract,
    customerId: number,
    meter: MeterRef,
    input: { rollups: any[]; expired: DateTime[]; now: DateTime; closedBefore: DateTime }
  ): Promise<number> {
    const { rollups, now, closedBefore } = input
    const fresh = now.minus({ days: FRESH_DAYS })
    const earliest = [...rollups.map((rollup) => fromDbDateTime(rollup.bucket)!), ...input.expired].reduce((min, at) => (at < min ? at : min))
    const layers = await this.#periods(db, customerId, meter.key, earliest)
    const periodOf = (at: DateTime) => periodContaining(layers, at)

    /**
     * Segments of the closed hours, each with its exact aggregate
     */
    const segments: Array<{ start: DateTime; end: DateTime; value: Fixed; period: Period }> = []
    for (const rollup of rollups) {
      const hour = fromDbDateTime(rollup.bucket)!
      const hourEnd = hour.plus({ hours: 1 })
      const bounds = [hour]
      for (let period = periodOf(hour); period.end < hourEnd; period = periodOf(period.end)) bounds.push(period.end)
      bounds.push(hourEnd)
      for (let index = 0; index < bounds.length - 1; index++) {
        const [start, end] = [bounds[index], bounds[index + 1]]
        let value: Fixed
        if (bounds.length === 2) {
          value =
            meter.aggregation === 'count' ? BigInt(rollup.count) * SCALE : meter.aggregation === 'last' ? fixedOf(rollup.last, 'last') : meter.aggregation === 'max' ? fixedOf(rollup.max, 'max') : fixedOf(rollup.sum, 'sum')
        } else {
          const aggregate = await usageAggregate(db, customerId, meter.key, start, end)
          value = meter.aggregation === 'count' ? aggregate.count * SCALE : meter.aggregation === 'last' ? (aggregate.last ?? 0n) : meter.aggregation === 'max' ? (aggregate.max ?? 0n) : aggregate.sum
          if (aggregate.count === 0n) continue
        }
        segments.push({ start, end, value, period: periodOf(start) })
      }
    }

    /**
     * The periods to plan: those of the segments, and those whose reports expired
     */
    const periods = new Map<number, { period: Period; segments: typeof segments; expired: boolean }>()
    for (const segment of segments) {
      const key = segment.period.start.toMillis()
      if (!periods.has(key)) periods.set(key, { period: segment.period, segments: [], expired: false })
      periods.get(key)!.segments.push(segment)
    }
    for (const at of input.expired) {
      const period = periodOf(at)
      const key = period.start.toMillis()
      if (!periods.has(key)) periods.set(key, { period, segments: [], expired: true })
      periods.get(key)!.expired = true
    }
    if (!periods.size) return 0

    /**
     * What was reported, per window start, since the earliest period involved. An expired report
     * (too old for Stripe when it was due) counts for its identifier's sequence, not as reported.
     */
    const since = [...periods.values()].reduce((min, { period }) => (period.start < min ? period.start : min), earliest)
    const reportedRows = await db
      .from(REPORTS)
      .where('customer_id', customerId)
      .where('meter', meter.key)
      .whereNot('status', 'blocked')
      .where('window_start', '>=', toDbDateTime(since))
      .orderBy('id')
      .select('window_start', 'quantity', 'status')
    const reported = new Map<number, { total: bigint; last: bigint | null; count: number }>()
    for (const row of reportedRows) {
      const at = fromDbDateTime(row.window_start)!.toMillis()
      const entry = reported.get(at) ?? { total: 0n, last: null, count: 0 }
      entry.count++
      if (row.status !== 'expired') {
        const quantity = roundHalfUp(fixedOf(row.quantity))
        entry.total += quantity
        entry.last = quantity
      }
      reported.set(at, entry)
    }

    const planned: Array<{ start: DateTime; end: DateTime; quantity: bigint; sequence: number; period: Period }> = []
    const plan = (window: { start: DateTime; end: DateTime }, quantity: bigint, period: Period) => {
      const entry = reported.get(window.start.toMillis()) ?? { total: 0n, last: null, count: 0 }
      planned.push({ start: window.start, end: window.end, quantity, sequence: entry.count, period })
      reported.set(window.start.toMillis(), { total: entry.total + quantity, last: quantity, count: entry.count + 1 })
    }
    const additive = meter.aggregation === 'sum' || meter.aggregation === 'count'
    for (const { period, segments: periodSegments, expired } of periods.values()) {
      /**
       * The period's latest closed hour, cut to it: where usage too old to stamp is reported
       */
      const closedEnd = closedBefore < period.end ? closedBefore : period.end
      const lastHour = closedEnd.minus({ milliseconds: 1 }).startOf('hour')
      const latest = { start: lastHour > period.start ? lastHour : period.start, end: lastHour.plus({ hours: 1 }) < closedEnd ? lastHour.plus({ hours: 1 }) : closedEnd }
      const canStampLatest = latest.start >= fresh && latest.start < latest.end
      const inPeriod = (at: number) => at >= period.start.toMillis() && at < period.end.toMillis()

      if (additive) {
        /**
         * Usage and reports of the period before the first segment planned here (older windows;
         * all of it when only an expired report brings the period here)
         */
        const first = periodSegments[0]?.start ?? closedEnd
        const before = first > period.start ? await usageAggregate(db, customerId, meter.key, period.start, first, { sum: true, count: true }) : null
        let usage = before ? (meter.aggregation === 'count' ? before.count * SCALE : before.sum) : 0n
        let reportedThrough = 0n
        let reportedInPeriod = 0n
        for (const [at, entry] of reported) {
          if (!inPeriod(at)) continue
          reportedInPeriod += entry.total
          if (at < first.toMillis()) reportedThrough += entry.total
        }
        let budget = roundHalfUp(usage + periodSegments.reduce((sum, segment) => sum + segment.value, 0n)) - reportedInPeriod
        for (const segment of periodSegments) {
          usage += segment.value
          reportedThrough += reported.get(segment.start.toMillis())?.total ?? 0n
          /**
           * Too old to stamp: the running total carries its usage to a later window
           */
          if (segment.start < fresh) continue
          const need = roundHalfUp(usage) - reportedThrough
          const quantity = need < budget ? need : budget
          if (quantity <= 0n) continue
          plan(segment, quantity, period)
          reportedThrough += quantity
          budget -= quantity
        }
        if (budget > 0n && canStampLatest) plan(latest, budget, period)
        continue
      }

      for (const segment of periodSegments) {
        if (segment.start < fresh) continue
        const value =
          meter.aggregation === 'max' || meter.aggregation === 'unique_count' ? await meterValue(db, meter, customerId, period.start, segment.end) : segment.value
        const quantity = roundHalfUp(value)
        const last = reported.get(segment.start.toMillis())?.last ?? null
        if (last !== null ? last === quantity : quantity === 0n && meter.aggregation !== 'last') continue
        plan(segment, quantity, period)
      }
      /**
       * Usage too old to stamp, or an expired report, and no recent window after it: the period's
       * latest closed hour carries the period's value, unless the latest report already says it
       */
      const lastSegment = periodSegments.at(-1)
      if (!canStampLatest || !(expired || periodSegments.some((segment) => segment.start < fresh)) || (lastSegment && lastSegment.start >= fresh)) continue
      const value = roundHalfUp(await meterValue(db, meter, customerId, period.start, closedEnd))
      const latestReported = [...reported].filter(([at, entry]) => inPeriod(at) && entry.last !== null).sort(([a], [b]) => b - a)[0]
      if (latestReported ? latestReported[1].last !== value : value !== 0n || meter.aggregation === 'last') plan(latest, value, period)
    }

    let created = 0
    const stamp = toDbDateTime(now)
    for (const report of planned) {
      const inserted = await db
        .knexQuery()
        .table(REPORTS)
        .insert({
          customer_id: customerId,
          meter: meter.key,
          window_start: toDbDateTime(report.start),
          window_end: toDbDateTime(report.end),
          period_start: toDbDateTime(report.period.start),
          period_end: toDbDateTime(report.period.end),
          quantity: String(report.quantity),
          identifier: `${customerId}:${meter.key}:${report.start.toISO()}:${report.sequence}`,
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
    return created
  }

  /**
   * The meter's billing periods for the customer, most authoritative first (see `periodContaining`):
   * the current periods of the subscription items that bill this meter (else of the customer's
   * subscriptions, when no item names it), the latest starting first, never of an incomplete
   * subscription (it bills nothing); then the periods this meter's reports were counted in that end
   * after `since` (the latest recorded first).
   */
  async #periods(db: TransactionClientContract, customerId: number, meter: string, since: DateTime): Promise<Period[]> {
    const billing = (query: any) => query.where('s.customer_id', customerId).whereNotIn('s.status', ['incomplete', 'incomplete_expired'])
    let current = await billing(db.from('billing_subscription_items as i').join('billing_subscriptions as s', 's.id', 'i.subscription_id'))
      .where('i.meter', meter)
      .whereNotNull('i.current_period_start')
      .whereNotNull('i.current_period_end')
      .select('i.current_period_start', 'i.current_period_end')
    if (!current.length) {
      current = await billing(db.from('billing_subscriptions as s'))
        .whereNotNull('s.current_period_start')
        .whereNotNull('s.current_period_end')
        .select('s.current_period_start', 's.current_period_end')
    }
    const recorded = await db
      .from(REPORTS)
      .where('customer_id', customerId)
      .where('meter', meter)
      .whereNotNull('period_start')
      .where('period_end', '>', toDbDateTime(since))
      .groupBy('period_start', 'period_end')
      .select('period_start', 'period_end')
      .max('id as learned')
    return [
      ...current
        .map((row: any) => ({ start: fromDbDateTime(row.current_period_start)!, end: fromDbDateTime(row.current_period_end)! }))
        .sort((a: Period, b: Period) => b.start.toMillis() - a.start.toMillis()),
      ...recorded
        .sort((a, b) => Number(b.learned) - Number(a.learned))
        .map((row) => ({ start: fromDbDateTime(row.period_start)!, end: fromDbDateTime(row.period_end)! })),
    ].filter((period) => period.end > period.start)
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
        /**
         * A row older than Stripe takes (it kept failing for a day) is not sent: it becomes `expired`
         * and the planner reports its quantity again at a recent window of its period
         */
        const fetched = due.length
        const tooOld = clock().minus({ days: STRIPE_MAX_AGE_DAYS }).plus({ minutes: 10 })
        const expired = due.filter((report) => fromDbDateTime(report.window_start)! < tooOld)
        for (const report of expired) {
          await trx
            .from(REPORTS)
            .where('id', report.id)
            .whereIn('status', ['pending', 'failed'])
            .update({ status: 'expired', error: `Older than the ${STRIPE_MAX_AGE_DAYS} days Stripe accepts: planned again at a recent window of its period`, updated_at: toDbDateTime(clock()) })
        }
        if (expired.length) due.splice(0, due.length, ...due.filter((report) => !expired.includes(report)))
        /**
         * A row that cannot be sent (a corrupt quantity) fails alone, never the batch
         */
        for (const report of due) {
          try {
            meterEventValue(report.quantity)
          } catch (error: any) {
            outcomes.set(report.id, { ok: false, error: String(error?.message ?? error).slice(0, 1000) })
          }
        }
        const sendable = due.filter((report) => !outcomes.has(report.id))
        if (this.#manager.config.usage.transport === 'v2' && sendable.length) {
          for (let index = 0; index < sendable.length; index += 100) {
            const chunk = sendable.slice(index, index + 100)
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
            await trx.from(REPORTS).where('id', report.id).whereIn('status', ['pending', 'failed']).update({ status: 'sent', sent_at: toDbDateTime(now), attempts: Number(report.attempts) + 1, error: null, updated_at: toDbDateTime(now) })
          } else {
            failed++
            const attempts = Number(report.attempts) + 1
            const delay = Math.min(3600, 5 * 2 ** Math.min(attempts, 10)) * (0.5 + Math.random())
            await trx
              .from(REPORTS)
              .where('id', report.id)
              .whereIn('status', ['pending', 'failed'])
              .update({ status: 'failed', attempts, error: outcome.error, next_attempt_at: toDbDateTime(now.plus({ seconds: Math.round(delay) })), updated_at: toDbDateTime(now) })
          }
        }
        /**
         * Done when the outbox is drained, or when everything left is another worker's to send
         */
        return fetched < batchSize || (due.length > 0 && skipped === due.length)
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
      payload: { stripe_customer_id: report.stripe_customer_id, value: meterEventValue(report.quantity) },
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
    try {
      const value = meterEventValue(report.quantity)
      await this.#manager.stripe.call((stripe) =>
        stripe.billing.meterEvents.create({
          event_name: eventName,
          identifier: meterEventIdentifier(report.identifier),
          timestamp: Math.floor(fromDbDateTime(report.window_start)!.toSeconds()),
          payload: { stripe_customer_id: report.stripe_customer_id, value },
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
   * The outbox's health: counts by status, the oldest window not yet sent, and every row that needs
   * attention (`blocked`: the planner could not read that customer's meter; `failed`: Stripe refused
   * or was unreachable, retried with backoff). `expired` counts reports that grew older than Stripe
   * accepts while failing (their usage is planned again in its period); `late` counts reports of the
   * last 35 days planned more than an hour after their period ended (Stripe had finalized that
   * invoice: their usage is not billed). Healthy when nothing is blocked, failed or late.
   */
  async status(options: { limit?: number } = {}) {
    const db = this.#manager.db()
    const counts: Record<'pending' | 'failed' | 'blocked' | 'sent' | 'expired' | 'late', number> = { pending: 0, failed: 0, blocked: 0, sent: 0, expired: 0, late: 0 }
    for (const row of await db.from(REPORTS).groupBy('status').select('status').count('* as total')) {
      if (Object.hasOwn(counts, row.status)) counts[row.status as keyof typeof counts] = Number(row.total)
    }
    /**
     * Reports planned more than an hour after their period ended (within the last 35 days): Stripe
     * has finalized that period's invoice by then, so their usage is not billed
     */
    const since = DateTime.utc().minus({ days: STRIPE_MAX_AGE_DAYS })
    const afterPeriod = await db
      .from(REPORTS)
      .whereNotIn('status', ['blocked', 'expired'])
      .whereNotNull('period_end')
      .where('created_at', '>=', toDbDateTime(since))
      .whereRaw('created_at > period_end')
      .select('created_at', 'period_end')
    counts.late = afterPeriod.filter((row) => fromDbDateTime(row.created_at)! > fromDbDateTime(row.period_end)!.plus({ hours: 1 })).length
    const oldest = await db.from(REPORTS).whereIn('status', ['pending', 'failed']).orderBy('window_start').select('window_start').first()
    const problems = await db
      .from(REPORTS)
      .whereIn('status', ['blocked', 'failed'])
      .orderBy('updated_at', 'desc')
      .limit(options.limit ?? 50)
      .select('customer_id', 'meter', 'status', 'window_start', 'attempts', 'next_attempt_at', 'error', 'updated_at')
    return {
      healthy: counts.failed === 0 && counts.blocked === 0 && counts.late === 0,
      counts,
      oldestUnsentWindow: oldest ? fromDbDateTime(oldest.window_start)!.toISO() : null,
      problems: problems.map((row) => ({
        customerId: Number(row.customer_id),
        meter: row.meter as string,
        status: row.status as 'blocked' | 'failed',
        windowStart: row.status === 'blocked' ? null : fromDbDateTime(row.window_start)!.toISO(),
        attempts: Number(row.attempts),
        nextAttemptAt: row.next_attempt_at ? fromDbDateTime(row.next_attempt_at)!.toISO() : null,
        error: row.error as string | null,
        at: fromDbDateTime(row.updated_at)!.toISO(),
      })),
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
      /**
       * Local usage per hour, as Stripe should have it: whole numbers, sum and count meters as deltas
       * of the rounded running total (how the reporter sends them), the others rounded half up
       */
      const buckets = await db
        .from('billing_usage_rollups')
        .where('customer_id', row.customer_id)
        .where('meter', row.meter)
        .where('bucket', '>=', toDbDateTime(since))
        .where('bucket', '<', toDbDateTime(until))
        .orderBy('bucket')
        .select('bucket', 'sum', 'count', 'max', 'last')
      const seen = new Set<number>()
      let running = 0n
      for (const bucket of buckets) {
        const start = Math.floor(fromDbDateTime(bucket.bucket)!.toSeconds())
        seen.add(start)
        const aggregation = meter!.aggregation
        let value: number
        if (aggregation === 'sum' || aggregation === 'count') {
          const previous = roundHalfUp(running)
          running += aggregation === 'count' ? BigInt(bucket.count) * SCALE : fixedOf(bucket.sum, 'sum')
          value = Number(roundHalfUp(running) - previous)
        } else {
          value = Number(roundHalfUp(fixedOf(aggregation === 'max' ? bucket.max : bucket.last)))
        }
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

/**
 * A report's quantity as the whole number Stripe takes (reports are planned as integers already).
 */
function meterEventValue(quantity: unknown): string {
  return String(roundHalfUp(fixedOf(quantity)))
}

/**
 * The outbox row that marks a customer's meter the planner could not read.
 */
function blockedIdentifier(customerId: number, meter: string): string {
  return `blocked:${customerId}:${meter}`
}

/**
 * The billing period `at` falls in, from `layers` (most authoritative first): the first layer that
 * contains `at`, cut where a more authoritative one begins or ends; else the calendar month (UTC) cut
 * the same way. A period that a later one overlaps (a billing cycle reset, a subscription that
 * replaced another) so keeps only the part the later one does not claim.
 */
export function periodContaining(layers: Period[], at: DateTime): Period {
  const index = layers.findIndex((period) => period.start <= at && at < period.end)
  let start = index >= 0 ? layers[index].start : at.toUTC().startOf('month')
  let end = index >= 0 ? layers[index].end : start.plus({ months: 1 })
  for (const period of index >= 0 ? layers.slice(0, index) : layers) {
    if (period.end <= at && period.end > start) start = period.end
    if (period.start > at && period.start < end) end = period.start
  }
  return { start, end }
}
