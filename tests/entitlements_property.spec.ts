import { test } from '@japa/runner'
import Stripe from 'stripe'
import { DateTime } from 'luxon'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { headerAuth, serve } from './http.ts'
import { User } from './fixtures/user.ts'
import Subscription from '../src/models/subscription.ts'
import EntitlementGrant from '../src/models/entitlement_grant.ts'
import Customer from '../src/models/customer.ts'

const SECRET = 'whsec_test_secret'

function rng(seed: number) {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The plain recomputation the resolver must agree with, straight from the tables: plans of active or
 * trialing subscriptions (past_due within 7 days; nothing else under the default policy), summed,
 * plus grants in force.
 */
async function recompute(customerId: number) {
  const now = DateTime.utc()
  const plans: Record<string, Record<string, boolean | number>> = {
    pro: { sso: true, seats: 10, api_calls: 10000 },
    extra_seats: { seats: 5 },
  }
  const features: Record<string, boolean | number | 'unlimited'> = {}
  const rows = await Subscription.query().where('customer_id', customerId)
  let live = false
  for (const row of rows) {
    const ended = row.endsAt !== null && row.endsAt <= now
    const granting = !ended && (row.status === 'active' || row.status === 'trialing' || (row.status === 'past_due' && row.pastDueSince! > now.minus({ days: 7 })))
    if (!granting) continue
    live = true
    for (const [feature, value] of Object.entries(plans[row.plan] ?? {})) {
      features[feature] = typeof value === 'boolean' ? features[feature] === true || value : ((features[feature] as number) ?? 0) + value
    }
  }
  for (const grant of await EntitlementGrant.query().where('customer_id', customerId).whereNull('revoked_at')) {
    if (grant.startsAt > now || (grant.expiresAt && grant.expiresAt <= now)) continue
    if (grant.value === true) features[grant.feature] = true
    else if (grant.value === 'unlimited' || features[grant.feature] === 'unlimited') features[grant.feature] = 'unlimited'
    else features[grant.feature] = ((features[grant.feature] as number) ?? 0) + (grant.value as number)
  }
  return { live, features }
}

for (const dialect of DIALECTS) {
  test.group(`entitlements property [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(180_000))

    test('random webhook and grant sequences: resolver = recomputation, middleware = /me/entitlements', async ({ assert }) => {
      const world = await setupStripeApp(dialect)
      const sync = world.billing.catalogSync()
      await sync.apply(await sync.plan())
      const { url } = await serve(world.app, async (router: any) => {
        const middleware = router.named({ entitled: () => import('../src/middleware/entitled_middleware.ts') })
        for (const feature of ['sso', 'seats', 'api_calls']) {
          router.get(`/gate/${feature}`, async () => ({ ok: true })).use([headerAuth, middleware.entitled({ feature })])
        }
        await world.billing.registerRoutes({ me: (route: any) => route.use(headerAuth) })
      })
      const stripe = new Stripe('sk_test_direct', { ...world.fake.clientOptions, maxNetworkRetries: 0 })
      const user = await User.create({ email: 'p@example.com', name: null })
      const scope = world.billing.for(user)
      const stripeCustomerId = await scope.stripeCustomerId()
      const customer = await scope.customer()
      await stripe.paymentMethods.attach('pm_card_visa', { customer: stripeCustomerId })
      await stripe.customers.update(stripeCustomerId, { invoice_settings: { default_payment_method: 'pm_card_visa' } })
      const price = (key: string) => (world.fake.store.prices() as any[]).find((candidate) => candidate.lookup_key === key).id
      const headers = { 'x-test-user': String(user.id), accept: 'application/json' }
      let delivered = world.fake.store.events().length

      /**
       * Deliver every event Stripe emitted since the last step, in a shuffled order
       */
      const deliverNew = async (random: () => number) => {
        const events = world.fake.store.events().slice(delivered)
        delivered += events.length
        const order = events.map((event) => event.id).sort(() => random() - 0.5)
        for (const id of order) {
          const answer = await world.fake.deliver(`${url}/billing/webhooks/stripe`, id, { secret: SECRET })
          assert.equal(answer.status, 200, answer.body)
        }
      }

      for (const seed of [1, 2, 3]) {
        const random = rng(seed)
        for (let step = 0; step < 12; step++) {
          const live = (await stripe.subscriptions.list({ customer: stripeCustomerId, status: 'all' })).data.filter((sub) => sub.status !== 'canceled')
          const choice = Math.floor(random() * 6)
          let did = ''
          if (choice === 0 || live.length === 0) {
            const plan = random() < 0.6 ? 'pro_month' : 'extra_seats_month'
            await stripe.subscriptions.create({ customer: stripeCustomerId, items: [{ price: price(plan) }], ...(random() < 0.3 ? { trial_period_days: 7 } : {}) })
            did = `subscribe ${plan}`
          } else if (choice === 1) {
            const sub = live[Math.floor(random() * live.length)]
            await stripe.subscriptions.cancel(sub.id)
            did = `cancel ${sub.id}`
          } else if (choice === 2) {
            const sub = live[Math.floor(random() * live.length)]
            await stripe.subscriptions.update(sub.id, { cancel_at_period_end: !sub.cancel_at_period_end })
            did = `toggle cancel_at_period_end ${sub.id}`
          } else if (choice === 3) {
            const feature = random() < 0.5 ? 'sso' : 'seats'
            await scope.grant(feature, feature === 'sso' ? true : 3, random() < 0.3 ? { expiresAt: DateTime.utc().plus({ days: 1 }) } : {})
            did = `grant ${feature}`
          } else if (choice === 4) {
            const feature = random() < 0.5 ? 'sso' : 'seats'
            await scope.revoke(feature)
            did = `revoke ${feature}`
          } else {
            const sub = live[Math.floor(random() * live.length)]
            const item = sub.items.data.find((candidate) => candidate.price.recurring?.usage_type !== 'metered')!
            await stripe.subscriptions.update(sub.id, { items: [{ id: item.id, quantity: 1 + Math.floor(random() * 3) }] })
            did = `quantity ${sub.id}`
          }
          await deliverNew(random)

          const label = `seed ${seed} step ${step}: ${did}`
          const expected = await recompute(customer.id)
          const actual = await scope.features()
          assert.deepEqual(actual, expected, label)

          const me = (await (await fetch(`${url}/billing/v1/me/entitlements`, { headers })).json()) as any
          for (const feature of ['sso', 'seats', 'api_calls']) {
            const entitlement = me.features[feature]
            const granted = typeof entitlement === 'boolean' ? entitlement : entitlement.limit === null || entitlement.limit > 0
            const gate = await fetch(`${url}/gate/${feature}`, { headers })
            assert.equal(gate.status === 200, granted, `${label}: ${feature} gate ${gate.status} vs /me ${JSON.stringify(entitlement)}`)
            if (!granted) assert.equal(gate.status, expected.live ? 403 : 402, `${label}: ${feature}`)
          }
        }
      }
      assert.isAbove((await Subscription.query().where('customer_id', customer.id)).length, 0)
      assert.equal((await Customer.query().whereNull('billable_id')).length, 0)
    })
  })
}
