import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { DIALECTS, setupApp } from './helpers.ts'
import { User } from './fixtures/user.ts'
import {
  Customer,
  EntitlementGrant,
  Invoice,
  Subscription,
  SubscriptionItem,
  UsageEvent,
  UsageReport,
  UsageRollup,
  WebhookEvent,
} from '../src/models/main.ts'

for (const dialect of DIALECTS) {
  test.group(`data model [${dialect}]`, () => {
    test('every table round-trips money, decimals, JSON and UTC times exactly', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'm@example.com', name: null })
      const customer = await billing.for(user).customer()
      const at = DateTime.fromISO('2026-03-31T23:59:59.123+02:00')

      const subscription = await Subscription.create({
        customerId: customer.id,
        name: 'default',
        plan: 'pro',
        status: 'active',
        quantity: 3,
        stripeSubscriptionId: 'sub_1',
        cancelAtPeriodEnd: true,
        currentPeriodEnd: at,
        metadata: { team: '4' },
      })
      await SubscriptionItem.create({ subscriptionId: subscription.id, stripeItemId: 'si_1', priceKey: 'pro_month', quantity: 3 })
      await Invoice.create({
        customerId: customer.id,
        subscriptionId: subscription.id,
        stripeInvoiceId: 'in_1',
        status: 'paid',
        currency: 'usd',
        subtotal: 9_007_199_254_740_000,
        tax: 290,
        total: 3190,
        amountDue: 3190,
        amountPaid: 3190,
        amountRemaining: 0,
        lines: [{ amount: 2900, description: 'Pro' }],
      })
      await UsageEvent.create({ customerId: customer.id, meter: 'api_calls', quantity: '12.5', occurredAt: at, idempotencyKey: 'k1', properties: { path: '/x' } })
      await UsageRollup.create({ customerId: customer.id, meter: 'api_calls', bucket: at.startOf('hour'), sum: '12.5', count: 1, max: '12.5', last: '12.5', lastAt: at })
      await UsageReport.create({
        customerId: customer.id,
        meter: 'api_calls',
        windowStart: at.startOf('hour'),
        windowEnd: at.startOf('hour').plus({ hours: 1 }),
        quantity: '12.5',
        identifier: 'r1',
        status: 'pending',
        attempts: 0,
      })
      await EntitlementGrant.create({ customerId: customer.id, feature: 'seats', value: 25, startsAt: at, reason: 'promo' })
      await WebhookEvent.create({
        provider: 'stripe',
        eventId: 'evt_1',
        type: 'invoice.paid',
        livemode: false,
        payload: { id: 'evt_1', data: { object: { id: 'in_1' } } },
        status: 'received',
        attempts: 0,
        receivedAt: at,
      })

      const storedSubscription = await Subscription.findOrFail(subscription.id)
      assert.isTrue(storedSubscription.cancelAtPeriodEnd)
      assert.deepEqual(storedSubscription.metadata, { team: '4' })
      assert.equal(storedSubscription.currentPeriodEnd!.toISO(), '2026-03-31T21:59:59.123Z')
      assert.equal(storedSubscription.currentPeriodEnd!.zoneName, 'UTC')

      const invoice = await Invoice.findByOrFail('stripe_invoice_id', 'in_1')
      assert.strictEqual(invoice.subtotal, 9_007_199_254_740_000)
      assert.strictEqual(invoice.tax, 290)
      assert.deepEqual(invoice.lines, [{ amount: 2900, description: 'Pro' }])

      const event = await UsageEvent.findByOrFail('idempotency_key', 'k1')
      assert.strictEqual(event.quantity, '12.5')
      assert.deepEqual(event.properties, { path: '/x' })
      const rollup = await UsageRollup.query().firstOrFail()
      assert.strictEqual(rollup.sum, '12.5')
      assert.strictEqual(rollup.count, 1)
      assert.equal(rollup.bucket.toISO(), '2026-03-31T21:00:00.000Z')
      assert.strictEqual((await UsageReport.findByOrFail('identifier', 'r1')).quantity, '12.5')
      assert.strictEqual((await EntitlementGrant.query().firstOrFail()).value, 25)
      const webhook = await WebhookEvent.findByOrFail('event_id', 'evt_1')
      assert.isFalse(webhook.livemode)
      assert.equal(webhook.payload.data.object.id, 'in_1')
      assert.equal((await Customer.findOrFail(customer.id)).balance, 0)
    })

    test('unique keys hold on every table that needs one', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'u@example.com', name: null })
      const customer = await billing.for(user).customer()
      const at = DateTime.utc()
      const duplicates: Array<[string, () => Promise<unknown>]> = [
        ['customer stripe id', async () => {
          await Customer.query().where('id', customer.id).update({ stripe_customer_id: 'cus_1' })
          await Customer.create({ stripeCustomerId: 'cus_1', balance: 0, entitlementVersion: 0 })
        }],
        ['subscription stripe id', async () => {
          await Subscription.create({ customerId: customer.id, name: 'a', plan: 'pro', status: 'active', stripeSubscriptionId: 'sub_x', cancelAtPeriodEnd: false })
          await Subscription.create({ customerId: customer.id, name: 'b', plan: 'pro', status: 'active', stripeSubscriptionId: 'sub_x', cancelAtPeriodEnd: false })
        }],
        ['usage idempotency key', async () => {
          await UsageEvent.create({ customerId: customer.id, meter: 'api_calls', quantity: '1', occurredAt: at, idempotencyKey: 'same' })
          await UsageEvent.create({ customerId: customer.id, meter: 'api_calls', quantity: '1', occurredAt: at, idempotencyKey: 'same' })
        }],
        ['rollup bucket', async () => {
          await UsageRollup.create({ customerId: customer.id, meter: 'api_calls', bucket: at.startOf('hour'), sum: '1', count: 1 })
          await UsageRollup.create({ customerId: customer.id, meter: 'api_calls', bucket: at.startOf('hour'), sum: '1', count: 1 })
        }],
        ['webhook event id', async () => {
          const row = { provider: 'stripe', eventId: 'evt_dup', type: 'x', livemode: false, payload: {}, status: 'received' as const, attempts: 0, receivedAt: at }
          await WebhookEvent.create(row)
          await WebhookEvent.create(row)
        }],
      ]
      for (const [name, attempt] of duplicates) {
        const error = await attempt().then(() => null, (reason) => reason as Error)
        assert.match(error?.message ?? `${name}: no error`, /UNIQUE constraint failed|duplicate key value violates unique constraint/, name)
      }
      /**
       * The same key for another meter or another customer is not a duplicate.
       */
      await UsageEvent.create({ customerId: customer.id, meter: 'storage', quantity: '1', occurredAt: at, idempotencyKey: 'same' })
    })
  })
}
