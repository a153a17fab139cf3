/**
 * Issue #10: the holes a hostile caller found, each over real HTTP on both databases.
 */
import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { randomUUID } from 'node:crypto'
import { DIALECTS, setupApp } from './helpers.ts'
import { headerAuth, serve } from './http.ts'
import { testCatalog } from './fixtures/catalog.ts'
import { User } from './fixtures/user.ts'
import UsageEvent from '../src/models/usage_event.ts'
import AuditLog from '../src/models/audit_log.ts'
import { canonicalJson } from '../src/audit/canonical_json.ts'
import { normalizeConfig } from '../src/catalog/normalize_config.ts'

/**
 * An app serving the usage endpoint behind `headerAuth` with the documented end-user scoping: a
 * user may write usage only onto their own customer.
 */
async function usageWorld(dialect: 'sqlite' | 'pg') {
  const world = await setupApp(dialect)
  const { url } = await serve(world.app, (router: any) => {
    router
      .post('/promo', async (ctx: any) => {
        await world.billing.for(ctx.auth.user).grant('sso', true, { reason: 'promo' })
        return { ok: true }
      })
      .use(headerAuth)
    return world.billing.registerRoutes({
      me: (route) => route.use(headerAuth),
      admin: { use: (route) => route.use(headerAuth), authorize: (ctx) => (ctx as any).auth?.user?.email === 'admin@example.com' },
      usage: {
        use: (route) => route.use(headerAuth),
        authorize: (ctx, customer) => customer.billableType === 'user' && customer.billableId === String((ctx as any).auth?.user?.id),
      },
    })
  })
  const alice = await User.create({ email: 'alice@example.com', name: null })
  const mallory = await User.create({ email: 'mallory@example.com', name: null })
  const aliceCustomer = await world.billing.for(alice).customer()
  const malloryCustomer = await world.billing.for(mallory).customer()
  const post = (user: User, body: string, contentType = 'application/json') =>
    fetch(`${url}/billing/v1/usage`, { method: 'POST', headers: { 'content-type': contentType, accept: 'application/json', 'x-test-user': String(user.id) }, body })
  return { ...world, url, alice, mallory, aliceCustomer, malloryCustomer, post }
}

const record = (customerId: number, key: string, extra: Record<string, unknown> = {}) => ({ customerId, meter: 'api_calls', quantity: 1, idempotencyKey: key, ...extra })

