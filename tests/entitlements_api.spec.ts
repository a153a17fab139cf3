import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { DIALECTS, setupApp } from './helpers.ts'
import { headerAuth, serve } from './http.ts'
import { testCatalog } from './fixtures/catalog.ts'
import { User } from './fixtures/user.ts'
import Subscription from '../src/models/subscription.ts'
import UsageEvent from '../src/models/usage_event.ts'

/**
 * A quota of `quota` API calls on an active Pro subscription whose period is known.
 */
async function quotaWorld(dialect: 'sqlite' | 'pg', quota: number) {
  const catalog = testCatalog()
  catalog.plans!.pro.features = { sso: true, seats: 10, api_calls: quota }
  const world = await setupApp(dialect, { billing: catalog })
  const user = await User.create({ email: 'q@example.com', name: null })
  const customer = await world.billing.for(user).customer()
  const periodStart = DateTime.utc().minus({ days: 3 }).startOf('second')
  const periodEnd = periodStart.plus({ days: 30 })
  await Subscription.create({
    customerId: customer.id,
    name: 'default',
    plan: 'pro',
    status: 'active',
    cancelAtPeriodEnd: false,
    currentPeriodStart: periodStart,
    currentPeriodEnd: periodEnd,
  })
  const { url } = await serve(world.app, async (router: any) => {
    const middleware = router.named({ entitled: () => import('../src/middleware/entitled_middleware.ts') })
    router.post('/api/run', async () => ({ ran: true })).use([headerAuth, middleware.entitled({ feature: 'api_calls', consume: 1 })])
    router.get('/either', async () => ({ ok: true })).use([headerAuth, middleware.entitled({ anyOf: ['seats', 'sso'] })])
    await world.billing.registerRoutes({ me: (route: any) => route.use(headerAuth) })
  })
  return { ...world, user, customer, url, periodEnd }
}

for (const dialect of DIALECTS) {
  test.group(`entitlements API [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(60_000))

    test('entitlements() reports limits with usage from the host counter and the meter rollups', async ({ assert }) => {
      const world = await quotaWorld(dialect, 1000)
      world.billing.countUsage('seats', async ({ customer }) => (customer.id === world.customer.id ? 3 : 0))
      await world.billing.for(world.user).consume('api_calls', 40)
      await world.billing.for(world.user).consume('api_calls', 2)
      const snapshot = await world.billing.for(world.user).entitlements()
      assert.deepEqual(snapshot, {
        live: true,
        features: {
          sso: true,
          seats: { limit: 10, used: 3, remaining: 7 },
          api_calls: { limit: 1000, used: 42, remaining: 958, resetsAt: world.periodEnd.toISO() },
        },
      })
      assert.equal(await world.billing.for(world.user).limit('seats'), 10)
      assert.equal(await world.billing.for(world.user).remaining('api_calls'), 958)
      await world.billing.for(world.user).assert('sso')
      assert.throws(() => world.billing.countUsage('sso', () => 1), /only limit features/)
    })

    test('GET /billing/v1/me/entitlements says what the middleware enforces', async ({ assert }) => {
      const world = await quotaWorld(dialect, 2)
      const headers = { 'x-test-user': String(world.user.id), accept: 'application/json' }
      const me = async () => (await (await fetch(`${world.url}/billing/v1/me/entitlements`, { headers })).json()) as any

      assert.deepEqual((await me()).features.api_calls, { limit: 2, used: 0, remaining: 2, resetsAt: world.periodEnd.toISO() })
      for (const expected of [1, 0]) {
        const answer = await fetch(`${world.url}/api/run`, { method: 'POST', headers })
        assert.equal(answer.status, 200)
        assert.equal((await me()).features.api_calls.remaining, expected)
      }
      const spent = await fetch(`${world.url}/api/run`, { method: 'POST', headers })
      assert.equal(spent.status, 429)
      assert.equal(spent.headers.get('content-type'), 'application/problem+json; charset=utf-8')
      const retryAfter = Number(spent.headers.get('retry-after'))
      assert.closeTo(retryAfter, world.periodEnd.diff(DateTime.utc(), 'seconds').seconds, 5)
      const problem = (await spent.json()) as any
      assert.equal(problem.code, 'E_BILLING_QUOTA_EXCEEDED')
      assert.deepInclude(problem, { limit: 2, used: 2, resets_at: world.periodEnd.toISO() })
      assert.equal((await me()).features.api_calls.remaining, 0)

      assert.equal((await fetch(`${world.url}/either`, { headers })).status, 200)
      const anonymous = await fetch(`${world.url}/billing/v1/me/entitlements`, { headers: { accept: 'application/json' } })
      assert.equal(anonymous.status, 401)

      /**
       * A grant raises the quota, and the cache is invalidated on commit
       */
      await world.billing.for(world.user).grant('api_calls', 1)
      assert.equal((await me()).features.api_calls.remaining, 1)
      assert.equal((await fetch(`${world.url}/api/run`, { method: 'POST', headers })).status, 200)
    })

    test('200 concurrent requests consuming a quota of 100 let exactly 100 through', async ({ assert }) => {
      const world = await quotaWorld(dialect, 100)
      const headers = { 'x-test-user': String(world.user.id), accept: 'application/json' }
      const answers = await Promise.all(Array.from({ length: 200 }, () => fetch(`${world.url}/api/run`, { method: 'POST', headers })))
      const statuses = answers.map((answer) => answer.status)
      assert.equal(statuses.filter((status) => status === 200).length, 100)
      assert.equal(statuses.filter((status) => status === 429).length, 100)
      assert.equal((await UsageEvent.query().where('customer_id', world.customer.id)).length, 100)
      assert.equal(await world.billing.for(world.user).remaining('api_calls'), 0)
    })

    test('a client-sent X-Request-Id never makes a consuming request free (#10.1)', async ({ assert }) => {
      const world = await quotaWorld(dialect, 3)
      const answers = []
      for (let index = 0; index < 6; index++) {
        answers.push(
          await fetch(`${world.url}/api/run`, { method: 'POST', headers: { accept: 'application/json', 'x-test-user': String(world.user.id), 'x-request-id': 'same-id-every-time' } })
        )
      }
      assert.deepEqual(
        answers.map((answer) => answer.status),
        [200, 200, 200, 429, 429, 429]
      )
      assert.equal(await world.billing.for(world.user).remaining('api_calls'), 0)
      assert.lengthOf(await UsageEvent.query().where('customer_id', world.customer.id), 3)
    })

    test('a consumption with an idempotency key already spent is refused (409), neither counted nor let through', async ({ assert }) => {
      const world = await quotaWorld(dialect, 10)
      await world.billing.for(world.user).consume('api_calls', 1, { idempotencyKey: 'req-1' })
      await assert.rejects(() => world.billing.for(world.user).consume('api_calls', 1, { idempotencyKey: 'req-1' }), /already used/)
      assert.equal(await world.billing.for(world.user).remaining('api_calls'), 9)
      await assert.rejects(() => world.billing.for(world.user).consume('api_calls', 1, { idempotencyKey: 'bad\u0000key' }), /NUL/)
      await assert.rejects(() => world.billing.for(world.user).consume('sso', 1), /not a metered feature/)
      await assert.rejects(() => world.billing.for(world.user).consume('api_calls', 0), /positive integer/)
    })
  })
}
