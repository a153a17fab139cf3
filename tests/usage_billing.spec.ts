import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { User } from './fixtures/user.ts'
import { testCatalog } from './fixtures/catalog.ts'
import { serve } from './http.ts'
import Subscription from '../src/models/subscription.ts'
import UsageReport from '../src/models/usage_report.ts'

/**
 * The preview must equal the invoice: usage recorded locally, reported by the package to the Stripe
 * fake (which bills meter events the way Stripe does: whole numbers, by timestamp inside the item's
 * period), then `usage(meter).preview()` compared with the metered line of Stripe's own next invoice.
 */
async function meteredWorld(dialect: 'sqlite' | 'pg') {
  const catalog = testCatalog()
  catalog.plans!.metered = {
    name: 'Metered',
    prices: { month: { amount: 1000 } },
    usagePrices: { api_calls: { model: 'per_unit', unitAmount: 100 } },
    features: { api_calls: 'unlimited' },
  }
  catalog.plans!.yearly = {
    name: 'Yearly metered',
    prices: { year: { amount: 10000 } },
    usagePrices: { api_calls: { model: 'per_unit', unitAmount: 100 } },
    features: { api_calls: 'unlimited' },
  }
  catalog.plans!.tiered = {
    name: 'Tiered',
    prices: { month: { amount: 1000 } },
    usagePrices: { api_calls: { model: 'graduated', tiers: [{ upTo: 100, unitAmount: 0, flatAmount: 500 }, { upTo: 'inf', unitAmount: 1 }] } },
    features: { api_calls: 'unlimited' },
  }
  const world = await setupStripeApp(dialect, { billing: catalog, environment: 'console' })
  const sync = world.billing.catalogSync()
  await sync.apply(await sync.plan())
  /**
   * Every period starts at :30, 14 hours ago: off the hour, and long enough for ten closed windows
   */
  const periodStart = DateTime.utc().minus({ hours: 14 }).startOf('hour').plus({ minutes: 30 })
  const subscriber = async (email: string, plan: string, options: { start?: DateTime; interval?: 'month' | 'year' } = {}) => {
    const user = await User.create({ email, name: null })
    world.fake.setNow(Math.floor((options.start ?? periodStart).toSeconds()))
    await world.billing.for(user).subscribe(plan, { paymentMethod: 'pm_card_visa', trialDays: 0, interval: options.interval })
    world.fake.setNow(Math.floor(DateTime.utc().toSeconds()))
    const customerId = (await world.billing.for(user).customer()).id
    const record = (items: Array<[quantity: number | string, at: DateTime]>) =>
      world.billing.usage.recordMany(items.map(([quantity, at], index) => ({ customerId, meter: 'api_calls', quantity, idempotencyKey: `${email}:${index}`, at })))
    return { user, customerId, record }
  }
  const report = async () => {
    await world.billing.usageReporter.plan()
    return world.billing.usageReporter.send()
  }
  /**
   * What Stripe will bill for the meter: the metered line of the subscription's next invoice
   */
  const stripeBills = async (user: User) => {
    const invoice = await world.billing.for(user).upcomingInvoice()
    const metered = invoice.lines.data.find((candidate) => /\(usage\)$/.test(candidate.description ?? '')) as any
    return { amount: metered.amount as number, quantity: metered.quantity as number }
  }
  return { ...world, periodStart, subscriber, report, stripeBills }
}