for (const dialect of DIALECTS) {
  test.group(`hardening #10 [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(60_000))

    test('usage writes are scoped by the required authorizer: 403 and nothing stored for another customer; the actor is kept (#10.2)', async ({ assert }) => {
      const w = await usageWorld(dialect)
      const foreign = await w.post(w.mallory, JSON.stringify([record(w.malloryCustomer.id, 'm1'), record(w.aliceCustomer.id, 'steal')]))
      assert.equal(foreign.status, 403)
      assert.equal((await foreign.json()).code, 'E_BILLING_FORBIDDEN')
      const byReference = await w.post(w.mallory, JSON.stringify([{ billableType: 'user', billableId: String(w.alice.id), meter: 'api_calls', quantity: 1, idempotencyKey: 'r' }]))
      assert.equal(byReference.status, 403)
      assert.lengthOf(await UsageEvent.all(), 0)

      const own = await w.post(w.mallory, JSON.stringify([record(w.malloryCustomer.id, 'm1')]))
      assert.equal(own.status, 200)
      const stored = await UsageEvent.query().firstOrFail()
      assert.equal(stored.customerId, w.malloryCustomer.id)
      const row = await w.db.from('billing_usage_events').where('id', stored.id).first()
      assert.equal(row.actor, `user:${w.mallory.id}`)
    })

    test('registering usage or admin routes without an authorizer fails at boot (#10.2, #10.16)', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      await assert.rejects(() => billing.registerRoutes({ usage: ((route: any) => route) as any }), /registerRoutes\.usage/)
      await assert.rejects(() => billing.registerRoutes({ admin: ((route: any) => route) as any }), /registerRoutes\.admin/)
      await assert.rejects(() => billing.registerRoutes({ usage: { authorize: 'anyone' as any } }), /registerRoutes\.usage\.authorize/)
    })

    test('keys that are not well-formed Unicode or hold NUL are refused, not stored as duplicates (#10.4, #10.8)', async ({ assert }) => {
      const w = await usageWorld(dialect)
      const id = w.malloryCustomer.id
      for (const key of ['\ud800', 'a\ud800', 'a\udfff', 'nul\u0000key', 'x'.repeat(256)]) {
        const answer = await w.post(w.mallory, JSON.stringify([record(id, key)]))
        assert.equal(answer.status, 422, key)
        const problem = await answer.json()
        assert.equal(problem.code, 'E_BILLING_INVALID_USAGE')
        assert.equal(problem.errors[0].field, 'idempotencyKey')
      }
      const distinct = await w.post(w.mallory, JSON.stringify([record(id, 'é'), record(id, 'e\u0301')]))
      assert.deepEqual((await distinct.json()).results.map((result: any) => result.status), ['recorded', 'recorded'])
      const nulProperty = await w.post(w.mallory, JSON.stringify([record(id, 'p', { properties: { user: 'a\u0000b' } })]))
      assert.equal(nulProperty.status, 422)
      let deep: any = 'leaf'
      for (let depth = 0; depth < 50; depth++) deep = { deep }
      const nested = await w.post(w.mallory, JSON.stringify([record(id, 'deep', { properties: deep })]) + '\n', 'application/x-ndjson')
      assert.equal(nested.status, 422)
      assert.lengthOf(await UsageEvent.all(), 2)
    })

    test('the same key with a different payload is 409 E_BILLING_IDEMPOTENCY_CONFLICT, the same payload a duplicate (#10.5)', async ({ assert }) => {
      const w = await usageWorld(dialect)
      const id = w.malloryCustomer.id
      assert.equal((await w.post(w.mallory, JSON.stringify([record(id, 'k', { quantity: '2.50' })]))).status, 200)
      const same = await w.post(w.mallory, JSON.stringify([record(id, 'k', { quantity: 2.5 })]))
      assert.deepEqual((await same.json()).results, [{ index: 0, status: 'duplicate' }])
      const changed = await w.post(w.mallory, JSON.stringify([record(id, 'fresh'), record(id, 'k', { quantity: 7 })]))
      assert.equal(changed.status, 409)
      const problem = await changed.json()
      assert.equal(problem.code, 'E_BILLING_IDEMPOTENCY_CONFLICT')
      assert.deepEqual(problem.errors, [{ index: 1, field: 'idempotencyKey', message: 'already used with a different payload' }])
      const inBatch = await w.post(w.mallory, JSON.stringify([record(id, 'twice', { quantity: 1 }), record(id, 'twice', { quantity: 2 })]))
      assert.equal(inBatch.status, 409)
      assert.lengthOf(await UsageEvent.all(), 1)
      const rollup = await w.db.from('billing_usage_rollups').where('customer_id', id).sum('sum as total').first()
      assert.equal(Number(rollup.total), 2.5)
    })

    test('NDJSON is stream-parsed with a line and byte cap (#10.6); batch size is checked before resolving references (#10.8)', async ({ assert }) => {
      const w = await usageWorld(dialect)
      const line = JSON.stringify(record(w.malloryCustomer.id, 'x')) + '\n'
      const tooManyLines = await w.post(w.mallory, line.repeat(1001), 'application/x-ndjson')
      assert.equal(tooManyLines.status, 413)
      /**
       * 64 MiB of one endless line, streamed in chunks: refused once the cap is passed, RSS bounded
       */
      const before = process.memoryUsage().rss
      const chunk = Buffer.alloc(1024 * 1024, 'a')
      let sent = 0
      const body = new ReadableStream({
        pull(controller) {
          if (sent++ >= 64) return controller.close()
          controller.enqueue(chunk)
        },
      })
      const huge = await fetch(`${w.url}/billing/v1/usage`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson', accept: 'application/json', 'x-test-user': String(w.mallory.id) },
        body,
        duplex: 'half',
      } as any).catch((error) => ({ status: 'reset', error }) as any)
      if (huge.status !== 'reset') assert.equal(huge.status, 413)
      /**
       * The server stopped reading at the cap (about 5 MiB): backpressure kept the client from
       * sending the rest. Buffering the body whole (as before) reads all 64 MiB.
       */
      assert.isBelow(sent, 32)
      void before
      const references = Array.from({ length: 40_000 }, (_, index) => ({ billableType: 'user', billableId: String(index), meter: 'api_calls', quantity: 1, idempotencyKey: `r${index}` }))
      const many = await w.post(w.mallory, references.map((item) => JSON.stringify(item)).join('\n'), 'application/x-ndjson')
      assert.equal(many.status, 413)
      assert.equal((await many.json()).code, 'E_BILLING_INVALID_USAGE')
      const overBatch = await w.post(w.mallory, JSON.stringify(references.slice(0, 1001)))
      assert.equal(overBatch.status, 413)
      assert.equal((await overBatch.json()).code, 'E_BILLING_INVALID_USAGE')
      assert.lengthOf(await UsageEvent.all(), 0)
    })

    test('prototype names are never meters or features (#10.7), and canonical JSON hashes a __proto__ key', async ({ assert }) => {
      const w = await usageWorld(dialect)
      for (const meter of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
        const answer = await w.post(w.mallory, JSON.stringify([record(w.malloryCustomer.id, meter, { meter })]))
        assert.equal(answer.status, 422, meter)
        const me = await fetch(`${w.url}/billing/v1/me/usage?meter=${meter}`, { headers: { 'x-test-user': String(w.mallory.id), accept: 'application/json' } })
        assert.equal(me.status, 422, meter)
      }
      await assert.rejects(() => w.billing.for(w.mallory).grant('constructor', true), /feature/)
      assert.notEqual(canonicalJson(JSON.parse('{"__proto__":{"a":1}}')), canonicalJson({}))
      assert.equal(canonicalJson(JSON.parse('{"b":1,"__proto__":2}')), '{"__proto__":2,"b":1}')
    })

    test('an X-Request-Id over 255 characters is capped, not a 500 with SQL (#10.8, #10.15)', async ({ assert }) => {
      const w = await usageWorld(dialect)
      const answer = await fetch(`${w.url}/promo`, { method: 'POST', headers: { accept: 'application/json', 'x-test-user': String(w.mallory.id), 'x-request-id': 'r'.repeat(5000) } })
      assert.equal(answer.status, 200, await answer.clone().text())
      const grant = await AuditLog.query().where('action', 'like', 'entitlement.grant%').firstOrFail()
      assert.lengthOf(grant.requestId!, 255)
      const direct = await w.billing.audit.record({ action: 'test.request_id', requestId: 'nul\u0000\ud800' })
      assert.equal(direct.requestId, 'nul\ufffd')
      const rows = await AuditLog.query().where('action', 'test.request_id')
      assert.lengthOf(rows, 1)
    })

    test('the webhook health route is for admins only; handler errors never reach the webhook caller (#10.16)', async ({ assert }) => {
      const w = await usageWorld(dialect)
      const admin = await User.create({ email: 'admin@example.com', name: null })
      const health = (user?: User) => fetch(`${w.url}/billing/webhooks/health`, { headers: { accept: 'application/json', ...(user ? { 'x-test-user': String(user.id) } : {}) } })
      assert.equal((await health()).status, 403)
      assert.equal((await health(w.mallory)).status, 403)
      assert.equal((await health(admin)).status, 200)
      const unregistered = await setupApp(dialect)
      const { url } = await serve(unregistered.app, () => unregistered.billing.registerRoutes())
      assert.equal((await fetch(`${url}/billing/webhooks/health`)).status, 404)
    })

    test('config: unsigned webhooks need an explicit opt-out, tolerance at most 3600 s, secrets not serialized (#10.18)', async ({ assert }) => {
      assert.throws(() => normalizeConfig(testCatalog({ webhooks: { tolerance: 3601 } })), /at most 3600/)
      const config = normalizeConfig(testCatalog({ stripe: { secretKey: 'sk_test_secret_value', webhookSecret: 'whsec_secret_value' } }))
      assert.equal(config.stripe.secretKey, 'sk_test_secret_value')
      assert.deepEqual(config.stripe.webhookSecrets, ['whsec_secret_value'])
      const text = JSON.stringify(config) + JSON.stringify({ ...config.stripe })
      assert.notInclude(text, 'sk_test_secret_value')
      assert.notInclude(text, 'whsec_secret_value')
      const production = (extra: Record<string, unknown>) =>
        setupApp(dialect, { nodeEnv: 'production', billing: testCatalog(extra as any) })
      await assert.rejects(() => production({ stripe: { secretKey: 'sk_test_x', webhookSecret: 'whsec_x' } }), /test-mode key/)
      await assert.rejects(() => production({ stripe: { secretKey: 'sk_live_x', webhookSecret: 'whsec_x', protocol: 'http', host: 'stripe.internal' } }), /https/)
      await assert.rejects(() => production({ stripe: { secretKey: 'sk_live_x', webhookSecret: 'whsec_x' }, webhooks: { allowUnsigned: true } }), /allowUnsigned/)
    })
  })
}

test.group('hardening #10 | Stripe request limits (#10.20)', () => {
  test('idempotency keys stay within 255 characters and meter-event identifiers within 100, deterministically', async ({ assert }) => {
    const { StripeGateway } = await import('../src/stripe/stripe_gateway.ts')
    const { meterEventIdentifier } = await import('../src/usage/usage_reporter.ts')
    const long = 'k'.repeat(200)
    const key = StripeGateway.idempotencyKey('sync.price.create', long, { lookup_key: long })
    assert.isAtMost(key.length, 255)
    assert.equal(key, StripeGateway.idempotencyKey('sync.price.create', long, { lookup_key: long }))
    assert.notEqual(key, StripeGateway.idempotencyKey('sync.price.create', long + 'x', { lookup_key: long }))
    assert.equal(StripeGateway.idempotencyKey('op', 7, {}).startsWith('adonis-billing:op:7:'), true)
    const identifier = `12:${'m'.repeat(100)}:2026-12-01T10:00:00.000Z:0`
    assert.isAtMost(meterEventIdentifier(identifier).length, 100)
    assert.equal(meterEventIdentifier(identifier), meterEventIdentifier(identifier))
    assert.notEqual(meterEventIdentifier(identifier), meterEventIdentifier(identifier.replace(':0', ':1')))
    assert.equal(meterEventIdentifier('1:api_calls:2026-12-01T10:00:00.000Z:0'), 'adonis-billing:1:api_calls:2026-12-01T10:00:00.000Z:0')
  })
})

for (const dialect of DIALECTS) {
  test.group(`hardening #10 | catalog sync [${dialect}]`, () => {
    test('clearing a plan description reaches Stripe, and the next plan is empty (#10.20)', async ({ assert }) => {
      const { setupStripeApp } = await import('./helpers.ts')
      const catalog = testCatalog()
      catalog.plans!.pro.description = 'For teams'
      const first = await setupStripeApp(dialect, { billing: catalog })
      const sync = first.billing.catalogSync()
      await sync.apply(await sync.plan())
      const cleared = testCatalog()
      delete cleared.plans!.pro.description
      const second = await setupStripeApp(dialect, { billing: cleared, fake: first.fake })
      const resync = second.billing.catalogSync()
      const plan = await resync.plan()
      assert.isTrue(plan.actions.some((action: any) => action.type === 'product.update'))
      await resync.apply(plan)
      const product = (first.fake.store.products() as any[]).find((candidate) => candidate.metadata?.adonis_billing_plan === 'pro')
      assert.isNull(product.description ?? null)
      const again = await second.billing.catalogSync().plan()
      assert.lengthOf(again.actions, 0)
    })
  })
}

