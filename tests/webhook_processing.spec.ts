import { test } from '@japa/runner'
import Stripe from 'stripe'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { serve } from './http.ts'
import { User } from './fixtures/user.ts'
import WebhookEvent from '../src/models/webhook_event.ts'
import AuditLog from '../src/models/audit_log.ts'
import Subscription from '../src/models/subscription.ts'
import Customer from '../src/models/customer.ts'
import Invoice from '../src/models/invoice.ts'
import { checkoutLinkProof } from '../src/customers/checkout_link.ts'
import { DateTime } from 'luxon'
import { toDbDateTime } from '../src/models/columns.ts'

const SECRET = 'whsec_test_secret'

async function world(dialect: 'sqlite' | 'pg') {
  const base = await setupStripeApp(dialect)
  const sync = base.billing.catalogSync()
  await sync.apply(await sync.plan())
  const { url } = await serve(base.app, () => base.billing.registerRoutes({ admin: { authorize: (ctx) => ctx.request.header('x-admin') === 'yes' } }))
  const endpoint = `${url}/billing/webhooks/stripe`
  const stripe = new Stripe('sk_test_direct', { ...base.fake.clientOptions, maxNetworkRetries: 0 })
  const deliver = (eventId: string) => base.fake.deliver(endpoint, eventId, { secret: SECRET })
  const priceId = (lookupKey: string) => (base.fake.store.prices() as any[]).find((price) => price.lookup_key === lookupKey).id as string
  return { ...base, url, endpoint, stripe, deliver, priceId }
}

