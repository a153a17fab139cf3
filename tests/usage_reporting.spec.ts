import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { User } from './fixtures/user.ts'
import UsageReport from '../src/models/usage_report.ts'
import BillingUsageReconcile from '../commands/billing_usage_reconcile.ts'

async function reportingWorld(dialect: 'sqlite' | 'pg', billing?: import('../src/types.ts').BillingConfigInput) {
  const world = await setupStripeApp(dialect, { environment: 'console', billing })
  const sync = world.billing.catalogSync()
  await sync.apply(await sync.plan())
  const user = await User.create({ email: 'r@example.com', name: null })
  const stripeCustomerId = await world.billing.for(user).stripeCustomerId()
  const customerId = (await world.billing.for(user).customer()).id
  const hour = DateTime.utc().minus({ hours: 3 }).startOf('hour')
  const record = (quantity: number, key: string, at: DateTime) =>
    world.billing.usage.recordMany([{ customerId, meter: 'api_calls', quantity, idempotencyKey: key, at }])
  /**
   * Meter events Stripe accepted (a repeated identifier is not accepted twice)
   */
  const stripeEvents = () => world.fake.meterEvents
  return { ...world, user, stripeCustomerId, customerId, hour, record, stripeEvents }
}

for (const dialect of DIALECTS) {
  test.group(`usage reporting to Stripe Billing Meters [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(60_000))

    test('closed windows are reported once with deterministic identifiers; late usage becomes a correction', async ({ assert }) => {
      const w = await reportingWorld(dialect)
      await w.record(5, 'a', w.hour.plus({ minutes: 10 }))
      await w.record(7, 'b', w.hour.plus({ minutes: 40 }))
      await w.record(1, 'c', w.hour.plus({ hours: 1, minutes: 1 }))
      await w.record(100, 'open', DateTime.utc())

      assert.equal(await w.billing.usageReporter.plan(), 2)
      assert.equal(await w.billing.usageReporter.plan(), 0)
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 2, failed: 0 })
      const stream = w.fake.requestsTo('POST', '/v2/billing/meter_event_stream')
      assert.lengthOf(stream, 1, 'both windows in one v2 stream request')
      assert.match(stream[0].apiKey!, /^mes_tok_/)
      assert.deepEqual(stream[0].body.events[0], {
        event_name: 'api_calls',
        identifier: `adonis-billing:${w.customerId}:api_calls:${w.hour.toISO()}:0`,
        timestamp: w.hour.toISO(),
        payload: { stripe_customer_id: w.stripeCustomerId, value: '12' },
      })
      assert.deepEqual(
        w.stripeEvents().map((event) => [event.identifier, event.payload.value, event.timestamp]),
        [
          [`adonis-billing:${w.customerId}:api_calls:${w.hour.toISO()}:0`, '12', Math.floor(w.hour.toSeconds())],
          [`adonis-billing:${w.customerId}:api_calls:${w.hour.plus({ hours: 1 }).toISO()}:0`, '1', Math.floor(w.hour.plus({ hours: 1 }).toSeconds())],
        ]
      )
      assert.lengthOf(w.fake.meterEventStreamErrors, 0)
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 0, failed: 0 })

      /**
       * A late event in the first window: a correction for the difference only
       */
      await w.record(3, 'late', w.hour.plus({ minutes: 59 }))
      assert.equal(await w.billing.usageReporter.plan(), 1)
      await w.billing.usageReporter.send()
      const correction = await UsageReport.query().orderBy('id', 'desc').firstOrFail()
      assert.equal(correction.identifier, `${w.customerId}:api_calls:${w.hour.toISO()}:1`)
      assert.equal(correction.quantity, '3')
      assert.deepEqual(await w.billing.usageReporter.reconcile({ since: w.hour, until: w.hour.plus({ hours: 2 }) }), [])
    })

    test('a crash between sending and marking is harmless: the resend is recognised', async ({ assert }) => {
      const w = await reportingWorld(dialect)
      await w.record(4, 'a', w.hour)
      await w.billing.usageReporter.plan()
      await w.billing.usageReporter.send()
      /**
       * Simulate the crash: Stripe got it, our mark was lost
       */
      await w.billing.db().from('billing_usage_reports').update({ status: 'pending', sent_at: null })
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 1, failed: 0 })
      assert.lengthOf(w.stripeEvents(), 1)
      assert.equal((await UsageReport.query().firstOrFail()).status, 'sent')
    })

    test('429 and 500 back off with a next attempt, then succeed', async ({ assert }) => {
      const w = await reportingWorld(dialect)
      await w.record(2, 'a', w.hour)
      await w.billing.usageReporter.plan()
      w.fake.rateLimitNext({ method: 'POST', path: '/v2/billing/meter_event_stream' }).rateLimitNext({ method: 'POST', path: '/v1/billing/meter_events' })
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 0, failed: 1 })
      const failed = await UsageReport.query().firstOrFail()
      assert.equal(failed.status, 'failed')
      assert.equal(failed.attempts, 1)
      assert.isTrue(failed.nextAttemptAt! > DateTime.utc())
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 0, failed: 0 }, 'not due yet')
      assert.deepEqual(await w.billing.usageReporter.send({ now: () => DateTime.utc().plus({ hours: 2 }) }), { sent: 1, failed: 0 })
      assert.lengthOf(w.stripeEvents(), 1)
    })

    test('the v2 session is renewed when it expires; a failing stream falls back to v1; v1 can be chosen', async ({ assert }) => {
      const w = await reportingWorld(dialect)
      await w.record(1, 'a', w.hour)
      await w.billing.usageReporter.plan()
      await w.billing.usageReporter.send()
      assert.lengthOf(w.fake.requestsTo('POST', '/v2/billing/meter_event_session'), 1)

      /**
       * 16 minutes later (Stripe's clock) the session is gone: renewed once, then the stream goes on
       */
      w.fake.advance(16 * 60)
      await w.record(2, 'b', w.hour.minus({ hours: 1 }))
      await w.billing.usageReporter.plan()
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 1, failed: 0 })
      assert.lengthOf(w.fake.requestsTo('POST', '/v2/billing/meter_event_session'), 2)
      assert.deepEqual(w.fake.requestsTo('POST', '/v2/billing/meter_event_stream').map((request) => request.status), [200, 401, 200])

      /**
       * The stream down: the v1 endpoint takes the report
       */
      w.fake.serverErrorNext({ method: 'POST', path: '/v2/billing/meter_event_stream' })
      await w.record(3, 'c', w.hour.minus({ hours: 2 }))
      await w.billing.usageReporter.plan()
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 1, failed: 0 })
      assert.lengthOf(w.fake.requestsTo('POST', '/v1/billing/meter_events').filter((request) => request.status === 200), 1)
      assert.lengthOf(w.stripeEvents(), 3)

      const { testCatalog } = await import('./fixtures/catalog.ts')
      const v1 = await setupStripeApp(dialect, { billing: testCatalog({ usage: { transport: 'v1' } }), fake: w.fake })
      const user = await User.create({ email: 'v1@example.com', name: null })
      await v1.billing.for(user).stripeCustomerId()
      await v1.billing.usage.recordMany([{ customerId: (await v1.billing.for(user).customer()).id, meter: 'api_calls', quantity: 4, idempotencyKey: 'v1', at: w.hour }])
      await v1.billing.usageReporter.plan()
      const streamed = w.fake.requestsTo('POST', '/v2/billing/meter_event_stream').length
      assert.deepEqual(await v1.billing.usageReporter.send(), { sent: 1, failed: 0 })
      assert.equal(w.fake.requestsTo('POST', '/v2/billing/meter_event_stream').length, streamed)
    })

    test('two workers never send a window twice', async ({ assert }) => {
      const w = await reportingWorld(dialect)
      for (let index = 0; index < 30; index++) await w.record(1, `k${index}`, w.hour.minus({ hours: index }))
      await Promise.all([w.billing.usageReporter.plan(), w.billing.usageReporter.plan()])
      assert.lengthOf(await UsageReport.all(), 30)
      const results = await Promise.all([w.billing.usageReporter.send({ batchSize: 4 }), w.billing.usageReporter.send({ batchSize: 4 })])
      assert.equal(results[0].sent + results[1].sent, 30)
      assert.lengthOf(w.stripeEvents(), 30)
      assert.lengthOf(new Set(w.stripeEvents().map((event) => event.identifier)), 30)
    })

    test('on v1, two workers keep one call in flight per customer and meter and still send everything once', async ({ assert }) => {
      const { testCatalog } = await import('./fixtures/catalog.ts')
      const w = await reportingWorld(dialect, testCatalog({ usage: { transport: 'v1' } }))
      const base = w
      for (let index = 0; index < 12; index++) await w.record(1, `v1-${index}`, w.hour.minus({ hours: index }))
      await w.billing.usageReporter.plan()
      for (let round = 0; round < 10 && (await UsageReport.query().whereNot('status', 'sent')).length > 0; round++) {
        await Promise.all([w.billing.usageReporter.send({ batchSize: 3 }), w.billing.usageReporter.send({ batchSize: 3 })])
      }
      assert.lengthOf(await UsageReport.query().where('status', 'sent'), 12)
      assert.lengthOf(base.fake.meterEvents, 12)
      assert.lengthOf(new Set(base.fake.meterEvents.map((event) => event.identifier)), 12)
      assert.lengthOf(base.fake.requestsTo('POST', '/v2/billing/meter_event_stream'), 0)
    })

    test('billing:usage:reconcile lists differences and exits 1', async ({ assert }) => {
      const w = await reportingWorld(dialect)
      await w.record(6, 'a', w.hour)
      await w.billing.usageReporter.plan()
      await w.billing.usageReporter.send()
      const ace = await w.app.container.make('ace')
      ace.ui.switchMode('raw')
      const ok = await ace.create(BillingUsageReconcile, ['--since', w.hour.minus({ hours: 1 }).toISO()!])
      await ok.exec()
      assert.equal(ok.exitCode, 0)

      /**
       * Usage recorded after reporting and never reported: local and Stripe disagree
       */
      await w.record(2, 'unreported', w.hour.plus({ minutes: 5 }))
      const diff = await ace.create(BillingUsageReconcile, ['--since', w.hour.minus({ hours: 1 }).toISO()!])
      await diff.exec()
      assert.equal(diff.exitCode, 1)
      const lines = diff.ui.logger.getLogs().map((log: any) => log.message as string)
      assert.isTrue(lines.some((line) => line.includes(`api_calls ${w.hour.toISO()}: local 8, Stripe 6`)), lines.join('\n'))
    })
  })
}

test.group('in-process usage reporting', (group) => {
  group.tap((t) => t.timeout(30_000))

  test('usage.reportEverySeconds reports from the web process on an interval', async ({ assert }) => {
    const { testCatalog } = await import('./fixtures/catalog.ts')
    const world = await setupStripeApp('sqlite', { billing: testCatalog({ usage: { reportEverySeconds: 1 } }), environment: 'web' })
    const sync = world.billing.catalogSync()
    await sync.apply(await sync.plan())
    const user = await User.create({ email: 'i@example.com', name: null })
    await world.billing.for(user).stripeCustomerId()
    const customerId = (await world.billing.for(user).customer()).id
    await world.billing.usage.recordMany([{ customerId, meter: 'api_calls', quantity: 9, idempotencyKey: 'x', at: DateTime.utc().minus({ hours: 2 }) }])
    await world.app.start(async () => {})
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline && (await UsageReport.query().where('status', 'sent')).length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    assert.lengthOf(await UsageReport.query().where('status', 'sent'), 1)
    assert.deepInclude(world.fake.meterEvents[0].payload, { value: '9' })
  })
})

test.group('usage reporting of max and unique_count meters', () => {
  test('period-to-date values, so the last value Stripe keeps is the period max and distinct count', async ({ assert }) => {
    const { testCatalog } = await import('./fixtures/catalog.ts')
    const catalog = testCatalog()
    catalog.meters = {
      ...catalog.meters,
      storage: { name: 'Peak storage', aggregation: 'max' },
      active_users: { name: 'Active users', aggregation: 'unique_count', uniqueProperty: 'user_id' },
    }
    const w = await reportingWorld('sqlite', catalog)
    const t = DateTime.utc().minus({ hours: 4 }).startOf('hour')
    const customerId = w.customerId
    const { default: Subscription } = await import('../src/models/subscription.ts')
    await Subscription.create({ customerId, name: 'default', plan: 'pro', status: 'active', cancelAtPeriodEnd: false, currentPeriodStart: t.minus({ days: 1 }), currentPeriodEnd: t.plus({ days: 29 }) })
    await w.billing.usage.recordMany([
      { customerId, meter: 'storage', quantity: 40, idempotencyKey: 's1', at: t.plus({ minutes: 5 }) },
      { customerId, meter: 'storage', quantity: 25, idempotencyKey: 's2', at: t.plus({ hours: 1, minutes: 5 }) },
      { customerId, meter: 'active_users', quantity: 1, idempotencyKey: 'u1', at: t.plus({ minutes: 5 }), properties: { user_id: 'a' } },
      { customerId, meter: 'active_users', quantity: 1, idempotencyKey: 'u2', at: t.plus({ hours: 1, minutes: 5 }), properties: { user_id: 'b' } },
      { customerId, meter: 'active_users', quantity: 1, idempotencyKey: 'u3', at: t.plus({ hours: 2, minutes: 5 }), properties: { user_id: 'a' } },
    ])
    await w.billing.usageReporter.plan()
    await w.billing.usageReporter.send()
    const values = (eventName: string) =>
      w.fake.meterEvents
        .filter((event) => event.event_name === eventName)
        .sort((a, b) => a.timestamp - b.timestamp)
        .map((event) => event.payload.value)
    assert.deepEqual(values('storage'), ['40', '40'])
    assert.deepEqual(values('active_users'), ['1', '2', '2'])
  })
})

for (const dialect of DIALECTS) {
  test.group(`usage reporting of values too old to stamp [${dialect}]`, () => {
    test('a max value from a window older than 34 days is reported once at the latest hour of its period, not again each hour', async ({ assert }) => {
      const { testCatalog } = await import('./fixtures/catalog.ts')
      const catalog = testCatalog()
      catalog.meters = { ...catalog.meters, storage: { name: 'Peak storage', aggregation: 'max' } }
      const w = await reportingWorld(dialect, catalog)
      const now = DateTime.utc()
      const { default: Subscription } = await import('../src/models/subscription.ts')
      await Subscription.create({ customerId: w.customerId, name: 'default', plan: 'pro', status: 'active', cancelAtPeriodEnd: false, currentPeriodStart: now.minus({ days: 60 }), currentPeriodEnd: now.plus({ days: 300 }) })
      const old = now.minus({ days: 35 }).plus({ hours: 3 }).startOf('hour')
      await w.billing.usage.recordMany([{ customerId: w.customerId, meter: 'storage', quantity: 40, idempotencyKey: 'old', at: old.plus({ minutes: 5 }) }])
      assert.equal(await w.billing.usageReporter.plan({ now }), 1)
      const [row] = await UsageReport.query().where('meter', 'storage')
      assert.equal(row.quantity, '40')
      /**
       * The latest closed hour: the last whole hour ended 5 minutes (the settle time) before now
       */
      assert.equal(row.windowStart.toISO(), now.minus({ seconds: 300 }).startOf('hour').minus({ hours: 1 }).toISO())
      assert.equal(await w.billing.usageReporter.plan({ now: now.plus({ hours: 1 }) }), 0)
      assert.equal(await w.billing.usageReporter.plan({ now: now.plus({ hours: 2 }) }), 0)
      /**
       * A higher value arrives late in the same old window: one correction, at the latest hour
       */
      await w.billing.usage.recordMany([{ customerId: w.customerId, meter: 'storage', quantity: 55, idempotencyKey: 'old-late', at: old.plus({ minutes: 6 }) }])
      assert.equal(await w.billing.usageReporter.plan({ now: now.plus({ hours: 2 }) }), 1)
      assert.equal(await w.billing.usageReporter.plan({ now: now.plus({ hours: 3 }) }), 0)
      assert.deepEqual((await UsageReport.query().where('meter', 'storage').orderBy('id')).map((report) => report.quantity), ['40', '55'])
    })
  })

  test.group(`usage reporting isolates failures [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(60_000))

    test('one unreadable customer meter is blocked and shown by billing:usage:status; the others are reported', async ({ assert }) => {
      const w = await reportingWorld(dialect)
      const other = await User.create({ email: 'other@example.com', name: null })
      await w.billing.for(other).stripeCustomerId()
      const otherId = (await w.billing.for(other).customer()).id
      await w.record(5, 'a', w.hour)
      await w.billing.usage.recordMany([{ customerId: otherId, meter: 'api_calls', quantity: 7, idempotencyKey: 'b', at: w.hour }])
      /**
       * A row no quantity can be: a negative sum, written behind the package's back
       */
      await w.db.connection().from('billing_usage_rollups').where('customer_id', w.customerId).update({ sum: '-5' })

      assert.equal(await w.billing.usageReporter.plan(), 1)
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 1, failed: 0 })
      assert.deepEqual(w.fake.meterEvents.map((event) => event.payload.value), ['7'])

      const ace = await w.app.container.make('ace')
      ace.ui.switchMode('raw')
      const { default: BillingUsageStatus } = await import('../commands/billing_usage_status.ts')
      const status = await ace.create(BillingUsageStatus, ['--json'])
      await status.exec()
      assert.equal(status.exitCode, 1)
      const report = JSON.parse(status.ui.logger.getLogs()[0].message)
      assert.deepInclude(report, { healthy: false, counts: { pending: 0, failed: 0, blocked: 1, sent: 1, expired: 0, late: 0 } })
      assert.deepInclude(report.problems[0], { customerId: w.customerId, meter: 'api_calls', status: 'blocked' })
      assert.match(report.problems[0].error, /Not an exact decimal sum/)

      /**
       * Repaired: the next run plans it and clears the mark
       */
      await w.db.connection().from('billing_usage_rollups').where('customer_id', w.customerId).update({ sum: '5' })
      assert.equal(await w.billing.usageReporter.plan(), 1)
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 1, failed: 0 })
      assert.deepInclude(await w.billing.usageReporter.status(), { healthy: true, counts: { pending: 0, failed: 0, blocked: 0, sent: 2, expired: 0, late: 0 } })

      /**
       * A report row that cannot be sent fails alone; the rest of its batch goes out
       */
      await w.record(3, 'c', w.hour.plus({ hours: 1 }))
      await w.billing.usage.recordMany([{ customerId: otherId, meter: 'api_calls', quantity: 4, idempotencyKey: 'd', at: w.hour.plus({ hours: 1 }) }])
      assert.equal(await w.billing.usageReporter.plan(), 2)
      await w.db.connection().from('billing_usage_reports').where('customer_id', otherId).where('status', 'pending').update({ quantity: '-4' })
      assert.deepEqual(await w.billing.usageReporter.send(), { sent: 1, failed: 1 })
      const failed = (await w.billing.usageReporter.status()).problems
      assert.deepInclude(failed[0], { customerId: otherId, status: 'failed', attempts: 1 })
    })
  })
}

test.group('usage reporting: one planner per customer and meter (review finding)', (group) => {
  group.tap((t) => t.timeout(60_000))

  test('a planner waits for the one holding the pair, then plans on what that one reported', async ({ assert }) => {
    const w = await reportingWorld('pg')
    await w.record(0.4, 'a', w.hour)
    await w.record(0.2, 'b', w.hour.plus({ hours: 1 }))
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    let locked!: () => void
    const isLocked = new Promise<void>((resolve) => (locked = resolve))
    const holder = w.billing.db().transaction(async (trx) => {
      await trx.rawQuery('select pg_advisory_xact_lock(hashtext(?))', [`adonis-billing:plan:${w.customerId}:api_calls`])
      locked()
      await held
    })
    await isLocked
    let planned: number | null = null
    const planner = w.billing.usageReporter.plan().then((count) => (planned = count))
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.isNull(planned, 'the planner waits for the lock')
    release()
    await holder
    await planner
    /**
     * 0.4 + 0.2 rounds to 1: one report of 1 in all
     */
    assert.equal(planned, 1)
    const reports = await UsageReport.all()
    assert.deepEqual(reports.map((report) => report.quantity), ['1'])
  })
})