for (const dialect of DIALECTS) {
  test.group(`hardening #10 | upgrade migration [${dialect}]`, () => {
    test('an install made before the payload hash gains payload_hash and actor, and records usage afterwards', async ({ assert }) => {
      const world = await setupApp(dialect)
      const schema = () => world.db.connection().schema
      await schema().alterTable('billing_usage_events', (table) => {
        table.dropColumn('payload_hash')
        table.dropColumn('actor')
      })
      assert.isFalse(await schema().hasColumn('billing_usage_events', 'payload_hash'))
      await world.db.from('adonis_schema').where('name', 'like', '%add_billing_usage_payload_hash%').delete()
      const { MigrationRunner } = await import('@adonisjs/lucid/migration')
      const runner = new MigrationRunner(world.db, world.app as any, { direction: 'up', connectionName: 'primary', disableLocks: true })
      await runner.run()
      assert.equal(runner.status, 'completed', String(runner.error))
      assert.isTrue(await schema().hasColumn('billing_usage_events', 'payload_hash'))
      assert.isTrue(await schema().hasColumn('billing_usage_events', 'actor'))
      const user = await User.create({ email: 'upgrade@example.com', name: null })
      const customer = await world.billing.for(user).customer()
      const results = await world.billing.usage.recordMany([{ customerId: customer.id, meter: 'api_calls', quantity: 1, idempotencyKey: 'after-upgrade' }], { actor: 'service' })
      assert.deepEqual(results, [{ index: 0, status: 'recorded' }])
    })
  })
}

for (const dialect of DIALECTS) {
  test.group(`hardening #10 | usage report periods upgrade [${dialect}]`, () => {
    test('an install made before report periods gains period_start and period_end, and plans reports with them', async ({ assert }) => {
      const world = await setupApp(dialect)
      const schema = () => world.db.connection().schema
      await schema().alterTable('billing_usage_reports', (table) => {
        table.dropColumn('period_start')
        table.dropColumn('period_end')
      })
      /**
       * A report made before the upgrade, inside its customer's current subscription period, and one
       * outside any known period
       */
      const user = await User.create({ email: 'periods@example.com', name: null })
      const customer = await world.billing.for(user).customer()
      const { default: Subscription } = await import('../src/models/subscription.ts')
      const { toDbDateTime } = await import('../src/models/columns.ts')
      const start = DateTime.utc().minus({ days: 3 }).startOf('hour').plus({ minutes: 30 })
      await Subscription.create({ customerId: customer.id, name: 'default', plan: 'pro', status: 'active', cancelAtPeriodEnd: false, currentPeriodStart: start, currentPeriodEnd: start.plus({ months: 1 }) })
      const report = (identifier: string, at: DateTime) => ({
        customer_id: customer.id,
        meter: 'api_calls',
        window_start: toDbDateTime(at),
        window_end: toDbDateTime(at.plus({ hours: 1 })),
        quantity: '1',
        identifier,
        status: 'sent',
        attempts: 1,
        created_at: toDbDateTime(at),
        updated_at: toDbDateTime(at),
      })
      await world.db.table('billing_usage_reports').multiInsert([report('inside', start.plus({ hours: 2 }).startOf('hour')), report('before', start.minus({ days: 2 }).startOf('hour'))])
      await world.db.from('adonis_schema').where('name', 'like', '%add_billing_usage_report_periods%').delete()
      const { MigrationRunner } = await import('@adonisjs/lucid/migration')
      const runner = new MigrationRunner(world.db, world.app as any, { direction: 'up', connectionName: 'primary', disableLocks: true })
      await runner.run()
      assert.equal(runner.status, 'completed', String(runner.error))
      assert.isTrue(await schema().hasColumn('billing_usage_reports', 'period_start'))
      assert.isTrue(await schema().hasColumn('billing_usage_reports', 'period_end'))
      const { default: UsageReport } = await import('../src/models/usage_report.ts')
      const rows = await UsageReport.query().orderBy('identifier')
      assert.deepEqual(
        rows.map((row) => [row.identifier, row.periodStart?.toMillis() ?? null, row.periodEnd?.toMillis() ?? null]),
        [
          ['before', null, null],
          ['inside', start.toMillis(), start.plus({ months: 1 }).toMillis()],
        ]
      )
      /**
       * Run again on the upgraded schema: nothing to do
       */
      await world.db.from('adonis_schema').where('name', 'like', '%add_billing_usage_report_periods%').delete()
      const again = new MigrationRunner(world.db, world.app as any, { direction: 'up', connectionName: 'primary', disableLocks: true })
      await again.run()
      assert.equal(again.status, 'completed', String(again.error))
    })
  })
}

