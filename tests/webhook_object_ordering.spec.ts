import { test } from '@japa/runner'
import Stripe from 'stripe'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { serve } from './http.ts'
import { User } from './fixtures/user.ts'
import Customer from '../src/models/customer.ts'
import { checkoutLinkProof } from '../src/customers/checkout_link.ts'
import { dropAuditGuards } from './audit_helpers.ts'

const SECRET = 'whsec_test_secret'

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items]
  return items.flatMap((item, index) => permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [item, ...rest]))
}

/**
 * A linked customer, the app serving its webhook route, the official client on the fake, and a way
 * to deliver events (recorded ones by id, or payloads in Stripe's event shape) and to forget what
 * the deliveries did between orders.
 */
async function objectWorld(dialect: 'sqlite' | 'pg') {
  const base = await setupStripeApp(dialect)
  const { url } = await serve(base.app, () => base.billing.registerRoutes())
  const stripe = new Stripe('sk_test_direct', { ...base.fake.clientOptions, maxNetworkRetries: 0 })
  const user = await User.create({ email: 'objects@example.com', name: 'Objects' })
  const stripeCustomerId = await base.billing.for(user).stripeCustomerId()
  const local = await base.billing.for(user).customer()
  const deliver = async (events: Array<string | Record<string, any>>) => {
    for (const event of events) {
      const answer = await base.fake.deliver(`${url}/billing/webhooks/stripe`, event as any, { secret: SECRET })
      if (answer.status !== 200) throw new Error(`delivery answered ${answer.status}: ${answer.body}`)
    }
  }
  /**
   * Forgets what deliveries did: the webhook log, the objects' watermarks, the customer's mirrored lists
   */
  const reset = async () => {
    const db = base.billing.db()
    await db.from('billing_webhook_events').delete()
    await db.from('billing_stripe_objects').delete()
    await db.from('billing_customers').where('id', local.id).update({ tax_ids: null, stripe_entitlements: null })
  }
  const event = (type: string, object: Record<string, any>, created: number) => ({
    id: `evt_${type.replace(/\W/g, '_')}_${created}`,
    object: 'event',
    api_version: '2025-03-31.basil',
    created,
    type,
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    data: { object },
  })
  return { ...base, url, stripe, user, local, stripeCustomerId, deliver, reset, event }
}

