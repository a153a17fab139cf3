import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { DIALECTS, setupApp } from './helpers.ts'
import { headerAuth, serve } from './http.ts'
import { User } from './fixtures/user.ts'
import Subscription, { type SubscriptionStatus } from '../src/models/subscription.ts'
import type { BillingManager } from '../src/billing_manager.ts'

async function subscribe(billing: BillingManager, user: User, plan: string, status: SubscriptionStatus, extra: Partial<Subscription> = {}) {
  const customer = await billing.for(user).customer()
  return Subscription.create({ customerId: customer.id, name: plan, plan, status, cancelAtPeriodEnd: false, ...extra })
}

for (const dialect of DIALECTS) {
  test.group(`entitled middleware [${dialect}]`, () => {
    test('answers 401, 402, 403 as problem+json and lets entitled users through', async ({ assert }) => {
      const { app, billing } = await setupApp(dialect)
      const { url } = await serve(app, (router) => {
        const middleware = router.named({ entitled: () => import('../src/middleware/entitled_middleware.ts') })
        router.get('/reports', async () => ({ reports: true })).use([headerAuth, middleware.entitled({ feature: 'sso' })])
        router.get('/seats', async () => ({ seats: true })).use([headerAuth, middleware.entitled({ feature: 'seats' })])
      })
      const get = (path: string, user?: User) =>
        fetch(`${url}${path}`, { headers: { accept: 'application/json', ...(user ? { 'x-test-user': String(user.id) } : {}) } })

      const anonymous = await get('/reports')
      assert.equal(anonymous.status, 401)
      assert.equal(anonymous.headers.get('content-type'), 'application/problem+json; charset=utf-8')
      assert.equal((await anonymous.json()).code, 'E_BILLING_UNAUTHENTICATED')

      const newcomer = await User.create({ email: 'new@example.com', name: null })
      const noPlan = await get('/reports', newcomer)
      assert.equal(noPlan.status, 402)
      const problem = await noPlan.json()
      assert.equal(problem.code, 'E_BILLING_PAYMENT_REQUIRED')
      assert.equal(problem.status, 402)
      assert.include(problem.detail, 'sso')

      const seatsOnly = await User.create({ email: 'addon@example.com', name: null })
      await subscribe(billing, seatsOnly, 'extra_seats', 'active')
      const notIncluded = await get('/reports', seatsOnly)
      assert.equal(notIncluded.status, 403)
      assert.equal((await notIncluded.json()).code, 'E_BILLING_FEATURE_NOT_INCLUDED')
      assert.equal((await get('/seats', seatsOnly)).status, 200)

      const pro = await User.create({ email: 'pro@example.com', name: null })
      await subscribe(billing, pro, 'pro', 'trialing')
      const allowed = await get('/reports', pro)
      assert.equal(allowed.status, 200)
      assert.deepEqual(await allowed.json(), { reports: true })
    })

    test('browsers are redirected to the configured upgrade page; APIs get problem+json', async ({ assert }) => {
      const { testCatalog } = await import('./fixtures/catalog.ts')
      const { app } = await setupApp(dialect, { billing: testCatalog({ entitlements: { redirectTo: '/billing/upgrade' } }) })
      const { url } = await serve(app, (router) => {
        const middleware = router.named({ entitled: () => import('../src/middleware/entitled_middleware.ts') })
        router.get('/reports', async () => ({ reports: true })).use([headerAuth, middleware.entitled({ feature: 'sso' })])
      })
      const user = await User.create({ email: 'browser@example.com', name: null })
      const browser = await fetch(`${url}/reports`, { redirect: 'manual', headers: { accept: 'text/html,application/xhtml+xml', 'x-test-user': String(user.id) } })
      assert.equal(browser.status, 302)
      assert.equal(browser.headers.get('location'), '/billing/upgrade?feature=sso&code=E_BILLING_PAYMENT_REQUIRED')
      const api = await fetch(`${url}/reports`, { redirect: 'manual', headers: { accept: 'application/json', 'x-test-user': String(user.id) } })
      assert.equal(api.status, 402)
    })

    test('status policy: past_due within grace, incomplete, canceled and ended subscriptions', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const cases: Array<[SubscriptionStatus, Partial<Subscription>, 'granted' | 'no_plan']> = [
        ['active', {}, 'granted'],
        ['trialing', {}, 'granted'],
        ['past_due', { pastDueSince: DateTime.utc().minus({ days: 6 }) }, 'granted'],
        ['past_due', { pastDueSince: DateTime.utc().minus({ days: 8 }) }, 'no_plan'],
        ['incomplete', {}, 'no_plan'],
        ['incomplete_expired', {}, 'no_plan'],
        ['unpaid', {}, 'no_plan'],
        ['paused', {}, 'no_plan'],
        ['canceled', {}, 'no_plan'],
        ['active', { endsAt: DateTime.utc().minus({ minutes: 1 }) }, 'no_plan'],
        ['active', { endsAt: DateTime.utc().plus({ days: 3 }), cancelAtPeriodEnd: true }, 'granted'],
      ]
      for (const [index, [status, extra, expected]] of cases.entries()) {
        const user = await User.create({ email: `u${index}@example.com`, name: null })
        await subscribe(billing, user, 'pro', status, extra)
        assert.equal(await billing.for(user).check('sso'), expected, `${status} ${JSON.stringify(extra)}`)
      }
    })

    test('limits from several subscriptions add up', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'team@example.com', name: null })
      await subscribe(billing, user, 'pro', 'active')
      await subscribe(billing, user, 'extra_seats', 'active')
      const { live, features } = await billing.for(user).features()
      assert.isTrue(live)
      assert.deepEqual(features, { sso: true, seats: 15, api_calls: 10000 })
    })
  })
}