test.group('hardening #10.11 | exact quantities upgrade [sqlite]', () => {
  test('an install whose usage columns are floats is rewritten as exact decimal text, drift rounded away', async ({ assert }) => {
    const world = await setupApp('sqlite')
    const user = await User.create({ email: 'floats@example.com', name: null })
    const customer = await world.billing.for(user).customer()
    const hour = DateTime.utc().minus({ hours: 2 }).startOf('hour')
    await world.billing.usage.recordMany([{ customerId: customer.id, meter: 'api_calls', quantity: '0.1', idempotencyKey: 'a', at: hour }])
    /**
     * The columns as the earlier stub made them (knex's SQLite `decimal` is `float`), holding the
     * drifted sum SQLite's float arithmetic produced
     */
    const db = world.db.connection()
    for (const [table, column] of [['billing_usage_events', 'quantity'], ['billing_usage_rollups', 'sum'], ['billing_usage_rollups', 'max'], ['billing_usage_rollups', 'last'], ['billing_usage_reports', 'quantity']]) {
      await db.rawQuery(`alter table ${table} add column ${column}_old float`)
      await db.rawQuery(`update ${table} set ${column}_old = cast(${column} as real)`)
      await db.rawQuery(`alter table ${table} drop column ${column}`)
      await db.rawQuery(`alter table ${table} rename column ${column}_old to ${column}`)
    }
    await db.rawQuery('update billing_usage_rollups set sum = 0.1 + 0.2')
    assert.equal((await db.from('billing_usage_rollups').first()).sum, 0.30000000000000004)
    await db.from('adonis_schema').where('name', 'like', '%make_billing_usage_quantities_exact%').delete()
    const { MigrationRunner } = await import('@adonisjs/lucid/migration')
    const runner = new MigrationRunner(world.db, world.app as any, { direction: 'up', connectionName: 'primary', disableLocks: true })
    await runner.run()
    assert.equal(runner.status, 'completed', String(runner.error))

    const types = async (table: string) => Object.fromEntries(((await db.rawQuery(`pragma table_info(${table})`)) as any[]).map((row) => [row.name, String(row.type).toLowerCase()]))
    assert.include(await types('billing_usage_rollups'), { sum: 'text', max: 'text', last: 'text' })
    assert.include(await types('billing_usage_events'), { quantity: 'text' })
    assert.include(await types('billing_usage_reports'), { quantity: 'text' })
    assert.deepInclude(await db.from('billing_usage_rollups').select('sum', 'max', 'last').first(), { sum: '0.3', max: '0.1', last: '0.1' })
    await world.billing.usage.recordMany([{ customerId: customer.id, meter: 'api_calls', quantity: '0.2', idempotencyKey: 'b', at: hour.plus({ minutes: 1 }) }])
    assert.equal(await world.billing.for(user).usage('api_calls').total(hour, hour.plus({ hours: 1 })), '0.5')
    /**
     * A second run changes nothing
     */
    await db.from('adonis_schema').where('name', 'like', '%make_billing_usage_quantities_exact%').delete()
    const again = new MigrationRunner(world.db, world.app as any, { direction: 'up', connectionName: 'primary', disableLocks: true })
    await again.run()
    assert.equal(again.status, 'completed', String(again.error))
    assert.equal((await db.from('billing_usage_rollups').first()).sum, '0.5')
  })
})

