import { test } from '@japa/runner'
import { checkoutLinkProof } from '../src/customers/checkout_link.ts'
import Stripe from 'stripe'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { dropAuditGuards } from './audit_helpers.ts'
import { serve } from './http.ts'
import { User } from './fixtures/user.ts'
import Subscription from '../src/models/subscription.ts'
import Customer from '../src/models/customer.ts'

const SECRET = 'whsec_test_secret'

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items]
  return items.flatMap((item, index) => permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [item, ...rest]))
}

/**
 * Deterministic shuffles (mulberry32), so a failing order can be reproduced.
 */
function shuffled<T>(items: T[], seed: number): T[] {
  let state = seed
  const random = () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j], copy[i]]
  }
  return copy
}

/**
 * A subscription's whole lifecycle made on the fake by a checkout outside the package (so the Stripe
 * customer is unknown locally until checkout.session.completed links it), then `updates` changes,
 * then a cancellation. Returns the lifecycle's event ids in Stripe's order.
 */
async function lifecycle(dialect: 'sqlite' | 'pg', updates: Array<Stripe.SubscriptionUpdateParams & { quantity?: number }>) {
  const base = await setupStripeApp(dialect)
  const sync = base.billing.catalogSync()
  await sync.apply(await sync.plan())
  const { url } = await serve(base.app, () => base.billing.registerRoutes())
  const stripe = new Stripe('sk_test_direct', { ...base.fake.clientOptions, maxNetworkRetries: 0 })
  const user = await User.create({ email: 'order@example.com', name: 'Order' })
  const local = await base.billing.for(user).customer()
  const price = (base.fake.store.prices() as any[]).find((candidate) => candidate.lookup_key === 'pro_month').id
  const stripeCustomer = await stripe.customers.create({ email: 'order@example.com' })
  const session = await stripe.checkout.sessions.create({
    mode: 'subscription',
    customer: stripeCustomer.id,
    client_reference_id: String(local.id),
    metadata: { adonis_billing_customer_id: String(local.id), adonis_billing_link: checkoutLinkProof(base.app, local.id, stripeCustomer.id) },
    line_items: [{ price, quantity: 1 }],
    success_url: 'https://a.test/ok',
  })
  base.fake.completeCheckout(session.id)
  const subscriptionId = base.fake.store.subscriptions()[0].id
  const itemId = (base.fake.store.subscriptions()[0] as any).items.data[0].id
  for (const { quantity, ...params } of updates) {
    await stripe.subscriptions.update(subscriptionId, quantity ? { ...params, items: [{ id: itemId, quantity }] } : params)
  }
  await stripe.subscriptions.cancel(subscriptionId)

  const wanted = ['checkout.session.completed', 'customer.subscription.created', 'customer.subscription.updated', 'customer.subscription.deleted']
  const events = base.fake.store.events(...wanted).map((event) => event.id)

  const deliver = async (order: string[]) => {
    for (const id of order) {
      const answer = await base.fake.deliver(`${url}/billing/webhooks/stripe`, id, { secret: SECRET })
      if (answer.status !== 200) throw new Error(`delivery of ${id} answered ${answer.status}: ${answer.body}`)
    }
  }
  const finalState = async () => {
    const subscription = await Subscription.findByOrFail('stripe_subscription_id', subscriptionId)
    const owner = await Customer.findOrFail(subscription.customerId)
    return {
      owner: `${owner.billableType}:${owner.billableId}`,
      ownerStripeId: owner.stripeCustomerId,
      status: subscription.status,
      plan: subscription.plan,
      quantity: subscription.quantity,
      cancelAtPeriodEnd: subscription.cancelAtPeriodEnd,
      endsAt: subscription.endsAt?.toISO() ?? null,
      unlinkedCustomers: (await Customer.query().whereNull('billable_id')).length,
    }
  }
  const reset = async () => {
    const db = base.billing.db()
    await dropAuditGuards(base.db, dialect)
    for (const table of ['billing_subscription_items', 'billing_subscriptions', 'billing_invoices', 'billing_webhook_events', 'billing_audit_logs']) {
      await db.from(table).delete()
    }
    await db.from('billing_audit_head').where('id', 1).update({ hash: '0'.repeat(64), rows: 0 })
    await db.from('billing_customers').whereNull('billable_id').delete()
    await db.from('billing_customers').where('id', local.id).update({ stripe_customer_id: null })
  }
  return { events, deliver, finalState, reset }
}