for (const dialect of DIALECTS) {
  test.group(`webhook order independence per object [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(120_000))

    test('a deleted tax id stays deleted in every delivery order of created, updated and deleted', async ({ assert }) => {
      const w = await objectWorld(dialect)
      const t = Math.floor(Date.now() / 1000) - 600
      w.fake.setNow(t + 30)
      const gone = await w.stripe.customers.createTaxId(w.stripeCustomerId, { type: 'eu_vat', value: 'DE123456789' })
      const kept = await w.stripe.customers.createTaxId(w.stripeCustomerId, { type: 'eu_vat', value: 'FR12345678901' })
      w.fake.setNow(t + 50)
      await w.stripe.customers.deleteTaxId(w.stripeCustomerId, gone.id)
      const [created, keptCreated] = w.fake.store.events('customer.tax_id.created').sort((a, b) => (a.data.object as any).value.localeCompare((b.data.object as any).value))
      const [deleted] = w.fake.store.events('customer.tax_id.deleted')
      /**
       * Stripe's `updated` (a verification result) from between the two, in its event shape
       */
      const updated = w.event('customer.tax_id.updated', { ...(created.data.object as any), verification: { status: 'verified', verified_address: null, verified_name: null } }, t + 40)

      const lifecycle = [created.id, updated, deleted.id] as const
      for (const order of permutations([...lifecycle])) {
        await w.reset()
        await w.deliver([keptCreated.id, ...order])
        const customer = await Customer.findOrFail(w.local.id)
        assert.deepEqual(customer.taxIds, [{ id: kept.id, type: 'eu_vat', value: 'FR12345678901' }], `order ${order.map((e) => (typeof e === 'string' ? e : e.type)).join(' → ')}`)
      }
    })

    test('an older entitlement summary never overwrites a newer one, in both orders', async ({ assert }) => {
      const w = await objectWorld(dialect)
      const t = Math.floor(Date.now() / 1000) - 600
      const summary = (keys: string[]) => ({
        object: 'entitlements.active_entitlement_summary',
        customer: w.stripeCustomerId,
        livemode: false,
        entitlements: {
          object: 'list',
          has_more: false,
          url: `/v1/entitlements/active_entitlements`,
          data: keys.map((key, index) => ({ id: `ent_${index}`, object: 'entitlements.active_entitlement', feature: `feat_${key}`, livemode: false, lookup_key: key })),
        },
      })
      const older = w.event('entitlements.active_entitlement_summary.updated', summary(['journeys']), t)
      const newer = w.event('entitlements.active_entitlement_summary.updated', summary(['journeys', 'sso']), t + 30)
      for (const order of permutations([older, newer])) {
        await w.reset()
        await w.deliver(order)
        const customer = await Customer.findOrFail(w.local.id)
        assert.deepEqual(customer.stripeEntitlements, ['journeys', 'sso'], `order ${order.map((e) => e.created).join(' → ')}`)
      }
    })

    test('a deleted draft invoice is gone in every delivery order of created, updated and deleted', async ({ assert }) => {
      const w = await objectWorld(dialect)
      const t = Math.floor(Date.now() / 1000) - 600
      const invoice = (status: string, extra: Record<string, any> = {}) => ({
        id: 'in_draft_1',
        object: 'invoice',
        customer: w.stripeCustomerId,
        status,
        currency: 'usd',
        subtotal: 500,
        total: 500,
        amount_due: 500,
        amount_paid: 0,
        amount_remaining: 500,
        livemode: false,
        created: t,
        lines: { object: 'list', data: [], has_more: false, url: '/v1/invoices/in_draft_1/lines' },
        metadata: {},
        ...extra,
      })
      const lifecycle = [
        w.event('invoice.created', invoice('draft'), t),
        w.event('invoice.updated', invoice('draft', { description: 'edited' }), t + 5),
        w.event('invoice.deleted', invoice('draft'), t + 10),
      ]
      for (const order of permutations(lifecycle)) {
        await w.reset()
        await w.billing.db().from('billing_invoices').delete()
        await w.deliver(order)
        assert.deepEqual(await w.billing.db().from('billing_invoices').where('stripe_invoice_id', 'in_draft_1').select('status'), [], `order ${order.map((e) => e.type).join(' → ')}`)
      }
    })

    test('an invoice delivered before its subscription is linked to it when the subscription arrives', async ({ assert }) => {
      const w = await objectWorld(dialect)
      const sync = w.billing.catalogSync()
      await sync.apply(await sync.plan())
      const price = (w.fake.store.prices() as any[]).find((candidate) => candidate.lookup_key === 'pro_month').id
      await w.stripe.paymentMethods.attach('pm_card_visa', { customer: w.stripeCustomerId })
      const created = await w.stripe.subscriptions.create({ customer: w.stripeCustomerId, items: [{ price }], default_payment_method: 'pm_card_visa' })
      const [subscriptionCreated] = w.fake.store.events('customer.subscription.created')
      const [invoicePaid] = w.fake.store.events('invoice.paid')
      for (const order of permutations([subscriptionCreated.id, invoicePaid.id])) {
        await w.reset()
        for (const table of ['billing_invoices', 'billing_subscription_items', 'billing_subscriptions']) await w.billing.db().from(table).delete()
        await w.deliver(order)
        const subscription = await w.billing.db().from('billing_subscriptions').where('stripe_subscription_id', created.id).first()
        const invoice = await w.billing.db().from('billing_invoices').where('stripe_invoice_id', (invoicePaid.data.object as any).id).first()
        assert.equal(invoice?.subscription_id, subscription?.id, `order ${order.join(' → ')}`)
        assert.isNotNull(invoice?.subscription_id)
      }
    })

    test('what Stripe said about a customer before it was linked is kept: the same customer in every order of created, updated and the checkout link', async ({ assert }) => {
      const w = await objectWorld(dialect)
      const sync = w.billing.catalogSync()
      await sync.apply(await sync.plan())
      const buyer = await User.create({ email: 'buyer@example.com', name: 'Buyer' })
      const local = await w.billing.for(buyer).customer()
      const t = Math.floor(Date.now() / 1000) - 600
      w.fake.setNow(t)
      const stripeCustomer = await w.stripe.customers.create({ email: 'stripe-side@example.com', name: 'From Stripe' })
      const price = (w.fake.store.prices() as any[]).find((candidate) => candidate.lookup_key === 'pro_month').id
      const session = await w.stripe.checkout.sessions.create({
        mode: 'subscription',
        customer: stripeCustomer.id,
        metadata: { adonis_billing_customer_id: String(local.id), adonis_billing_link: checkoutLinkProof(w.app, local.id, stripeCustomer.id) },
        line_items: [{ price, quantity: 1 }],
        success_url: 'https://a.test/ok',
      })
      w.fake.setNow(t + 10)
      w.fake.completeCheckout(session.id)
      w.fake.setNow(t + 20)
      await w.stripe.customers.update(stripeCustomer.id, { name: 'Renamed in Stripe', email: 'renamed@example.com' })
      const ids = [
        w.fake.store.events('customer.created').find((event) => (event.data.object as any).id === stripeCustomer.id)!.id,
        w.fake.store.events('checkout.session.completed')[0].id,
        w.fake.store.events('customer.updated').find((event) => (event.data.object as any).id === stripeCustomer.id && (event.data.object as any).name === 'Renamed in Stripe')!.id,
      ]
      const finalState = async () => {
        const customer = await Customer.findOrFail(local.id)
        return {
          stripeCustomerId: customer.stripeCustomerId,
          email: customer.email,
          name: customer.name,
          stripeUpdatedAt: customer.stripeUpdatedAt?.toISO() ?? null,
          unlinked: (await Customer.query().whereNull('billable_id')).length,
        }
      }
      const reset = async () => {
        const db = w.billing.db()
        await w.reset()
        await dropAuditGuards(w.db, dialect)
        for (const table of ['billing_subscription_items', 'billing_subscriptions', 'billing_invoices']) await db.from(table).delete()
        await db.from('billing_customers').whereNull('billable_id').delete()
        await db.from('billing_customers').where('id', local.id).update({ stripe_customer_id: null, email: null, name: null, stripe_updated_at: null, tax_ids: null })
      }
      await reset()
      await w.deliver(ids)
      const expected = await finalState()
      assert.deepInclude(expected, { stripeCustomerId: stripeCustomer.id, email: 'renamed@example.com', name: 'Renamed in Stripe', unlinked: 0 })
      for (const order of permutations(ids)) {
        await reset()
        await w.deliver(order)
        assert.deepEqual(await finalState(), expected, `order ${order.join(' → ')}`)
      }
    })

    test('customer.deleted for a Stripe customer the app does not know creates no customer row', async ({ assert }) => {
      const w = await objectWorld(dialect)
      const before = (await Customer.all()).length
      const deleted = w.event('customer.deleted', { id: 'cus_never_seen', object: 'customer', deleted: true, email: 'x@example.com', metadata: {} }, Math.floor(Date.now() / 1000))
      await w.deliver([deleted])
      assert.equal((await Customer.all()).length, before)
      /**
       * And a later (older) update of that customer does not bring it back
       */
      const updated = w.event('customer.updated', { id: 'cus_never_seen', object: 'customer', email: 'x@example.com', name: null, metadata: {} }, Math.floor(Date.now() / 1000) - 60)
      await w.deliver([updated])
      assert.equal((await Customer.all()).length, before)
    })
  })
}

for (const dialect of DIALECTS) {
  test.group(`webhook object watermarks upgrade [${dialect}]`, () => {
    test('an install made before the watermarks gains billing_stripe_objects, and running it again changes nothing', async ({ assert }) => {
      const { setupApp } = await import('./helpers.ts')
      const world = await setupApp(dialect)
      const schema = () => world.db.connection().schema
      await schema().dropTable('billing_stripe_objects')
      const { MigrationRunner } = await import('@adonisjs/lucid/migration')
      for (let run = 0; run < 2; run++) {
        await world.db.from('adonis_schema').where('name', 'like', '%add_billing_stripe_objects%').delete()
        const runner = new MigrationRunner(world.db, world.app as any, { direction: 'up', connectionName: 'primary', disableLocks: true })
        await runner.run()
        assert.equal(runner.status, 'completed', String(runner.error))
        assert.isTrue(await schema().hasTable('billing_stripe_objects'))
      }
    })
  })
}

for (const dialect of DIALECTS) {
  test.group(`invoice subscription reference upgrade [${dialect}]`, () => {
    test('an install made before gains stripe_subscription_id on invoices, filled from their subscription', async ({ assert }) => {
      const { setupApp } = await import('./helpers.ts')
      const world = await setupApp(dialect)
      const schema = () => world.db.connection().schema
      await schema().alterTable('billing_invoices', (table) => {
        table.dropIndex(['stripe_subscription_id'])
      })
      await schema().alterTable('billing_invoices', (table) => {
        table.dropColumn('stripe_subscription_id')
      })
      const user = await User.create({ email: 'ref@example.com', name: null })
      const customer = await world.billing.for(user).customer()
      const { default: Subscription } = await import('../src/models/subscription.ts')
      const subscription = await Subscription.create({ customerId: customer.id, name: 'default', plan: 'pro', status: 'active', cancelAtPeriodEnd: false, stripeSubscriptionId: 'sub_ref' })
      const { toDbDateTime } = await import('../src/models/columns.ts')
      const { DateTime } = await import('luxon')
      const now = toDbDateTime(DateTime.utc())
      await world.db.table('billing_invoices').insert({ customer_id: customer.id, subscription_id: subscription.id, stripe_invoice_id: 'in_ref', status: 'paid', currency: 'usd', created_at: now, updated_at: now })
      await world.db.from('adonis_schema').where('name', 'like', '%add_billing_invoice_subscription_ref%').delete()
      const { MigrationRunner } = await import('@adonisjs/lucid/migration')
      const runner = new MigrationRunner(world.db, world.app as any, { direction: 'up', connectionName: 'primary', disableLocks: true })
      await runner.run()
      assert.equal(runner.status, 'completed', String(runner.error))
      assert.deepInclude(await world.db.from('billing_invoices').where('stripe_invoice_id', 'in_ref').first(), { stripe_subscription_id: 'sub_ref' })
    })
  })
}