for (const dialect of DIALECTS) {
  test.group(`hardening #10.13 | never sell at a price the catalog does not have [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(60_000))
    const urls = { successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/cancel' }
    const catalogAt = (amount: number) => {
      const catalog = testCatalog()
      catalog.plans!.pro.prices!.month!.amount = amount
      return catalog
    }
    const sync = async (world: { billing: import('../src/billing_manager.ts').BillingManager }) => {
      const catalogSync = world.billing.catalogSync()
      await catalogSync.apply(await catalogSync.plan())
    }
    const sessions = (fake: import('../src/testing/main.ts').StripeFake) => fake.requestsTo('POST', '/v1/checkout/sessions')
    /**
     * What `billing:sync` does in another process deployed with `amount`: a new price takes over the
     * lookup key and the old one is archived (done through the official client: a second app booted
     * in this process would take over the Lucid models)
     */
    const syncElsewhere = async (world: { billing: import('../src/billing_manager.ts').BillingManager }, amount: number) => {
      const stripe = await world.billing.stripe.client()
      const [old] = (await stripe.prices.list({ lookup_keys: ['pro_month'], active: true })).data
      await stripe.prices.create({
        currency: 'usd',
        unit_amount: amount,
        recurring: { interval: 'month', interval_count: 1 },
        product: old.product as string,
        tax_behavior: old.tax_behavior ?? undefined,
        lookup_key: 'pro_month',
        transfer_lookup_key: true,
      })
      await stripe.prices.update(old.id, { active: false })
    }

    test('a server booted with 3900 while Stripe sells 2900 refuses; after billing:sync elsewhere it sells 3900 without a restart', async ({ assert }) => {
      const { setupStripeApp } = await import('./helpers.ts')
      const { PriceMismatchException } = await import('../src/errors.ts')
      const stripeAt2900 = await setupStripeApp(dialect)
      await sync(stripeAt2900)
      const running = await setupStripeApp(dialect, { billing: catalogAt(3900), fake: stripeAt2900.fake })
      const user = await User.create({ email: 'buyer@example.com', name: null })

      const error = await running.billing
        .for(user)
        .checkout('pro', urls)
        .then(() => null, (caught) => caught)
      assert.instanceOf(error, PriceMismatchException)
      assert.equal(error.code, 'E_BILLING_PRICE_MISMATCH')
      assert.match(error.message, /"pro_month".*amount 2900 → 3900.*billing:sync/)
      assert.lengthOf(sessions(running.fake), 0, 'no checkout opened at the old price')
      await assert.rejects(() => running.billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0 }), /not the catalog's/)

      /**
       * Another process, deployed with the new catalog, syncs: the running server needs no restart
       */
      await syncElsewhere(running, 3900)
      const session = await running.billing.for(user).checkout('pro', urls)
      assert.match(session.url, /checkout\.stripe\.com/)
      const [request] = sessions(running.fake)
      const price = running.fake.store.get(request.body.line_items[0].price) as any
      assert.deepInclude(price, { unit_amount: 3900, lookup_key: 'pro_month', active: true })
    })

    test('a cached price archived by billing:sync in another process is dropped: a clear refusal, never Stripe\'s "inactive" 500', async ({ assert }) => {
      const { setupStripeApp } = await import('./helpers.ts')
      const running = await setupStripeApp(dialect)
      await sync(running)
      const user = await User.create({ email: 'buyer@example.com', name: null })
      await running.billing.for(user).checkout('pro', urls)
      assert.lengthOf(sessions(running.fake), 1)

      const next = await User.create({ email: 'next@example.com', name: null })
      /**
       * The host's checkout route, over real HTTP
       */
      const { url } = await serve(running.app, (router) => {
        router.post('/checkout', async (ctx: any) => ctx.response.ok(await running.billing.for(next).checkout('pro', urls)))
      })
      await syncElsewhere(running, 3900)
      const response = await fetch(`${url}/checkout`, { method: 'POST', headers: { accept: 'application/json' } })
      assert.equal(response.status, 503)
      const problem = (await response.json()) as any
      assert.equal(problem.code, 'E_BILLING_PRICE_MISMATCH', JSON.stringify(problem))
      assert.notInclude(JSON.stringify(problem), 'inactive')
      const error = await running.billing
        .for(next)
        .checkout('pro', urls)
        .then(() => null, (caught) => caught)
      assert.equal(error?.code, 'E_BILLING_PRICE_MISMATCH', String(error?.message))
      assert.match(error.message, /amount 3900 → 2900/)
      assert.lengthOf(sessions(running.fake), 2, 'one rejected request with the archived price, then none: the mismatch is known without asking Stripe to sell it')

      /**
       * A server on the catalog Stripe now has sells at once, with the price it resolved fresh
       */
      const current = await setupStripeApp(dialect, { billing: catalogAt(3900), fake: running.fake })
      const buyer = await User.create({ email: 'second@example.com', name: null })
      await current.billing.for(buyer).checkout('pro', urls)
      assert.lengthOf(sessions(running.fake), 3)
      assert.equal((current.fake.store.get(sessions(running.fake)[2].body.line_items[0].price) as any).unit_amount, 3900)
    })

    test('a price moved to another product, or a usage price moved to another meter, is refused at checkout like billing:sync would replace it', async ({ assert }) => {
      const { setupStripeApp } = await import('./helpers.ts')
      const running = await setupStripeApp(dialect)
      await sync(running)
      const user = await User.create({ email: 'buyer@example.com', name: null })
      const stripe = await running.billing.stripe.client()
      const takeOver = async (lookupKey: string, change: (params: any) => Promise<void> | void) => {
        const [old] = (await stripe.prices.list({ lookup_keys: [lookupKey], active: true })).data
        const params: any = {
          currency: old.currency,
          unit_amount: old.unit_amount ?? undefined,
          recurring: { interval: old.recurring!.interval, interval_count: old.recurring!.interval_count, usage_type: old.recurring!.usage_type, meter: old.recurring!.meter ?? undefined },
          product: old.product as string,
          tax_behavior: old.tax_behavior ?? undefined,
          lookup_key: lookupKey,
          transfer_lookup_key: true,
          metadata: old.metadata,
        }
        if (old.billing_scheme === 'tiered') {
          const [full] = (await stripe.prices.list({ lookup_keys: [lookupKey], active: true, expand: ['data.tiers'] })).data
          delete params.unit_amount
          params.billing_scheme = 'tiered'
          params.tiers_mode = full.tiers_mode
          params.tiers = full.tiers!.map((tier) => ({ up_to: tier.up_to ?? 'inf', unit_amount_decimal: tier.unit_amount_decimal ?? undefined, flat_amount: tier.flat_amount ?? undefined }))
        }
        await change(params)
        await stripe.prices.create(params)
        await stripe.prices.update(old.id, { active: false })
      }
      const refusal = () =>
        running.billing
          .for(user)
          .checkout('pro', urls)
          .then(() => null, (caught) => caught)

      /**
       * Same amount, but on a product that is not the plan's
       */
      const stranger = await stripe.products.create({ name: 'Not a plan' })
      await takeOver('pro_month', (params) => {
        params.product = stranger.id
      })
      running.billing.prices.clear()
      const moved = await refusal()
      assert.equal(moved?.code, 'E_BILLING_PRICE_MISMATCH', String(moved?.message))
      assert.match(moved.message, /"pro_month".*product/)
      assert.lengthOf(sessions(running.fake), 0)
      await sync(running)
      assert.match((await running.billing.for(user).checkout('pro', urls)).url, /checkout\.stripe\.com/)

      /**
       * The usage price, same tiers, but billing another meter
       */
      const usageKey = (running.fake.store.prices() as any[]).find((price) => price.active && price.metadata?.adonis_billing_meter === 'api_calls' && price.recurring?.interval === 'month').lookup_key as string
      const otherMeter = await stripe.billing.meters.create({ display_name: 'Other', event_name: 'other_calls', default_aggregation: { formula: 'sum' } })
      await takeOver(usageKey, (params) => {
        params.recurring.meter = otherMeter.id
      })
      running.billing.prices.clear()
      const rewired = await refusal()
      assert.equal(rewired?.code, 'E_BILLING_PRICE_MISMATCH', String(rewired?.message))
      assert.match(rewired.message, new RegExp(`"${usageKey}".*meter`))
      assert.lengthOf(sessions(running.fake), 1)

      /**
       * Back on the catalog meter, but that meter deactivated (it records nothing: the usage would bill 0)
       */
      await sync(running)
      const meter = (await stripe.billing.meters.list({ limit: 100 })).data.find((candidate) => candidate.event_name === 'api_calls')!
      await stripe.billing.meters.deactivate(meter.id)
      running.billing.prices.clear()
      const inactive = await refusal()
      assert.equal(inactive?.code, 'E_BILLING_PRICE_MISMATCH', String(inactive?.message))
      assert.match(inactive.message, /active meter/)
    })
  })
}

for (const dialect of DIALECTS) {
  test.group(`hardening #10.14 | the audit chain is tamper-evident for real [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(60_000))
    const run = async (app: any, command: any, args: string[]) => {
      const ace = await app.container.make('ace')
      ace.ui.switchMode('raw')
      const instance = await ace.create(command, args)
      await instance.exec()
      return { exitCode: instance.exitCode, lines: instance.ui.logger.getLogs().map((log: any) => log.message as string) }
    }

    test('appends only: UPDATE, DELETE and a rewound head are refused by the database itself', async ({ assert }) => {
      const world = await setupApp(dialect)
      for (let i = 0; i < 3; i++) await world.billing.audit.record({ action: 'x', metadata: { i } })
      const db = world.db.connection()
      await assert.rejects(() => db.from('billing_audit_logs').where('seq', 2).update({ metadata: JSON.stringify({ i: 9 }) }), /append-only \(UPDATE refused\)/)
      await assert.rejects(() => db.from('billing_audit_logs').where('seq', 3).delete(), /append-only \(DELETE refused\)/)
      await assert.rejects(() => db.from('billing_audit_head').where('id', 1).update({ rows: 2 }), /only moves with the chain/)
      await assert.rejects(() => db.from('billing_audit_head').where('id', 1).delete(), /only moves with the chain/)
      if (dialect === 'pg') await assert.rejects(() => db.rawQuery('truncate billing_audit_logs'), /append-only \(TRUNCATE refused\)/)
      assert.deepEqual(await world.billing.audit.verify(), { ok: true, checked: 3 })
    })

    if (dialect === 'pg') {
      test('a database writer that does not own the tables cannot pass as the seal from a trigger of its own; the app running as it still chains', async ({ assert }) => {
        const world = await setupApp(dialect)
        await world.billing.audit.record({ action: 'before' })
        const db = world.db.connection()
        await db.rawQuery("do $$ begin create role billing_writer nologin; exception when duplicate_object then null; end $$")
        /**
         * The grants the migration documents for the app's role, and one too many: UPDATE on the head
         */
        for (const statement of [
          'grant usage, create on schema public to billing_writer',
          'grant select, insert on billing_audit_logs, billing_audit_personal_data to billing_writer',
          'grant update (mac) on billing_audit_logs to billing_writer',
          'grant select on billing_audit_head to billing_writer',
          'grant usage on sequence billing_audit_logs_id_seq to billing_writer',
        ]) {
          await db.rawQuery(statement)
        }
        await db.rawQuery('grant update on billing_audit_head to billing_writer')
        const asWriter = (statements: string[]) =>
          db.transaction(async (trx) => {
            await trx.rawQuery('set local role billing_writer')
            for (const statement of statements) await trx.rawQuery(statement)
          })
        const attack = asWriter([
          'create table writer_pad (id int)',
          "create function writer_move() returns trigger language plpgsql as $f$ begin update billing_audit_head set rows = rows + 1, hash = repeat('f', 64) where id = 1; return new; end $f$",
          'create trigger writer_move after insert on writer_pad for each row execute function writer_move()',
          'insert into writer_pad values (1)',
        ])
        await assert.rejects(() => attack, /only moves with the chain/)
        assert.deepInclude(await db.from('billing_audit_head').where('id', 1).first(), { rows: '1' })
        /**
         * Nor attach the seal itself to a table of its own
         */
        await assert.rejects(
          () =>
            asWriter([
              'create temp table writer_seal (id bigint, content_hash text)',
              'create trigger writer_seal after insert on writer_seal for each row execute function public.billing_audit_seal()',
              "insert into writer_seal values (-1, 'chosen')",
            ]),
          /permission denied/
        )
        assert.deepInclude(await db.from('billing_audit_head').where('id', 1).first(), { rows: '1' })
        /**
         * Nor plant a function the seal (running as the owner) would call instead of pg_catalog's
         */
        await asWriter(["create function public.convert_to(text, text) returns bytea language plpgsql as $f$ begin raise exception 'hijacked'; end $f$"])

        /**
         * The app running as that role: its rows are linked at commit by the seal, which runs as the
         * tables' owner, and verify
         */
        await db.transaction(async (trx) => {
          await trx.rawQuery('set local role billing_writer')
          await world.billing.audit.record({ action: 'as-writer', metadata: { n: 1 } }, { client: trx })
        })
        await world.billing.audit.seal()
        assert.deepInclude(await db.from('billing_audit_head').where('id', 1).first(), { rows: '2' })
        assert.deepEqual(await world.billing.audit.verify(), { ok: true, checked: 2 })

        /**
         * The seal handed to another owner role (REASSIGN OWNED, a restore under another role) still
         * seals: the guards follow the seal's current owner
         */
        await db.rawQuery("do $$ begin create role billing_ops nologin; exception when duplicate_object then null; end $$")
        await db.rawQuery('grant select, update on billing_audit_logs, billing_audit_head to billing_ops')
        await db.rawQuery('alter function billing_audit_seal() owner to billing_ops')
        await world.billing.audit.record({ action: 'after-owner-change' })
        assert.deepEqual(await world.billing.audit.verify(), { ok: true, checked: 3 })
      })
    }

    test('a writer who drops the guards and recomputes the unkeyed sha256 chain is caught; so is a deleted head', async ({ assert }) => {
      const { dropAuditGuards } = await import('./audit_helpers.ts')
      const { chainHash } = await import('../src/audit/audit_trail.ts')
      const world = await setupApp(dialect)
      for (let i = 0; i < 4; i++) await world.billing.audit.record({ action: 'x', metadata: { i } })
      await dropAuditGuards(world.db, dialect)
      const db = world.db.connection()
      if (dialect === 'pg') await db.rawQuery('alter table billing_audit_logs disable trigger billing_audit_seal')
      /**
       * The attack that worked before: edit row 2, recompute content hash and every later link, move the head
       */
      const rows = await AuditLog.query().orderBy('seq')
      rows[1].metadata = { i: 99 }
      const { contentHash } = await import('../src/audit/audit_trail.ts')
      let prev = rows[0].hash!
      for (const row of rows.slice(1)) {
        const content = contentHash(row)
        const hash = chainHash(prev, content)
        await db.from('billing_audit_logs').where('id', row.id).update({ metadata: JSON.stringify(row.metadata), content_hash: content, prev_hash: prev, hash })
        prev = hash
      }
      await db.from('billing_audit_head').where('id', 1).update({ hash: prev })
      assert.deepInclude(await world.billing.audit.verify(), { ok: false, brokenAt: rows[1].id, reason: 'hash_mismatch' })

      await db.from('billing_audit_head').delete()
      assert.deepEqual(await world.billing.audit.verify(), { ok: false, checked: 0, reason: 'head_missing' })
      const { default: BillingAuditVerify } = await import('../commands/billing_audit_verify.ts')
      const result = await run(world.app, BillingAuditVerify, [])
      assert.equal(result.exitCode, 1)
      assert.match(result.lines.join('\n'), /chain head \(billing_audit_head\) was removed/)
    })

    test('billing:audit:checkpoint + verify --expect catch a truncation that leaves a valid shorter chain', async ({ assert }) => {
      const { dropAuditGuards } = await import('./audit_helpers.ts')
      const { default: BillingAuditCheckpoint } = await import('../commands/billing_audit_checkpoint.ts')
      const { default: BillingAuditVerify } = await import('../commands/billing_audit_verify.ts')
      const world = await setupApp(dialect)
      for (let i = 0; i < 5; i++) await world.billing.audit.record({ action: 'x', metadata: { i } })
      const file = join(tmpdir(), `checkpoints-${randomUUID()}.jsonl`)
      const exported = await run(world.app, BillingAuditCheckpoint, ['--out', file])
      assert.equal(exported.exitCode, 0, exported.lines.join('\n'))
      const checkpoint = JSON.parse((await readFile(file, 'utf8')).trim())
      assert.deepInclude(checkpoint, { seq: 5, keyId: 'app' })
      assert.match(checkpoint.mac, /^[0-9a-f]{64}$/)
      await world.billing.audit.record({ action: 'later' })
      assert.equal((await run(world.app, BillingAuditVerify, ['--expect', file])).exitCode, 0)

      /**
       * Truncate to 3 rows and rewind the head to row 3: a perfectly valid, shorter chain
       */
      await dropAuditGuards(world.db, dialect)
      const db = world.db.connection()
      const third = await AuditLog.query().where('seq', 3).firstOrFail()
      await db.from('billing_audit_logs').where('seq', '>', 3).delete()
      await db.from('billing_audit_head').where('id', 1).update({ hash: third.hash, rows: 3 })
      assert.deepEqual(await world.billing.audit.verify(), { ok: true, checked: 3 }, 'undetectable without a checkpoint')
      const truncated = await run(world.app, BillingAuditVerify, ['--expect', file])
      assert.equal(truncated.exitCode, 1)
      assert.match(truncated.lines.join('\n'), /no longer holds the expected checkpoint/)

      /**
       * A checkpoint edited to match the shorter chain is not signed
       */
      const forged = JSON.stringify({ ...checkpoint, seq: 3, hash: third.hash })
      assert.deepInclude(await world.billing.audit.verify({ expect: JSON.parse(forged) }), { ok: false, reason: 'checkpoint_invalid' })
      assert.equal((await run(world.app, BillingAuditVerify, ['--expect', forged])).exitCode, 1)
      assert.equal((await run(world.app, BillingAuditVerify, ['--expect', 'not-a-file'])).exitCode, 1)
    })

    test('the key rotates: rows name their key id and verify with audit.previousKeys', async ({ assert }) => {
      const first = await setupApp(dialect)
      await first.billing.audit.record({ action: 'under.app.key' })
      const rotated = await setupApp(dialect, {
        shareDatabaseWith: first,
        billing: testCatalog({ audit: { keyId: 'k2026', key: 'a-new-audit-secret-of-some-length', previousKeys: { app: 'averylongrandom32charslongsecret' } } }),
      })
      await rotated.billing.audit.record({ action: 'under.k2026' })
      assert.deepEqual((await AuditLog.query().orderBy('seq')).map((row) => row.keyId), ['app', 'k2026'])
      assert.deepEqual(await rotated.billing.audit.verify(), { ok: true, checked: 2 })
      const forgetful = await setupApp(dialect, { shareDatabaseWith: first, billing: testCatalog({ audit: { keyId: 'k2026', key: 'a-new-audit-secret-of-some-length' } }) })
      assert.deepInclude(await forgetful.billing.audit.verify(), { ok: false, reason: 'unknown_key', checked: 0 })
      assert.notInclude(JSON.stringify(rotated.billing.config), 'a-new-audit-secret')
    })

    test('personal data sits beside the chain: revealed for reading, erasable, and the chain still verifies', async ({ assert }) => {
      const world = await setupApp(dialect)
      const user = await User.create({ email: 'ada@example.com', name: 'Ada' })
      const customer = await world.billing.for(user).customer()
      const raw = await world.db.connection().from('billing_audit_logs').select('*')
      assert.notInclude(JSON.stringify(raw), 'ada@example.com', 'no email inside the append-only rows')
      const created = await AuditLog.query().where('action', 'customer.created').firstOrFail()
      assert.match((created.after as any).email.$personal, /^[0-9a-f]{32}$/)
      const [revealed] = await world.billing.audit.reveal([created])
      assert.equal((revealed.after as any).email, 'ada@example.com')

      /**
       * Contact details nested in another subject's before/after or in metadata are kept apart too
       */
      const nested = await world.billing.audit.record({
        action: 'team.contacts_changed',
        subject: { type: 'team', id: 1 },
        customerId: customer.id,
        after: { contacts: [{ role: 'billing', email: 'zed@example.com' }] },
        metadata: { billing_details: { phone: '+15550100' } },
      })
      assert.notInclude(JSON.stringify(await world.db.connection().from('billing_audit_logs').select('*')), 'zed@example.com')
      assert.notInclude(JSON.stringify(await world.db.connection().from('billing_audit_logs').select('*')), '+15550100')
      const [shown] = await world.billing.audit.reveal([await AuditLog.findOrFail(nested.id)])
      assert.deepEqual(shown.after, { contacts: [{ role: 'billing', email: 'zed@example.com' }] })
      assert.deepEqual(shown.metadata, { billing_details: { phone: '+15550100' } })

      assert.equal(await world.billing.audit.erasePersonalData(customer.id, { reason: 'GDPR request #12' }), 3)
      const [erased] = await world.billing.audit.reveal([created])
      assert.deepEqual((erased.after as any).email, { $erased: true })
      assert.notInclude(JSON.stringify(await world.db.connection().from('billing_audit_personal_data').select('*')), 'ada@example.com')
      assert.deepEqual(await world.billing.audit.verify(), { ok: true, checked: 3 })
      assert.equal((await AuditLog.query().orderBy('seq', 'desc').firstOrFail()).action, 'audit.personal_data_erased')
    })

    test('personal data of rows with no customer is erasable by the value itself or by the rows\' subject', async ({ assert }) => {
      const world = await setupApp(dialect)
      const invited = await world.billing.audit.record({
        action: 'team.invited',
        subject: { type: 'invitation', id: 7 },
        after: { email: 'lost@example.com', contact: { phone: '+15550199' } },
      })
      const other = await world.billing.audit.record({ action: 'team.invited', subject: { type: 'invitation', id: 8 }, after: { email: 'kept@example.com' } })
      /**
       * A customer's row holding the same address: not someone else's erasure
       */
      const user = await User.create({ email: 'holder@example.com', name: null })
      const customer = await world.billing.for(user).customer()
      const holder = await world.billing.audit.record({ action: 'team.invited', customerId: customer.id, subject: { type: 'invitation', id: 9 }, after: { email: 'lost@example.com' } })
      const stored = () => world.db.connection().from('billing_audit_personal_data').select('*')
      const before = (await stored()).length

      assert.equal(await world.billing.audit.erasePersonalData({ value: 'lost@example.com' }, { reason: 'GDPR request #13' }), 1)
      const [shown] = await world.billing.audit.reveal([await AuditLog.findOrFail(invited.id)])
      assert.deepEqual(shown.after, { email: { $erased: true }, contact: { phone: '+15550199' } })
      assert.equal(await world.billing.audit.erasePersonalData({ subject: { type: 'invitation', id: 7 } }), 1)
      const [gone] = await world.billing.audit.reveal([await AuditLog.findOrFail(invited.id)])
      assert.deepEqual(gone.after, { email: { $erased: true }, contact: { phone: { $erased: true } } })
      const [kept] = await world.billing.audit.reveal([await AuditLog.findOrFail(other.id)])
      assert.deepEqual(kept.after, { email: 'kept@example.com' })
      const [held] = await world.billing.audit.reveal([await AuditLog.findOrFail(holder.id)])
      assert.deepEqual(held.after, { email: 'lost@example.com' })
      assert.lengthOf(await stored(), before - 2)

      /**
       * The erasures are audited without repeating what they erased, and the chain verifies
       */
      assert.notInclude(JSON.stringify(await world.db.connection().from('billing_audit_logs').select('*')), 'lost@example.com')
      assert.equal(await world.billing.audit.erasePersonalData({ value: 'lost@example.com', customerId: customer.id }), 1)
      assert.notInclude(JSON.stringify(await stored()), 'lost@example.com')
      const erasures = await AuditLog.query().where('action', 'audit.personal_data_erased').orderBy('seq')
      assert.deepEqual(erasures.map((row) => [row.subjectType, row.subjectId, row.after]), [
        [null, null, { erased: 1 }],
        ['invitation', '7', { erased: 1 }],
        ['customer', String(customer.id), { erased: 1 }],
      ])
      assert.deepEqual((await world.billing.audit.verify()).ok, true)
      await assert.rejects(() => world.billing.audit.erasePersonalData({} as any), /customerId, value or subject/)
    })
  })
}

