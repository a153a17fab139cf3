import { test } from '@japa/runner'
import Stripe from 'stripe'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { serve } from './http.ts'
import { User } from './fixtures/user.ts'
import WebhookEvent from '../src/models/webhook_event.ts'
import AuditLog from '../src/models/audit_log.ts'
import Customer from '../src/models/customer.ts'

const SECRET = 'whsec_test_secret'

for (const dialect of DIALECTS) {
  test.group(`webhook concurrency [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(120_000))

    test('200 deliveries of 50 distinct events, each sent 4 times concurrently: 50 processed, one change and one audit row each', async ({ assert }) => {
      const base = await setupStripeApp(dialect)
      const { url } = await serve(base.app, () => base.billing.registerRoutes())
      const endpoint = `${url}/billing/webhooks/stripe`
      const stripe = new Stripe('sk_test_direct', { ...base.fake.clientOptions, maxNetworkRetries: 0 })

      /**
       * 50 linked customers, each renamed once in Stripe: 50 distinct customer.updated events
       */
      const stripeIds: string[] = []
      for (let index = 0; index < 50; index++) {
        const user = await User.create({ email: `c${index}@example.com`, name: `Customer ${index}` })
        stripeIds.push(await base.billing.for(user).stripeCustomerId())
      }
      for (const [index, id] of stripeIds.entries()) await stripe.customers.update(id, { name: `Renamed ${index}` })
      const events = base.fake.store.events('customer.updated')
      assert.lengthOf(events, 50)
      const auditBefore = (await AuditLog.all()).length

      /**
       * Each event 4 times, interleaved, all 200 in flight at once
       */
      let inFlight = 0
      let maxInFlight = 0
      const deliveries = [0, 1, 2, 3].flatMap(() => events.map((event) => event.id))
      const answers = await Promise.all(
        deliveries.map(async (id) => {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          try {
            return await base.fake.deliver(endpoint, id, { secret: SECRET })
          } finally {
            inFlight--
          }
        })
      )
      assert.isAtLeast(maxInFlight, 16)
      /**
       * 200 processed or duplicate; 409 (retry later) for a delivery that met another one of the same
       * event still in progress, never a 2xx that could hide a failure of that other delivery
       */
      const outcomes = answers.map((answer) => {
        if (answer.status === 409) {
          assert.equal(JSON.parse(answer.body).code, 'E_BILLING_WEBHOOK_IN_PROGRESS')
          assert.equal(answer.headers['retry-after'], '5')
          return 'in_progress'
        }
        assert.equal(answer.status, 200, answer.body)
        return JSON.parse(answer.body).outcome as string
      })
      assert.equal(outcomes.filter((outcome) => outcome === 'processed').length, 50)
      assert.equal(outcomes.filter((outcome) => outcome !== 'processed').length, 150)
      assert.isTrue(outcomes.every((outcome) => ['processed', 'duplicate', 'in_progress'].includes(outcome)))
      /**
       * Stripe's retry of a 409 finds the event done
       */
      for (const event of events) assert.equal(JSON.parse((await base.fake.deliver(endpoint, event.id, { secret: SECRET })).body).outcome, 'duplicate')

      const stored = await WebhookEvent.all()
      assert.lengthOf(stored, 50)
      assert.isTrue(stored.every((row) => row.status === 'processed' && row.attempts === 1))
      const audit = await AuditLog.query().where('actor_type', 'webhook')
      assert.lengthOf(audit, 50)
      assert.lengthOf(new Set(audit.map((row) => row.eventId)), 50)
      assert.equal((await AuditLog.all()).length, auditBefore + 50)
      const customers = await Customer.query().whereIn('stripe_customer_id', stripeIds)
      assert.isTrue(customers.every((customer) => customer.name!.startsWith('Renamed ')))
      assert.deepEqual(await base.billing.audit.verify(), { ok: true, checked: auditBefore + 50 })
    })
  })
}
