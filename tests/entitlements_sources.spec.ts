import { test } from '@japa/runner'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { serve } from './http.ts'
import { testCatalog } from './fixtures/catalog.ts'
import { User } from './fixtures/user.ts'
import Customer from '../src/models/customer.ts'

for (const dialect of DIALECTS) {
  test.group(`Stripe Entitlements as the source [${dialect}]`, () => {
    test('booleans follow Stripe: the list API on a miss, then the summary webhook', async ({ assert }) => {
      const world = await setupStripeApp(dialect, { billing: testCatalog({ entitlements: { source: 'stripe' } }) })
      const sync = world.billing.catalogSync()
      await sync.apply(await sync.plan())
      const { url } = await serve(world.app, () => world.billing.registerRoutes())
      const user = await User.create({ email: 's@example.com', name: null })
      const scope = world.billing.for(user)
      await scope.subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0 })
      const customer = await scope.customer()
      assert.isNull(customer.stripeEntitlements)

      world.billing.entitlementCache.clear()
      const before = world.fake.requestsTo('GET', '/v1/entitlements/active_entitlements').length
      assert.equal(await scope.check('sso'), 'granted')
      assert.equal(world.fake.requestsTo('GET', '/v1/entitlements/active_entitlements').length, before + 1)
      assert.deepEqual((await Customer.findOrFail(customer.id)).stripeEntitlements, ['api_calls', 'seats', 'sso'])
      assert.deepEqual((await scope.features()).features, { sso: true, seats: 10, api_calls: 10000 })

      /**
       * Stripe drops the entitlements when the subscription ends; the summary webhook carries it
       */
      await scope.subscription().cancelNow()
      const summaries = world.fake.store.events('entitlements.active_entitlement_summary.updated')
      const latest = summaries.at(-1)!
      assert.deepEqual((latest.data.object as any).entitlements.data, [])
      const answer = await world.fake.deliver(`${url}/billing/webhooks/stripe`, latest.id, { secret: 'whsec_test_secret' })
      assert.equal(answer.status, 200, answer.body)
      assert.deepEqual((await Customer.findOrFail(customer.id)).stripeEntitlements, [])
      assert.equal(await scope.check('sso'), 'no_plan')
    })

    test('an unknown entitlements.source fails boot', async ({ assert }) => {
      const { normalizeConfig } = await import('../src/catalog/normalize_config.ts')
      assert.throws(() => normalizeConfig(testCatalog({ entitlements: { source: 'ldap' as any } })), /entitlements\.source/)
    })
  })
}

test.group('bouncer ability', () => {
  test('entitledAbility allows with the plan, denies 402 without a subscription and 403 outside the plan', async ({ assert }) => {
    const { setupApp } = await import('./helpers.ts')
    const { default: Subscription } = await import('../src/models/subscription.ts')
    const { Bouncer } = await import('@adonisjs/bouncer')
    const { entitledAbility } = await import('../src/entitlements/bouncer_ability.ts')
    const { billing } = await setupApp('sqlite')
    const useSso = entitledAbility('sso')

    const pro = await User.create({ email: 'b1@example.com', name: null })
    await Subscription.create({ customerId: (await billing.for(pro).customer()).id, name: 'default', plan: 'pro', status: 'active', cancelAtPeriodEnd: false })
    const seatsOnly = await User.create({ email: 'b2@example.com', name: null })
    await Subscription.create({ customerId: (await billing.for(seatsOnly).customer()).id, name: 'default', plan: 'extra_seats', status: 'active', cancelAtPeriodEnd: false })
    const nobody = await User.create({ email: 'b3@example.com', name: null })

    assert.isTrue(await new Bouncer(pro).allows(useSso))
    const notIncluded = await new Bouncer(seatsOnly).authorize(useSso).catch((error) => error)
    assert.equal(notIncluded.response.status, 403)
    const noPlan = await new Bouncer(nobody).authorize(useSso).catch((error) => error)
    assert.equal(noPlan.response.status, 402)
    assert.include(noPlan.response.message, 'needs a subscription')
    assert.isFalse(await new Bouncer(nobody).allows(useSso))
  })
})