for (const dialect of DIALECTS) {
  test.group(`hardening #10.20 | strings within Stripe's lengths [${dialect}]`, () => {
    test('a phone over 20, a balance description over 350 or a meter name over 250 characters is refused before any request', async ({ assert }) => {
      const { setupStripeApp } = await import('./helpers.ts')
      const { normalizeConfig: normalize } = await import('../src/catalog/normalize_config.ts')
      const world = await setupStripeApp(dialect)
      const user = await User.create({ email: 'long@example.com', name: null })
      await world.billing.for(user).stripeCustomerId()
      const before = world.fake.requests.length
      await assert.rejects(() => world.billing.for(user).updateStripeCustomer({ phone: '+1'.padEnd(21, '5') }), /phone must be at most 20 characters/)
      await assert.rejects(() => world.billing.for(user).adjustBalance(-500, 'x'.repeat(351)), /description must be at most 350 characters/)
      assert.equal(world.fake.requests.length, before, 'nothing reached Stripe')
      await world.billing.for(user).updateStripeCustomer({ phone: '+1'.padEnd(20, '5') })
      await world.billing.for(user).adjustBalance(-500, 'x'.repeat(350))
      const catalog = testCatalog()
      catalog.meters!.api_calls.name = 'n'.repeat(251)
      assert.throws(() => normalize(catalog), /meters\.api_calls\.name.*at most 250/)
    })
  })
}