for (const dialect of DIALECTS) {
  test.group(`the usage preview equals the invoice [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(60_000))

    test('fractional usage: Stripe bills the rounded period total, and the preview prices exactly that', async ({ assert }) => {
      const w = await meteredWorld(dialect)
      const halves = await w.subscriber('halves@example.com', 'metered')
      const tenths = await w.subscriber('tenths@example.com', 'metered')
      const hours = Array.from({ length: 10 }, (_, index) => w.periodStart.plus({ hours: index + 1 }))
      await halves.record(hours.map((at) => ['0.5', at]))
      await tenths.record(hours.map((at) => ['0.4', at]))
      await w.report()

      for (const [who, usage, amount] of [
        [halves, '5', 500],
        [tenths, '4', 400],
      ] as const) {
        const preview = (await w.billing.for(who.user).usage('api_calls').preview())!
        assert.deepInclude(preview, { usage, quantity: usage, amount })
        assert.deepEqual(await w.stripeBills(who.user), { amount, quantity: Number(usage) })
      }
      /**
       * Whole numbers only ever reach Stripe, and they add up to the rounded total
       */
      assert.isAbove(w.fake.meterEvents.length, 0)
      for (const event of w.fake.meterEvents) assert.match(event.payload.value, /^\d+$/)
    })

    test('a period starting at :30 does not count the half hour before it', async ({ assert }) => {
      const w = await meteredWorld(dialect)
      const boundary = await w.subscriber('boundary@example.com', 'metered')
      await boundary.record([
        [9000, w.periodStart.minus({ minutes: 20 })],
        [1005, w.periodStart.plus({ minutes: 10 })],
      ])
      await w.report()
      const preview = (await w.billing.for(boundary.user).usage('api_calls').preview())!
      assert.deepInclude(preview, { usage: '1005', quantity: '1005', amount: 100500 })
      assert.deepEqual(await w.stripeBills(boundary.user), { amount: 100500, quantity: 1005 })
      /**
       * Two reports for the one hour, each stamped inside its own period
       */
      const hour = w.periodStart.startOf('hour')
      assert.sameDeepMembers(
        w.fake.meterEvents.map((event) => [event.payload.value, event.timestamp]),
        [
          ['9000', Math.floor(hour.toSeconds())],
          ['1005', Math.floor(w.periodStart.toSeconds())],
        ]
      )
      assert.equal(await w.billing.for(boundary.user).usage('api_calls').total(hour, w.periodStart), '9000')
      assert.deepEqual(await w.billing.usageReporter.reconcile({ since: hour, until: hour.plus({ hours: 2 }) }), [])
    })

    test('a renewal keeps the period that ended whole: none of its usage is reported again', async ({ assert }) => {
      const w = await meteredWorld(dialect)
      const { url } = await serve(w.app, () => w.billing.registerRoutes({ admin: { authorize: () => false } }))
      const start = DateTime.utc().minus({ days: 33 }).startOf('hour').plus({ minutes: 30 })
      const renewing = await w.subscriber('renewing@example.com', 'metered', { start })
      const subscription = await Subscription.query().where('customer_id', renewing.customerId).firstOrFail()
      const [periodStart, periodEnd] = [subscription.currentPeriodStart!, subscription.currentPeriodEnd!]
      assert.isTrue(periodEnd < DateTime.utc(), 'the first period has ended')
      /**
       * Half a unit on each side of the calendar month that begins inside the period: one unit for
       * the period, which a regroup by calendar month would count as two
       */
      const monthStart = periodStart.startOf('month').plus({ months: 1 })
      await renewing.record([
        ['0.5', monthStart.minus({ minutes: 20 })],
        ['0.5', monthStart.plus({ minutes: 20 })],
      ])
      /**
       * Reported in time: planned within the hour after the period ends, once its last hour closed
       */
      await w.billing.usageReporter.plan({ now: periodEnd.plus({ minutes: 55 }) })
      await w.billing.usageReporter.send()
      const billedInPeriod = () =>
        w.fake.meterEvents
          .filter((event) => event.timestamp >= periodStart.toSeconds() && event.timestamp < periodEnd.toSeconds())
          .reduce((sum, event) => sum + Number(event.payload.value), 0)
      assert.equal(billedInPeriod(), 1)

      /**
       * Stripe renews; the app learns the new period from the webhooks
       */
      w.fake.setNow(Math.floor(DateTime.utc().toSeconds()) + 2)
      const { invoice } = w.fake.advanceToPeriodEnd(subscription.stripeSubscriptionId!)
      for (const result of await w.fake.deliverAll(`${url}/billing/webhooks/stripe`, { secret: 'whsec_test_secret', types: ['customer.subscription.*'] })) assert.equal(result.status, 200)
      await subscription.refresh()
      assert.equal(subscription.currentPeriodStart!.toMillis(), periodEnd.toMillis())
      const metered = (invoice as any).lines.data.find((line: any) => /\(usage\)$/.test(line.description ?? ''))
      assert.equal(metered.quantity, 1)

      assert.deepEqual(await w.report(), { sent: 0, failed: 0 })
      assert.equal(billedInPeriod(), 1)
      assert.deepEqual(
        (await UsageReport.query().where('customer_id', renewing.customerId)).map((row) => [row.periodStart?.toMillis(), row.periodEnd?.toMillis()]),
        [[periodStart.toMillis(), periodEnd.toMillis()]]
      )
      assert.deepInclude(await w.billing.usageReporter.status(), { healthy: true })

      /**
       * Usage of the ended period that arrives now is reported in it, but Stripe invoiced that period
       * already: the outbox says so (unhealthy, `late`)
       */
      await w.billing.usage.recordMany([{ customerId: renewing.customerId, meter: 'api_calls', quantity: 3, idempotencyKey: 'late', at: monthStart.plus({ minutes: 30 }) }])
      assert.equal(await w.billing.usageReporter.plan(), 1)
      assert.deepInclude(await w.billing.usageReporter.status(), { healthy: false, counts: { pending: 1, failed: 0, blocked: 0, sent: 1, expired: 0, late: 1 } })
    })

    test('another subscription of the customer (an add-on, an incomplete one) does not cut the period of the one billing the meter', async ({ assert }) => {
      const w = await meteredWorld(dialect)
      const both = await w.subscriber('both@example.com', 'metered')
      /**
       * Half a unit before and after the add-on starts: one unit for the metered subscription's period
       */
      w.fake.setNow(Math.floor(DateTime.utc().minus({ hours: 6 }).toSeconds()))
      await w.billing.for(both.user).subscribe('extra_seats', { name: 'seats', paymentMethod: 'pm_card_visa', trialDays: 0 })
      w.fake.setNow(Math.floor(DateTime.utc().toSeconds()))
      await both.record([
        ['0.5', w.periodStart.plus({ hours: 1 })],
        ['0.5', DateTime.utc().minus({ hours: 3 })],
      ])
      await w.report()
      assert.deepEqual(await w.stripeBills(both.user), { amount: 100, quantity: 1 })
      assert.deepInclude((await w.billing.for(both.user).usage('api_calls').preview())!, { usage: '1', quantity: '1', amount: 100 })
      assert.equal(w.fake.meterEvents.reduce((sum, event) => sum + Number(event.payload.value), 0), 1)
    })

    test('usage older than Stripe takes is reported at a recent window of its period, also after a day of failures', async ({ assert }) => {
      const w = await meteredWorld(dialect)
      const start = DateTime.utc().minus({ days: 40 })
      const yearly = await w.subscriber('yearly@example.com', 'yearly', { start, interval: 'year' })
      /**
       * A window 35 days old less two hours: still planned, but too old to be stamped there
       */
      const old = DateTime.utc().minus({ days: 35 }).plus({ hours: 2 }).startOf('hour')
      await yearly.record([
        [7, old.plus({ minutes: 5 })],
        [2, DateTime.utc().minus({ hours: 3 })],
      ])
      /**
       * The old window's 7 ride on the recent window's report (a sum meter's running total)
       */
      assert.equal(await w.billing.usageReporter.plan(), 1)
      const rows = await UsageReport.query().where('customer_id', yearly.customerId)
      assert.deepEqual(rows.map((row) => row.quantity), ['9'])
      for (const row of rows) assert.isTrue(row.windowStart > DateTime.utc().minus({ days: 34 }), `${row.windowStart.toISO()} is recent`)
      /**
       * Stripe is unreachable for a day: the report is still within the 35 days it accepts
       */
      const later = DateTime.utc().plus({ hours: 25 })
      w.fake.setNow(Math.floor(later.toSeconds()))
      assert.deepEqual(await w.billing.usageReporter.send({ now: () => later }), { sent: 1, failed: 0 })
      assert.deepEqual(w.fake.meterEvents.map((event) => event.payload.value), ['9'])
      assert.deepEqual(await w.stripeBills(yearly.user), { amount: 900, quantity: 9 })
      assert.deepInclude((await w.billing.for(yearly.user).usage('api_calls').preview())!, { usage: '9', amount: 900 })
    })

    test('a report that grew older than Stripe takes while failing expires and is planned again at a recent window', async ({ assert }) => {
      const w = await meteredWorld(dialect)
      const yearly = await w.subscriber('expiring@example.com', 'yearly', { start: DateTime.utc().minus({ days: 40 }), interval: 'year' })
      const at = DateTime.utc().minus({ days: 33 }).startOf('hour')
      await yearly.record([[4, at.plus({ minutes: 1 })]])
      assert.equal(await w.billing.usageReporter.plan(), 1)
      /**
       * Three days later the report is still unsent (Stripe was down)
       */
      const later = DateTime.utc().plus({ days: 3 })
      w.fake.setNow(Math.floor(later.toSeconds()))
      assert.deepEqual(await w.billing.usageReporter.send({ now: () => later }), { sent: 0, failed: 0 })
      assert.deepInclude(await w.billing.usageReporter.status(), { counts: { pending: 0, failed: 0, blocked: 0, sent: 0, expired: 1, late: 0 } })
      assert.equal(await w.billing.usageReporter.plan({ now: later }), 1)
      assert.deepEqual(await w.billing.usageReporter.send({ now: () => later }), { sent: 1, failed: 0 })
      assert.deepEqual(
        w.fake.meterEvents.map((event) => event.payload.value),
        ['4']
      )
      assert.isAbove(w.fake.meterEvents[0].timestamp, later.minus({ days: 34 }).toSeconds())
      assert.deepEqual(await w.stripeBills(yearly.user), { amount: 400, quantity: 4 })
      assert.equal(await w.billing.usageReporter.plan({ now: later }), 0)
    })

    test('fractional quantities sum exactly (0.1 + 0.2 is 0.3)', async ({ assert }) => {
      const w = await meteredWorld(dialect)
      const exact = await w.subscriber('exact@example.com', 'metered')
      const at = w.periodStart.plus({ hours: 2 })
      await exact.record([
        ['0.1', at],
        ['0.2', at.plus({ minutes: 1 })],
        ['0.000000000001', at.plus({ minutes: 2 })],
        ['123456789012345.123456789012', at.plus({ minutes: 3 })],
      ])
      const scope = w.billing.for(exact.user).usage('api_calls')
      assert.equal(await scope.total(at, at.plus({ hours: 1 })), '123456789012345.423456789013')
      assert.equal(await scope.total(at, at.plus({ minutes: 2 })), '0.3')
      const preview = (await scope.preview())!
      assert.deepInclude(preview, { usage: '123456789012345.423456789013', quantity: '123456789012345' })
    })

    test('zero usage on a tiered price with a first-tier flat fee bills the flat fee, and the preview says so', async ({ assert }) => {
      const w = await meteredWorld(dialect)
      const idle = await w.subscriber('idle@example.com', 'tiered')
      const preview = (await w.billing.for(idle.user).usage('api_calls').preview())!
      assert.deepInclude(preview, { usage: '0', quantity: '0', amount: 500 })
      assert.deepEqual(await w.stripeBills(idle.user), { amount: 500, quantity: 0 })
    })
  })
}
