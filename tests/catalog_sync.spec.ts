import { test } from '@japa/runner'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { testCatalog } from './fixtures/catalog.ts'
import AuditLog from '../src/models/audit_log.ts'
import BillingSync from '../commands/billing_sync.ts'
import type { TestApp } from './helpers.ts'

async function runSync(app: TestApp['app'], args: string[] = []) {
  const ace = await app.container.make('ace')
  ace.ui.switchMode('raw')
  const command = await ace.create(BillingSync, args)
  await command.exec()
  return { command, logs: command.ui.logger.getLogs().map((log: any) => log.message as string) }
}

for (const dialect of DIALECTS) {
  test.group(`billing:sync [${dialect}]`, () => {
    test('--dry-run prints the diff and writes nothing', async ({ assert }) => {
      const { app, fake } = await setupStripeApp(dialect, { environment: 'console' })
      const { command, logs } = await runSync(app, ['--dry-run'])
      assert.equal(command.exitCode, 0)
      const output = logs.join('\n')
      assert.include(output, '15 change(s) to make')
      assert.include(output, 'create meter "api_calls" (event api_calls, sum)')
      assert.include(output, 'create price "pro_month" (2900 usd/month)')
      assert.include(output, 'create price "pro_api_calls" (graduated tiers usd/month)')
      assert.include(output, 'attach feature "sso" to the product of plan "pro"')
      assert.include(output, 'dry run: nothing was changed')
      assert.lengthOf(fake.requests.filter((request) => request.method !== 'GET'), 0)
      assert.lengthOf(await AuditLog.all(), 0)
    })

    test('creates meters, features, products and prices with exact parameters, audited; a rerun changes nothing', async ({ assert }) => {
      const { app, fake } = await setupStripeApp(dialect, { environment: 'console' })
      const first = await runSync(app)
      assert.equal(first.command.exitCode, 0, first.logs.join('\n'))
      assert.include(first.logs.at(-1)!, 'Stripe now matches the catalog (15 change(s) applied)')

      const meter = fake.lastRequest('POST', '/v1/billing/meters')!
      assert.deepEqual(meter.body, {
        display_name: 'API calls',
        event_name: 'api_calls',
        default_aggregation: { formula: 'sum' },
        customer_mapping: { type: 'by_id', event_payload_key: 'stripe_customer_id' },
        value_settings: { event_payload_key: 'value' },
      })
      assert.isString(meter.idempotencyKey)

      const prices = fake.requestsTo('POST', '/v1/prices')
      assert.lengthOf(prices, 5)
      assert.deepEqual(prices.map((request) => request.body.lookup_key).sort(), ['extra_seats_month', 'pro_api_calls', 'pro_api_calls_year', 'pro_month', 'pro_year'])
      assert.deepEqual(prices.find((request) => request.body.lookup_key === 'pro_api_calls_year')!.body.recurring.interval, 'year')
      const proMonth = prices.find((request) => request.body.lookup_key === 'pro_month')!
      const proProduct = fake.requestsTo('POST', '/v1/products').find((request) => request.body.name === 'Pro')!
      assert.deepEqual(proProduct.body, { name: 'Pro', metadata: { adonis_billing_plan: 'pro' } })
      assert.deepInclude(proMonth.body, {
        currency: 'usd',
        unit_amount: '2900',
        recurring: { interval: 'month', interval_count: '1' },
        tax_behavior: 'exclusive',
        lookup_key: 'pro_month',
      })
      const usage = prices.find((request) => request.body.lookup_key === 'pro_api_calls')!
      assert.deepInclude(usage.body, { billing_scheme: 'tiered', tiers_mode: 'graduated' })
      assert.deepEqual(usage.body.tiers, [
        { up_to: '10000', unit_amount_decimal: '0' },
        { up_to: 'inf', unit_amount_decimal: '0.05' },
      ])
      assert.equal(usage.body.recurring.usage_type, 'metered')
      assert.match(usage.body.recurring.meter, /^mtr_/)
      assert.lengthOf(fake.requestsTo('POST', '/v1/entitlements/features'), 3)
      assert.lengthOf(fake.requestsTo('POST', /^\/v1\/products\/prod_[^/]+\/features$/), 4)

      const audit = await AuditLog.query().orderBy('id')
      assert.lengthOf(audit, 15)
      assert.equal(audit[0].actorType, 'cli')
      assert.includeMembers(audit.map((row) => row.action), ['catalog.meter.create', 'catalog.price.create', 'catalog.product_feature.attach'])

      const before = fake.requests.length
      const second = await runSync(app)
      assert.equal(second.command.exitCode, 0)
      assert.include(second.logs.at(-1)!, 'Stripe already matches the catalog: nothing to do (1 meters, 3 features, 2 products, 5 prices already in sync)')
      assert.lengthOf(fake.requests.slice(before).filter((request) => request.method !== 'GET'), 0)
      assert.lengthOf(await AuditLog.all(), 15)
    })

    test('a changed amount creates a new price, moves the lookup key and archives the old one', async ({ assert }) => {
      const { app, fake } = await setupStripeApp(dialect, { environment: 'console' })
      await runSync(app)
      const oldPrice = fake.store.list('price').find((price: any) => price.lookup_key === 'pro_month') as any

      const changed = testCatalog()
      changed.plans!.pro.prices!.month!.amount = 3900
      const next = await setupStripeApp(dialect, { environment: 'console', billing: changed, fake })
      const dry = await runSync(next.app, ['--dry-run'])
      assert.include(dry.logs.join('\n'), 'replace price "pro_month" (amount 2900 → 3900)')
      const applied = await runSync(next.app)
      assert.equal(applied.command.exitCode, 0, applied.logs.join('\n'))

      const create = fake.lastRequest('POST', '/v1/prices')!
      assert.equal(create.body.unit_amount, '3900')
      assert.equal(create.body.transfer_lookup_key, 'true')
      assert.deepEqual(fake.lastRequest('POST', new RegExp(`^/v1/prices/${oldPrice.id}$`))!.body, { active: 'false' })
      const prices = fake.store.list('price') as any[]
      assert.isFalse(prices.find((price) => price.id === oldPrice.id).active)
      assert.isNull(prices.find((price) => price.id === oldPrice.id).lookup_key)
      assert.equal(prices.find((price) => price.lookup_key === 'pro_month').unit_amount, 3900)
      assert.equal((await AuditLog.query().where('action', 'catalog.price.replace').firstOrFail()).metadata!.archived, oldPrice.id)

      const again = await runSync(next.app)
      assert.include(again.logs.at(-1)!, 'nothing to do')
    })

    test('a usage price moved to another meter is replaced: Stripe must bill the meter the catalog names (review finding)', async ({ assert }) => {
      const { app, fake } = await setupStripeApp(dialect, { environment: 'console' })
      await runSync(app)
      const moved = testCatalog()
      moved.meters!.api_calls.eventName = 'api_requests'
      const next = await setupStripeApp(dialect, { environment: 'console', billing: moved, fake })
      const dry = await runSync(next.app, ['--dry-run'])
      assert.match(dry.logs.join('\n'), /replace price "pro_api_calls" \(meter "mtr_[^"]+" → null\)/)
      const applied = await runSync(next.app)
      assert.equal(applied.command.exitCode, 0, applied.logs.join('\n'))
      const meter = (fake.store.list('billing.meter') as any[]).find((candidate) => candidate.event_name === 'api_requests')
      const price = (fake.store.list('price') as any[]).find((candidate) => candidate.lookup_key === 'pro_api_calls')
      assert.equal(price.recurring.meter, meter.id)
      assert.include((await runSync(next.app)).logs.at(-1)!, 'nothing to do')
    })
  })
}