for (const dialect of DIALECTS) {
  test.group(`hardening #10.14 | keyed audit upgrade [${dialect}]`, () => {
    test('an install with an unkeyed chain gains key_id, the personal data table and the guards; its old rows verify as the prefix', async ({ assert }) => {
      const { dropAuditGuards } = await import('./audit_helpers.ts')
      const { contentHash, chainHash, GENESIS_HASH } = await import('../src/audit/audit_trail.ts')
      const world = await setupApp(dialect)
      const db = world.db.connection()
      /**
       * The schema as it was: no key_id, no personal data table, no guards, the unkeyed seal
       */
      await dropAuditGuards(world.db, dialect)
      if (dialect === 'pg') await db.rawQuery('alter table billing_audit_logs disable trigger billing_audit_seal')
      await db.schema.dropTable('billing_audit_personal_data')
      await db.schema.alterTable('billing_audit_logs', (table) => {
        table.dropColumn('key_id')
        table.dropColumn('content_mac')
        table.dropColumn('mac')
      })
      let prev = GENESIS_HASH
      for (let seq = 1; seq <= 2; seq++) {
        const occurredAt = DateTime.utc().startOf('second')
        const content = { occurredAt, actorType: 'system', actorId: null, action: `legacy.${seq}`, subjectType: null, subjectId: null, customerId: null, before: null, after: null, metadata: null, requestId: null, eventId: null }
        const hashed = contentHash(content as any)
        const hash = chainHash(prev, hashed)
        await db.table('billing_audit_logs').insert({ occurred_at: occurredAt.toISO(), actor_type: 'system', action: `legacy.${seq}`, content_hash: hashed, seq, prev_hash: prev, hash })
        prev = hash
      }
      await db.from('billing_audit_head').where('id', 1).update({ hash: prev, rows: 2 })
      if (dialect === 'pg') await db.rawQuery('alter table billing_audit_logs enable trigger billing_audit_seal')

      await db.from('adonis_schema').where('name', 'like', '%make_billing_audit_keyed%').delete()
      const { MigrationRunner } = await import('@adonisjs/lucid/migration')
      const runner = new MigrationRunner(world.db, world.app as any, { direction: 'up', connectionName: 'primary', disableLocks: true })
      await runner.run()
      assert.equal(runner.status, 'completed', String(runner.error))
      assert.isTrue(await db.schema.hasColumn('billing_audit_logs', 'key_id'))
      assert.isTrue(await db.schema.hasTable('billing_audit_personal_data'))

      await world.billing.audit.record({ action: 'keyed.1' })
      await world.billing.audit.record({ action: 'keyed.2' })
      assert.deepEqual((await AuditLog.query().orderBy('seq')).map((row) => [row.action, row.keyId]), [
        ['legacy.1', null],
        ['legacy.2', null],
        ['keyed.1', 'app'],
        ['keyed.2', 'app'],
      ])
      /**
       * Unkeyed rows are accepted only as many as the config says (outside the database): else a
       * writer could rewrite the whole chain as unkeyed rows
       */
      assert.deepInclude(await world.billing.audit.verify(), { ok: false, checked: 0, reason: 'unkeyed' })
      const upgraded = await setupApp(dialect, { shareDatabaseWith: world, billing: testCatalog({ audit: { legacyRows: 2 } }) })
      const upgradedResult = await upgraded.billing.audit.verify()
      assert.deepEqual(upgradedResult, { ok: true, checked: 4 }, JSON.stringify(upgradedResult))
      await assert.rejects(() => db.from('billing_audit_logs').where('seq', 1).delete(), /append-only/)

      if (dialect === 'sqlite') {
        /**
         * An unkeyed row after keyed ones is a forgery, even with a correct unkeyed link and head
         */
        const last = await AuditLog.query().orderBy('seq', 'desc').firstOrFail()
        const occurredAt = DateTime.utc().startOf('second')
        const content = { occurredAt, actorType: 'system', actorId: null, action: 'forged', subjectType: null, subjectId: null, customerId: null, before: null, after: null, metadata: null, requestId: null, eventId: null }
        const hashed = contentHash(content as any)
        const [inserted] = await db.table('billing_audit_logs').insert({ occurred_at: occurredAt.toISO(), actor_type: 'system', action: 'forged', content_hash: hashed, seq: 5, prev_hash: last.hash, hash: chainHash(last.hash!, hashed) }).returning('id')
        await db.from('billing_audit_head').where('id', 1).update({ hash: chainHash(last.hash!, hashed), rows: 5 })
        assert.deepEqual(await upgraded.billing.audit.verify(), { ok: false, checked: 4, brokenAt: Number(typeof inserted === 'object' ? inserted.id : inserted), reason: 'unkeyed' })
      }
    })
  })
}

