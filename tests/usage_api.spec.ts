import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { DIALECTS, setupApp } from './helpers.ts'
import { headerAuth, serve } from './http.ts'
import { User } from './fixtures/user.ts'
import UsageEvent from '../src/models/usage_event.ts'

/**
 * Stand-in for a host access-token guard on the service endpoint.
 */
async function serviceToken(ctx: HttpContext, next: NextFn) {
  if (ctx.request.header('authorization') !== 'Bearer svc-token') return ctx.response.unauthorized({ error: 'no token' })
  return next()
}

for (const dialect of DIALECTS) {
  test.group(`usage HTTP API [${dialect}]`, () => {
    test('POST /billing/v1/usage: JSON array and NDJSON, per-item results, all or nothing, guarded', async ({ assert }) => {
      const { app, billing } = await setupApp(dialect)
      const { url } = await serve(app, () => billing.registerRoutes({ me: (route) => route.use(headerAuth), usage: { use: (route) => route.use(serviceToken), authorize: 'service' } }))
      const user = await User.create({ email: 'svc@example.com', name: null })
      const customer = await billing.for(user).customer()
      const post = (body: string, contentType = 'application/json', token = 'Bearer svc-token') =>
        fetch(`${url}/billing/v1/usage`, { method: 'POST', headers: { 'content-type': contentType, accept: 'application/json', authorization: token }, body })

      const json = await post(
        JSON.stringify([
          { customerId: customer.id, meter: 'api_calls', quantity: 2, idempotencyKey: 'a' },
          { billableType: 'user', billableId: String(user.id), meter: 'api_calls', quantity: 3, idempotencyKey: 'b' },
          { customerId: customer.id, meter: 'api_calls', quantity: 2, idempotencyKey: 'a' },
        ])
      )
      assert.equal(json.status, 200)
      assert.deepEqual(((await json.json()) as any).results, [
        { index: 0, status: 'recorded' },
        { index: 1, status: 'recorded' },
        { index: 2, status: 'duplicate' },
      ])

      const ndjson = await post(
        [{ customerId: customer.id, meter: 'api_calls', quantity: 1, idempotencyKey: 'c', timestamp: DateTime.utc().minus({ hours: 1 }).toISO() }, { customerId: customer.id, meter: 'api_calls', quantity: 2, idempotencyKey: 'a' }]
          .map((line) => JSON.stringify(line))
          .join('\n'),
        'application/x-ndjson'
      )
      assert.equal(ndjson.status, 200, await ndjson.clone().text())
      assert.deepEqual(((await ndjson.json()) as any).results.map((result: any) => result.status), ['recorded', 'duplicate'])

      const bad = await post(JSON.stringify([{ customerId: customer.id, meter: 'api_calls', quantity: 1, idempotencyKey: 'd' }, { customerId: customer.id, meter: 'api_calls', quantity: -5, idempotencyKey: 'e' }]))
      assert.equal(bad.status, 422)
      assert.equal(bad.headers.get('content-type'), 'application/problem+json; charset=utf-8')
      assert.deepEqual(((await bad.json()) as any).errors, [{ index: 1, field: 'quantity', message: 'must not be negative' }])

      assert.equal((await post('[]', 'application/json', 'Bearer wrong')).status, 401)
      const tooMany = Array.from({ length: 1001 }, (_, index) => ({ customerId: customer.id, meter: 'api_calls', quantity: 1, idempotencyKey: `n${index}` }))
      assert.equal((await post(JSON.stringify(tooMany))).status, 413)
      assert.equal((await post(JSON.stringify({ not: 'an array' }))).status, 422)
      assert.lengthOf(await UsageEvent.all(), 3)

      const me = await fetch(`${url}/billing/v1/me/usage?meter=api_calls&granularity=day`, { headers: { 'x-test-user': String(user.id), accept: 'application/json' } })
      assert.equal(me.status, 200)
      const usage = (await me.json()) as any
      assert.strictEqual(usage.total, '6', 'exact decimal text')
      assert.equal(usage.series.reduce((sum: number, bucket: any) => sum + bucket.events, 0), 3)
      const badMeter = await fetch(`${url}/billing/v1/me/usage?meter=nope`, { headers: { 'x-test-user': String(user.id), accept: 'application/json' } })
      assert.equal(badMeter.status, 422)
    })

    test('without a guard for it, the service usage endpoint is not registered', async ({ assert }) => {
      const { app, billing } = await setupApp(dialect)
      const { url } = await serve(app, () => billing.registerRoutes())
      const answer = await fetch(`${url}/billing/v1/usage`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: '[]' })
      assert.equal(answer.status, 404)
    })
  })
}