for (const dialect of DIALECTS) {
  test.group(`webhook ordering [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(120_000))

    test('every delivery order of a short lifecycle ends like the in-order run, owner included', async ({ assert }) => {
      const run = await lifecycle(dialect, [{ quantity: 2 }])
      assert.lengthOf(run.events, 4)
      await run.deliver(run.events)
      const expected = await run.finalState()
      assert.deepEqual(expected, {
        owner: expected.owner,
        ownerStripeId: expected.ownerStripeId,
        status: 'canceled',
        plan: 'pro',
        quantity: 2,
        cancelAtPeriodEnd: false,
        endsAt: expected.endsAt,
        unlinkedCustomers: 0,
      })
      assert.match(expected.owner, /^user:\d+$/)
      assert.isNotNull(expected.endsAt)

      for (const order of permutations(run.events)) {
        await run.reset()
        await run.deliver(order)
        assert.deepEqual(await run.finalState(), expected, `order ${order.join(' → ')}`)
      }
    })

    test('random orders of a long lifecycle, with duplicates, end like the in-order run', async ({ assert }) => {
      const run = await lifecycle(dialect, [
        { quantity: 2 },
        { quantity: 3 },
        { cancel_at_period_end: true },
        { cancel_at_period_end: false },
        { quantity: 5 },
        { metadata: { note: 'vip' } },
      ])
      assert.lengthOf(run.events, 9)
      await run.deliver(run.events)
      const expected = await run.finalState()
      assert.equal(expected.status, 'canceled')
      assert.equal(expected.quantity, 5)

      for (let seed = 1; seed <= 12; seed++) {
        await run.reset()
        const order = shuffled(run.events, seed)
        await run.deliver([...order, ...shuffled(run.events, seed + 100).slice(0, 3)])
        assert.deepEqual(await run.finalState(), expected, `seed ${seed}: ${order.join(' → ')}`)
      }
    })

    test('updates without a cancellation: the newest event wins whatever the order', async ({ assert }) => {
      const base = await setupStripeApp(dialect)
      const sync = base.billing.catalogSync()
      await sync.apply(await sync.plan())
      const { url } = await serve(base.app, () => base.billing.registerRoutes())
      const user = await User.create({ email: 'u@example.com', name: 'U' })
      await base.billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0 })
      const stripe = new Stripe('sk_test_direct', { ...base.fake.clientOptions, maxNetworkRetries: 0 })
      const id = base.fake.store.subscriptions()[0].id
      const itemId = (base.fake.store.subscriptions()[0] as any).items.data[0].id
      for (const quantity of [2, 3, 4, 5]) await stripe.subscriptions.update(id, { items: [{ id: itemId, quantity }] })
      const updates = base.fake.store.events('customer.subscription.updated').map((event) => event.id)
      for (const eventId of [...updates].reverse()) {
        assert.equal((await base.fake.deliver(`${url}/billing/webhooks/stripe`, eventId, { secret: SECRET })).status, 200)
      }
      const subscription = await Subscription.findByOrFail('stripe_subscription_id', id)
      assert.equal(subscription.quantity, 5)
    })

    test('a deleted subscription stays deleted even against an update from the same second', async ({ assert }) => {
      const base = await setupStripeApp(dialect)
      const sync = base.billing.catalogSync()
      await sync.apply(await sync.plan())
      const { url } = await serve(base.app, () => base.billing.registerRoutes())
      const user = await User.create({ email: 't@example.com', name: 'T' })
      await base.billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0 })
      const stripe = new Stripe('sk_test_direct', { ...base.fake.clientOptions, maxNetworkRetries: 0 })
      const id = base.fake.store.subscriptions()[0].id
      await stripe.subscriptions.update(id, { metadata: { note: 'x' } })
      await stripe.subscriptions.cancel(id)
      const [deleted] = base.fake.store.events('customer.subscription.deleted')
      const update = base.fake.store.events('customer.subscription.updated').at(-1)!
      const sameSecond = { ...update, id: `${update.id}_tie`, created: deleted.created }
      const endpoint = `${url}/billing/webhooks/stripe`
      assert.equal((await base.fake.deliver(endpoint, deleted.id, { secret: SECRET })).status, 200)
      assert.equal((await base.fake.deliver(endpoint, sameSecond as any, { secret: SECRET })).status, 200)
      const subscription = await Subscription.findByOrFail('stripe_subscription_id', id)
      assert.equal(subscription.status, 'canceled')
      assert.isTrue(subscription.ended())
    })

    test('with webhooks.refetch, an old event applies the current Stripe state', async ({ assert }) => {
      const { testCatalog } = await import('./fixtures/catalog.ts')
      const base = await setupStripeApp(dialect, { billing: testCatalog({ webhooks: { refetch: true } }) })
      const sync = base.billing.catalogSync()
      await sync.apply(await sync.plan())
      const { url } = await serve(base.app, () => base.billing.registerRoutes())
      const user = await User.create({ email: 'r@example.com', name: 'R' })
      await base.billing.for(user).stripeCustomerId()
      const stripe = new Stripe('sk_test_direct', { ...base.fake.clientOptions, maxNetworkRetries: 0 })
      const customer = base.fake.store.customers()[0].id
      const price = (base.fake.store.prices() as any[]).find((candidate) => candidate.lookup_key === 'pro_month').id
      const created = await stripe.subscriptions.create({ customer, items: [{ price }], trial_period_days: 5 })
      await stripe.subscriptions.update(created.id, { cancel_at_period_end: true })
      const [createdEvent] = base.fake.store.events('customer.subscription.created')
      const before = base.fake.requestsTo('GET', `/v1/subscriptions/${created.id}`).length
      assert.equal((await base.fake.deliver(`${url}/billing/webhooks/stripe`, createdEvent.id, { secret: SECRET })).status, 200)
      assert.equal(base.fake.requestsTo('GET', `/v1/subscriptions/${created.id}`).length, before + 1)
      const subscription = await Subscription.findByOrFail('stripe_subscription_id', created.id)
      assert.isTrue(subscription.cancelAtPeriodEnd)
      assert.isTrue(subscription.onGracePeriod())
    })
  })
}