test.group('hardening #10.13 | the one price rule (review findings)', () => {
  test('a per-unit price that still divides its quantity is not the catalog price; decimals compare canonically', async ({ assert }) => {
    const { priceChanges } = await import('../src/catalog/price_params.ts')
    const live = {
      currency: 'usd',
      recurring: { interval: 'month', interval_count: 1, usage_type: 'metered' },
      tax_behavior: 'exclusive',
      billing_scheme: 'per_unit',
      unit_amount: null,
      unit_amount_decimal: '7.5',
      transform_quantity: { divide_by: 1000, round: 'up' },
      product: 'prod_1',
    } as any
    const wanted = { currency: 'usd', recurring: { interval: 'month', interval_count: 1, usage_type: 'metered' }, tax_behavior: 'exclusive', billing_scheme: 'per_unit', unit_amount_decimal: '007.50' } as any
    assert.deepEqual(priceChanges(live, wanted, null), ['package {"divide_by":1000,"round":"up"} → null'])
    assert.deepEqual(priceChanges({ ...live, transform_quantity: null }, wanted, null), [])
  })
})

for (const dialect of DIALECTS) {
  test.group(`hardening #10.14 | review findings: downgrade, retired key, rows beyond the head [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(60_000))

    test('rewriting the whole chain as unkeyed rows is caught (no legacy prefix configured)', async ({ assert }) => {
      const { dropAuditGuards } = await import('./audit_helpers.ts')
      const world = await setupApp(dialect)
      for (let i = 0; i < 3; i++) await world.billing.audit.record({ action: 'x', metadata: { i } })
      await world.billing.audit.seal()
      await dropAuditGuards(world.db, dialect)
      await world.db.connection().from('billing_audit_logs').update({ key_id: null, content_mac: null, mac: null })
      assert.deepInclude(await world.billing.audit.verify(), { ok: false, checked: 0, reason: 'unkeyed' })
    })

    test('a retired key signs nothing after the rotation', async ({ assert }) => {
      const rotatedConfig = { audit: { keyId: 'k2026', key: 'a-new-audit-secret-of-some-length', previousKeys: { app: 'averylongrandom32charslongsecret' } } }
      const first = await setupApp(dialect)
      await first.billing.audit.record({ action: 'under.app' })
      const rotated = await setupApp(dialect, { shareDatabaseWith: first, billing: testCatalog(rotatedConfig) })
      await rotated.billing.audit.record({ action: 'under.k2026' })
      assert.deepEqual(await rotated.billing.audit.verify(), { ok: true, checked: 2 })
      /**
       * Someone holding the old key appends under it
       */
      const stale = await setupApp(dialect, { shareDatabaseWith: first })
      await stale.billing.audit.record({ action: 'under.app.again' })
      const check = await setupApp(dialect, { shareDatabaseWith: first, billing: testCatalog(rotatedConfig) })
      assert.deepInclude(await check.billing.audit.verify(), { ok: false, checked: 2, reason: 'retired_key' })
    })

    test('a row placed beyond the head is reported', async ({ assert }) => {
      const { dropAuditGuards } = await import('./audit_helpers.ts')
      const world = await setupApp(dialect)
      await world.billing.audit.record({ action: 'kept' })
      const kept = await AuditLog.query().firstOrFail()
      await dropAuditGuards(world.db, dialect)
      const db = world.db.connection()
      if (dialect === 'pg') await db.rawQuery('alter table billing_audit_logs disable trigger billing_audit_seal')
      const [inserted] = await db
        .table('billing_audit_logs')
        .insert({ occurred_at: new Date().toISOString(), actor_type: 'system', action: 'far', content_hash: kept.contentHash, key_id: 'app', seq: 1_000_000_000, prev_hash: 'a'.repeat(64), hash: 'b'.repeat(64) })
        .returning('id')
      assert.deepEqual(await world.billing.audit.verify(), { ok: false, checked: 1, brokenAt: Number(typeof inserted === 'object' ? inserted.id : inserted), reason: 'chain_break' })
    })
  })
}