for (const dialect of DIALECTS) {
  test.group(`webhook processing [${dialect}]`, () => {
    test('a subscription created elsewhere reaches the local customer through its events, exactly once', async ({ assert }) => {
      const w = await world(dialect)
      const user = await User.create({ email: 'a@example.com', name: 'A' })
      const stripeCustomerId = await w.billing.for(user).stripeCustomerId()
      await w.stripe.paymentMethods.attach('pm_card_visa', { customer: stripeCustomerId })
      const created = await w.stripe.subscriptions.create({
        customer: stripeCustomerId,
        items: [{ price: w.priceId('pro_month'), quantity: 3 }],
        default_payment_method: 'pm_card_visa',
      })
      const events = w.fake.store.events('customer.subscription.created', 'invoice.paid')
      const emitted: string[] = []
      w.app.container.make('emitter').then((emitter) => emitter.onAny((name) => emitted.push(String(name))))
      for (const event of events) {
        const answer = await w.deliver(event.id)
        assert.equal(answer.status, 200, answer.body)
      }
      const subscription = await Subscription.findByOrFail('stripe_subscription_id', created.id)
      const customer = await w.billing.for(user).customer()
      assert.equal(subscription.customerId, customer.id)
      assert.equal(subscription.plan, 'pro')
      assert.equal(subscription.status, 'active')
      assert.equal(subscription.quantity, 3)
      const invoice = await Invoice.query().where('customer_id', customer.id).firstOrFail()
      assert.equal(invoice.status, 'paid')
      assert.strictEqual(invoice.amountPaid, 8700)

      const auditBefore = (await AuditLog.all()).length
      for (const event of events) assert.equal(JSON.parse((await w.deliver(event.id)).body).outcome, 'duplicate')
      assert.equal((await AuditLog.all()).length, auditBefore)
      const webhookAudit = await AuditLog.query().where('actor_type', 'webhook')
      assert.sameMembers(webhookAudit.map((row) => row.action), ['subscription.created', 'invoice.paid'])
      assert.sameMembers(webhookAudit.map((row) => row.eventId!), events.map((event) => event.id))
      assert.includeMembers(emitted, ['billing:subscription.created', 'billing:invoice.paid'])
    })

    test('customer.updated mirrors a linked customer once, audited with before/after; an older update is skipped', async ({ assert }) => {
      const w = await world(dialect)
      const user = await User.create({ email: 'm@example.com', name: 'M' })
      const stripeCustomerId = await w.billing.for(user).stripeCustomerId()
      const attached = await w.stripe.paymentMethods.attach('pm_card_visa', { customer: stripeCustomerId })
      await w.stripe.customers.update(stripeCustomerId, { name: 'Old name', email: 'old@example.com', tax_exempt: 'reverse', balance: -500 })
      await w.stripe.customers.update(stripeCustomerId, { name: 'New name', email: 'new@example.com', invoice_settings: { default_payment_method: attached.id } })
      const [first, second] = w.fake.store.events('customer.updated').slice(-2)
      assert.isBelow(first.created, second.created + 1)
      /**
       * Stripe's `created` is in seconds: make the order explicit
       */
      ;(second as any).created = first.created + 1
      const emitted: string[] = []
      w.app.container.make('emitter').then((emitter) => emitter.onAny((name) => emitted.push(String(name))))

      assert.equal((await w.deliver(second.id)).status, 200)
      const customer = await Customer.findOrFail((await w.billing.for(user).customer()).id)
      assert.equal(customer.name, 'New name')
      assert.equal(customer.email, 'new@example.com')
      assert.equal(customer.taxExempt, 'reverse')
      assert.strictEqual(customer.balance, -500)
      assert.equal(customer.defaultPaymentMethod, attached.id)
      assert.equal(customer.stripeUpdatedAt!.toSeconds(), second.created)
      const audit = await AuditLog.query().where('action', 'customer.updated').firstOrFail()
      assert.equal(audit.eventId, second.id)
      assert.equal(audit.customerId, customer.id)
      const [revealed] = await w.billing.audit.reveal([audit])
      assert.deepEqual(revealed.before, { email: 'm@example.com', name: 'M', tax_exempt: null, balance: 0, currency: 'usd', default_payment_method: null, tax_ids: null })
      assert.deepEqual(revealed.after, { email: 'new@example.com', name: 'New name', tax_exempt: 'reverse', balance: -500, currency: 'usd', default_payment_method: attached.id, tax_ids: null })
      assert.include(emitted, 'billing:customer.updated')

      /**
       * The older event arrives late: processed, nothing changes, no audit row
       */
      const late = await w.deliver(first.id)
      assert.equal(JSON.parse(late.body).outcome, 'processed')
      await customer.refresh()
      assert.equal(customer.name, 'New name')
      assert.equal(customer.email, 'new@example.com')
      assert.lengthOf(await AuditLog.query().where('action', 'customer.updated'), 1)
      assert.isTrue((await w.billing.audit.verify()).ok)
    })

    test('a handler that throws halfway leaves no partial rows, marks the event failed and answers 500; the retry succeeds', async ({ assert }) => {
      const w = await world(dialect)
      const user = await User.create({ email: 'b@example.com', name: 'B' })
      const stripeCustomerId = await w.billing.for(user).stripeCustomerId()
      await w.stripe.subscriptions.create({ customer: stripeCustomerId, items: [{ price: w.priceId('pro_month') }], trial_period_days: 14 })
      const [event] = w.fake.store.events('customer.subscription.created')
      let failing = true
      w.billing.webhooks.on('customer.subscription.created', async () => {
        if (failing) throw new Error('host handler exploded')
      })
      const auditBefore = (await AuditLog.all()).length

      const failed = await w.deliver(event.id)
      assert.equal(failed.status, 500)
      assert.equal(JSON.parse(failed.body).code, 'E_BILLING_WEBHOOK_PROCESSING_FAILED')
      assert.lengthOf(await Subscription.all(), 0)
      assert.equal((await AuditLog.all()).length, auditBefore)
      const stored = await WebhookEvent.findByOrFail('event_id', event.id)
      assert.equal(stored.status, 'failed')
      assert.equal(stored.attempts, 1)
      assert.include(stored.error!, 'host handler exploded')
      assert.equal((await w.billing.webhookStatus()).failuresByType[0].type, 'customer.subscription.created')

      failing = false
      const retried = await w.deliver(event.id)
      assert.equal(retried.status, 200)
      assert.equal(JSON.parse(retried.body).outcome, 'processed')
      assert.lengthOf(await Subscription.all(), 1)
      const after = await WebhookEvent.findByOrFail('event_id', event.id)
      assert.equal(after.status, 'processed')
      assert.equal(after.attempts, 2)
      assert.isNull(after.error)
    })

    test('unknown event types are stored and ignored; host handlers can take any type', async ({ assert }) => {
      const w = await world(dialect)
      const user = await User.create({ email: 'c@example.com', name: 'C' })
      await w.billing.for(user).stripeCustomerId()
      const productEvent = w.fake.store.events('product.created')[0]
      assert.equal(JSON.parse((await w.deliver(productEvent.id)).body).outcome, 'ignored')
      assert.equal((await WebhookEvent.findByOrFail('event_id', productEvent.id)).status, 'ignored')

      const seen: string[] = []
      w.billing.webhooks.on('price.created', async ({ event }) => {
        seen.push(event.id)
      })
      const priceEvent = w.fake.store.events('price.created')[0]
      assert.equal(JSON.parse((await w.deliver(priceEvent.id)).body).outcome, 'processed')
      assert.deepEqual(seen, [priceEvent.id])
    })

    test('a checkout session the package did not make links nothing, whatever its client_reference_id (#10.17)', async ({ assert }) => {
      const w = await world(dialect)
      const victim = await User.create({ email: 'victim@example.com', name: 'V' })
      const local = await w.billing.for(victim).customer()
      /**
       * A Payment Link lets the buyer set client_reference_id: the attacker names the victim's customer
       */
      const attacker = await w.stripe.customers.create({ email: 'attacker@example.com' })
      const forged = await w.stripe.checkout.sessions.create({
        mode: 'subscription',
        customer: attacker.id,
        client_reference_id: String(local.id),
        metadata: { adonis_billing_customer_id: String(local.id), adonis_billing_link: 'f'.repeat(64) },
        line_items: [{ price: w.priceId('pro_month'), quantity: 1 }],
        success_url: 'https://a.test/ok',
      })
      w.fake.completeCheckout(forged.id)
      const completed = w.fake.store.events('checkout.session.completed')[0]
      assert.equal((await w.deliver(completed.id)).status, 200)
      await local.refresh()
      assert.isNull(local.stripeCustomerId)
      const recorded = await Customer.findByOrFail('stripe_customer_id', attacker.id)
      assert.isNull(recorded.billableId)
      assert.equal(await AuditLog.query().where('action', 'customer.linked').count('* as total').first().then((row: any) => Number(row.$extras.total)), 0)
    })

    test('events about an unknown Stripe customer attach to an unlinked customer until checkout links it', async ({ assert }) => {
      const w = await world(dialect)
      const user = await User.create({ email: 'd@example.com', name: 'D' })
      const local = await w.billing.for(user).customer()
      /**
       * A Stripe customer and subscription whose events arrive before the checkout session that
       * links them: a session as the package makes it (signed link in its metadata).
       */
      const stripeCustomer = await w.stripe.customers.create({ email: 'd@example.com' })
      const session = await w.stripe.checkout.sessions.create({
        mode: 'subscription',
        customer: stripeCustomer.id,
        client_reference_id: String(local.id),
        metadata: { adonis_billing_customer_id: String(local.id), adonis_billing_link: checkoutLinkProof(w.app, local.id, stripeCustomer.id) },
        line_items: [{ price: w.priceId('pro_month'), quantity: 1 }],
        success_url: 'https://a.test/ok',
      })
      w.fake.completeCheckout(session.id)
      const created = w.fake.store.events('customer.subscription.created')[0]
      const completed = w.fake.store.events('checkout.session.completed')[0]

      assert.equal((await w.deliver(created.id)).status, 200)
      const unlinked = await Customer.findByOrFail('stripe_customer_id', stripeCustomer.id)
      assert.isNull(unlinked.billableId)
      const subscription = await Subscription.findByOrFail('stripe_subscription_id', (created.data.object as any).id)
      assert.equal(subscription.customerId, unlinked.id)
      assert.equal(await w.billing.for(user).check('sso'), 'no_plan')
      /**
       * A detail change mirrored onto the unlinked customer: its personal data is audited under it
       */
      await w.stripe.customers.update(stripeCustomer.id, { name: 'Dee Unlinked' })
      assert.equal((await w.deliver(w.fake.store.events('customer.updated').at(-1)!.id)).status, 200)
      assert.isAbove(Number((await w.db.connection().from('billing_audit_personal_data').where('customer_id', unlinked.id).count('* as total'))[0].total), 0)

      assert.equal((await w.deliver(completed.id)).status, 200)
      await local.refresh()
      assert.equal(local.stripeCustomerId, stripeCustomer.id)
      await subscription.refresh()
      assert.equal(subscription.customerId, local.id)
      assert.isNull(await Customer.find(unlinked.id))
      assert.equal(await w.billing.for(user).check('sso'), 'granted')
      const link = await AuditLog.query().where('action', 'customer.linked').firstOrFail()
      assert.equal(link.customerId, local.id)
      assert.equal(link.after!.merged_unlinked_customer, unlinked.id)
      /**
       * Its personal data follows it: erasing the linked customer leaves none behind
       */
      assert.lengthOf(await w.db.connection().from('billing_audit_personal_data').where('customer_id', unlinked.id), 0)
      await w.billing.audit.erasePersonalData(local.id)
      assert.notInclude(JSON.stringify(await w.db.connection().from('billing_audit_personal_data').select('*')), 'Dee Unlinked')

      /**
       * Each event's transaction wrote several audit rows (batched with the processed mark on
       * PostgreSQL): they joined the chain in the order they were recorded, and the ids announced
       * after commit are the stored ones
       */
      const webhookRows = await AuditLog.query().where('actor_type', 'webhook').orderBy('seq')
      const firstEventRows = webhookRows.filter((row) => row.eventId === created.id).map((row) => row.action)
      assert.deepEqual(firstEventRows.slice(0, 1), ['customer.recorded_unlinked'])
      assert.isAbove(firstEventRows.length, 1)
      assert.deepEqual(
        webhookRows.map((row) => row.id),
        [...webhookRows.map((row) => row.id)].sort((a, b) => a - b)
      )
      assert.deepEqual(await w.billing.audit.verify(), { ok: true, checked: await AuditLog.query().count('* as total').then((rows) => Number(rows[0].$extras.total)) })
    })

    test('a delivery meeting another delivery of the same event in progress is not acknowledged', async ({ assert }) => {
      const w = await world(dialect)
      const user = await User.create({ email: 'slow@example.com', name: 'Slow' })
      const stripeCustomerId = await w.billing.for(user).stripeCustomerId()
      await w.stripe.customers.update(stripeCustomerId, { name: 'Slow down' })
      const [event] = w.fake.store.events('customer.updated').slice(-1)
      let release!: () => void
      const released = new Promise<void>((resolve) => (release = resolve))
      let entered = 0
      w.billing.webhooks.on('customer.updated', async () => {
        entered++
        if (entered === 1) await released
      })
      const first = w.deliver(event.id)
      while (entered === 0) await new Promise((resolve) => setTimeout(resolve, 5))
      if (dialect === 'pg') {
        /**
         * The event row is locked by the first delivery: 409 + Retry-After, so Stripe retries
         */
        const second = await w.deliver(event.id)
        assert.equal(second.status, 409, second.body)
        assert.equal(JSON.parse(second.body).code, 'E_BILLING_WEBHOOK_IN_PROGRESS')
        assert.equal(second.headers['retry-after'], '5')
        release()
      } else {
        /**
         * SQLite has one writer: the second delivery waits for the first, then finds it done
         */
        const second = w.deliver(event.id)
        await new Promise((resolve) => setTimeout(resolve, 50))
        release()
        assert.equal(JSON.parse((await second).body).outcome, 'duplicate')
      }
      assert.equal(JSON.parse((await first).body).outcome, 'processed')
      assert.equal(JSON.parse((await w.deliver(event.id)).body).outcome, 'duplicate')
      assert.equal(entered, 1)
    })

    test('audit rows written by a webhook are announced after commit with their stored ids', async ({ assert }) => {
      const w = await world(dialect)
      const user = await User.create({ email: 'ids@example.com', name: 'Ids' })
      const stripeCustomerId = await w.billing.for(user).stripeCustomerId()
      await w.stripe.customers.update(stripeCustomerId, { name: 'Renamed' })
      const announced: Array<{ id: number; action: string }> = []
      const emitter = await w.app.container.make('emitter')
      emitter.on('billing:audit.recorded' as any, (payload: any) => announced.push({ id: payload.id, action: payload.action }))
      const [event] = w.fake.store.events('customer.updated').slice(-1)
      assert.equal((await w.deliver(event.id)).status, 200)
      const stored = await AuditLog.query().where('event_id', event.id)
      assert.lengthOf(stored, 1)
      assert.deepEqual(announced, [{ id: stored[0].id, action: 'customer.updated' }])
      assert.isNumber(stored[0].seq)
    })

    test('billing:webhooks:replay, status and sweep', async ({ assert }) => {
      const w = await world(dialect)
      const ace = await w.app.container.make('ace')
      ace.ui.switchMode('raw')
      const { default: Replay } = await import('../commands/billing_webhooks_replay.ts')
      const { default: Status } = await import('../commands/billing_webhooks_status.ts')
      const { default: Sweep } = await import('../commands/billing_webhooks_sweep.ts')

      /**
       * Deliveries to an endpoint that is down: Stripe marks them undelivered.
       */
      w.fake.addWebhookEndpoint('http://127.0.0.1:9/down', SECRET)
      const user = await User.create({ email: 'e@example.com', name: 'E' })
      const stripeCustomerId = await w.billing.for(user).stripeCustomerId()
      await w.stripe.subscriptions.create({ customer: stripeCustomerId, items: [{ price: w.priceId('pro_month') }], trial_period_days: 7 })
      await w.fake.flushWebhooks()
      assert.lengthOf(await Subscription.all(), 0)

      const sweep = await ace.create(Sweep, [])
      await sweep.exec()
      assert.equal(sweep.exitCode, 0)
      const subscription = await Subscription.query().firstOrFail()
      assert.equal(subscription.status, 'trialing')
      const swept = await WebhookEvent.all()
      assert.isAbove(swept.length, 1)
      assert.isTrue(swept.every((row) => row.status === 'processed' || row.status === 'ignored'))

      const again = await ace.create(Sweep, [])
      await again.exec()
      assert.lengthOf(await WebhookEvent.all(), swept.length)
      /**
       * Each sweep writes its own audit row naming the operator (#10.15); the second found the same
       * events already processed
       */
      const { userInfo } = await import('node:os')
      const sweeps = await AuditLog.query().where('action', 'webhooks.swept').orderBy('id')
      assert.lengthOf(sweeps, 2)
      assert.deepInclude(sweeps[0].toJSON(), { actorType: 'cli', actorId: userInfo().username })
      assert.sameMembers(Object.keys((sweeps[0].metadata as any).events), swept.map((row) => row.eventId))
      assert.deepEqual((sweeps[1].after as any).outcomes, { duplicate: swept.length })

      /**
       * A failing event, then replayed once the cause is gone
       */
      let failing = true
      w.billing.webhooks.on('customer.subscription.updated', async () => {
        if (failing) throw new Error('temporarily broken')
      })
      await w.stripe.subscriptions.update(subscription.stripeSubscriptionId!, { cancel_at_period_end: true })
      const updated = w.fake.store.events('customer.subscription.updated').at(-1)!
      const failed = await w.deliver(updated.id)
      assert.equal(failed.status, 500)
      assert.notInclude(failed.body, 'temporarily broken')

      const unhealthy = await ace.create(Status, ['--json'])
      await unhealthy.exec()
      assert.equal(unhealthy.exitCode, 1)
      const report = JSON.parse(unhealthy.ui.logger.getLogs().at(-1)!.message)
      assert.isFalse(report.healthy)
      assert.equal(report.counts.failed, 1)
      assert.equal(report.failuresByType[0].type, 'customer.subscription.updated')
      assert.include(report.failuresByType[0].lastError, 'temporarily broken')

      assert.equal((await fetch(`${w.url}/billing/webhooks/health`)).status, 403)
      const health = await fetch(`${w.url}/billing/webhooks/health`, { headers: { 'x-admin': 'yes' } })
      assert.equal(health.status, 503)
      const body = await health.json()
      assert.equal(body.counts.failed, 1)
      assert.include(JSON.stringify(body), 'temporarily broken')

      failing = false
      const replay = await ace.create(Replay, ['--failed'])
      await replay.exec()
      assert.equal(replay.exitCode, 0)
      const replayed = await AuditLog.query().where('action', 'webhooks.replayed').firstOrFail()
      assert.deepInclude(replayed.toJSON(), { actorType: 'cli', subjectType: 'webhook_events', subjectId: updated.id })
      assert.deepEqual(replayed.metadata, { request: { id: null, failed: true, since: null }, events: { [updated.id]: 'processed' } })
      await subscription.refresh()
      assert.isTrue(subscription.cancelAtPeriodEnd)
      const healthy = await ace.create(Status, [])
      await healthy.exec()
      assert.equal(healthy.exitCode, 0)
      assert.equal((await fetch(`${w.url}/billing/webhooks/health`, { headers: { 'x-admin': 'yes' } })).status, 200)

      const one = await ace.create(Replay, ['--id', updated.id])
      await one.exec()
      assert.equal(one.exitCode, 0)
      const missing = await ace.create(Replay, ['--id', 'evt_missing'])
      await missing.exec()
      assert.equal(missing.exitCode, 1)
      const nothing = await ace.create(Replay, [])
      await nothing.exec()
      assert.equal(nothing.exitCode, 1)
      const badDate = await ace.create(Replay, ['--since', 'yesterday'])
      await badDate.exec()
      assert.equal(badDate.exitCode, 1)
    })
    test('billing:webhooks:prune drops old processed payloads, keeps ids, type, status and timings, audited; pruned events are not replayed (#10.19)', async ({ assert }) => {
      const w = await world(dialect)
      const ace = await w.app.container.make('ace')
      ace.ui.switchMode('raw')
      const { default: Prune } = await import('../commands/billing_webhooks_prune.ts')
      const { default: Replay } = await import('../commands/billing_webhooks_replay.ts')
      const user = await User.create({ email: 'gdpr@example.com', name: 'Grace Personal' })
      const stripeCustomerId = await w.billing.for(user).stripeCustomerId()
      await w.stripe.customers.update(stripeCustomerId, { name: 'Grace Personal', phone: '+15550100' })
      const updated = w.fake.store.events('customer.updated').at(-1)!
      assert.equal((await w.deliver(updated.id)).status, 200)
      const failing = w.fake.store.events('customer.created').at(-1)!
      w.billing.webhooks.on('customer.created', async () => {
        throw new Error('broken')
      })
      assert.equal((await w.deliver(failing.id)).status, 500)
      await w.db.from('billing_webhook_events').update({ received_at: toDbDateTime(DateTime.utc().minus({ days: 40 })) })

      const none = await ace.create(Prune, [])
      await none.exec()
      assert.equal(none.exitCode, 1)
      const bad = await ace.create(Prune, ['--days', 'soon'])
      await bad.exec()
      assert.equal(bad.exitCode, 1)

      const prune = await ace.create(Prune, ['--days', '30'])
      await prune.exec()
      assert.equal(prune.exitCode, 0)
      const processed = await WebhookEvent.findByOrFail('event_id', updated.id)
      assert.deepEqual(processed.payload, { id: updated.id, type: 'customer.updated', redacted: true })
      assert.equal(processed.status, 'processed')
      assert.isNotNull(processed.processedAt)
      assert.notInclude(JSON.stringify(processed.payload), 'Grace')
      const kept = await WebhookEvent.findByOrFail('event_id', failing.id)
      assert.equal(kept.status, 'failed')
      assert.include(JSON.stringify(kept.payload), 'gdpr@example.com')
      const audit = await AuditLog.query().where('action', 'webhooks.pruned').firstOrFail()
      assert.equal(audit.after!.pruned, 1)
      assert.equal(audit.actorType, 'cli')

      const again = await ace.create(Prune, ['--days', '30'])
      await again.exec()
      assert.include(again.ui.logger.getLogs().at(-1)!.message, '0 webhook payload(s)')
      const replay = await ace.create(Replay, ['--id', updated.id])
      await replay.exec()
      assert.equal(replay.exitCode, 1)
      assert.include(replay.ui.logger.getLogs().map((log: any) => log.message).join('\n'), 'pruned')
    })
  })
}
