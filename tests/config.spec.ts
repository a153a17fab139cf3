import { test } from '@japa/runner'
import { defineConfig } from '../src/define_config.ts'
import { normalizeConfig } from '../src/catalog/normalize_config.ts'
import { errors } from '../index.ts'
import { setupApp } from './helpers.ts'
import { testCatalog } from './fixtures/catalog.ts'
import type { BillingConfigInput } from '../src/types.ts'

/**
 * Asserts that `config` is rejected with E_BILLING_INVALID_CONFIG naming `key`.
 */
function assertInvalid(assert: any, config: BillingConfigInput, key: string, fragment: string) {
  try {
    normalizeConfig(config)
  } catch (error) {
    assert.instanceOf(error, errors.InvalidConfigException)
    assert.equal(error.code, 'E_BILLING_INVALID_CONFIG')
    assert.equal(error.key, key)
    assert.include(error.message, `"${key}"`)
    assert.include(error.message, fragment)
    return
  }
  assert.fail(`expected "${key}" to be rejected`)
}

test.group('config validation', () => {
  test('a valid catalog is normalized with defaults', ({ assert }) => {
    const config = normalizeConfig(testCatalog())
    assert.equal(config.currency, 'usd')
    assert.deepEqual(config.plans.pro.prices[0], {
      interval: 'month',
      amount: 2900,
      currency: 'usd',
      lookupKey: 'pro_month',
      intervalCount: 1,
      taxBehavior: 'exclusive',
      trialDays: 14,
    })
    assert.equal(config.plans.pro.usagePrices[0].lookupKey, 'pro_api_calls')
    assert.isTrue(config.plans.free.free)
    assert.isFalse(config.plans.pro.free)
    assert.equal(config.meters.api_calls.eventName, 'api_calls')
    assert.deepEqual(config.stripe.webhookSecrets, ['whsec_test_secret'])
    assert.equal(config.webhooks.tolerance, 300)
    assert.equal(config.routes.prefix, '/billing')
    assert.equal(config.policy.pastDueGraceDays, 7)
  })

  test('several webhook secrets (rotation) are accepted as an array or comma list', ({ assert }) => {
    const fromList = normalizeConfig(testCatalog({ stripe: { webhookSecret: 'whsec_a, whsec_b' } }))
    const fromArray = normalizeConfig(testCatalog({ stripe: { webhookSecret: ['whsec_a', 'whsec_b'] } }))
    assert.deepEqual(fromList.stripe.webhookSecrets, ['whsec_a', 'whsec_b'])
    assert.deepEqual(fromArray.stripe.webhookSecrets, ['whsec_a', 'whsec_b'])
  })

  test('an unknown feature in a plan names the plan and feature', ({ assert }) => {
    const config = testCatalog()
    config.plans!.pro.features = { sso: true, sso2: true }
    assertInvalid(assert, config, 'plans.pro.features.sso2', 'unknown feature "sso2"')
  })

  test('a metered feature without a meter', ({ assert }) => {
    const config = testCatalog()
    config.features!.api_calls = { type: 'metered' } as any
    assertInvalid(assert, config, 'features.api_calls.meter', 'needs the key of a meter')
    config.features!.api_calls = { type: 'metered', meter: 'nope' }
    assertInvalid(assert, config, 'features.api_calls.meter', 'unknown meter "nope"')
  })

  test('a negative or fractional price', ({ assert }) => {
    const config = testCatalog()
    config.plans!.pro.prices!.month!.amount = -1
    assertInvalid(assert, config, 'plans.pro.prices.month.amount', 'must not be negative')
    config.plans!.pro.prices!.month!.amount = 29.99
    assertInvalid(assert, config, 'plans.pro.prices.month.amount', 'integer amount in minor units')
    const tiers = testCatalog()
    ;(tiers.plans!.pro.usagePrices!.api_calls as any).tiers[1].unitAmount = '-0.5'
    assertInvalid(assert, tiers, 'plans.pro.usagePrices.api_calls.tiers.1.unitAmount', 'must not be negative')
  })

  test('a duplicate lookup key names both prices', ({ assert }) => {
    const config = testCatalog()
    config.plans!.extra_seats.prices!.month!.lookupKey = 'pro_month'
    assertInvalid(assert, config, 'plans.extra_seats.prices.month.lookupKey', 'duplicate lookup key "pro_month" (also used by plans.pro.prices.month.lookupKey)')
  })

  test('other mistakes name their key', ({ assert }) => {
    const cases: Array<[(config: BillingConfigInput) => void, string, string]> = [
      [(c) => ((c.plans!.pro.features as any).seats = 'ten'), 'plans.pro.features.seats', 'non-negative integer'],
      [(c) => ((c.plans!.pro.features as any).sso = 1), 'plans.pro.features.sso', 'boolean feature'],
      [(c) => ((c.plans!.pro.prices as any).fortnight = { amount: 1 }), 'plans.pro.prices.fortnight', 'interval must be one of'],
      [(c) => ((c.plans!.pro as any).price = {}), 'plans.pro.price', 'unknown option'],
      [(c) => ((c.meters!.api_calls as any).aggregation = 'avg'), 'meters.api_calls.aggregation', 'must be one of'],
      [(c) => ((c.plans!.pro.usagePrices as any).storage = { model: 'per_unit', unitAmount: 1 }), 'plans.pro.usagePrices.storage', 'unknown meter "storage"'],
      [(c) => ((c.plans!.pro.usagePrices!.api_calls as any).tiers[1].upTo = 500), 'plans.pro.usagePrices.api_calls.tiers.1.upTo', 'the last tier must go up to "inf"'],
      [(c) => ((c.plans as any)['Pro Plan'] = { name: 'x' }), 'plans.Pro Plan', 'snake_case'],
      [(c) => ((c as any).currency = 'dollars'), 'currency', '3-letter ISO'],
      [(c) => ((c.stripe as any).secretKey = 'pk_live_123'), 'stripe.secretKey', 'secret or restricted key'],
      [(c) => ((c.stripe as any).webhookSecret = 'secret'), 'stripe.webhookSecret', 'start with "whsec_"'],
      [(c) => ((c.policy as any).pastDueGraceDays = -2), 'policy.pastDueGraceDays', 'must not be negative'],
      [(c) => ((c.policy as any).unpaid = 'all'), 'policy.unpaid', 'must be one of none, plan'],
      [(c) => ((c as any).routes = { prefix: 'billing' }), 'routes.prefix', 'starting with "/"'],
    ]
    for (const [mutate, key, fragment] of cases) {
      const config = testCatalog()
      mutate(config)
      assertInvalid(assert, config, key, fragment)
    }
  })

  test('defineConfig validates eagerly, so importing a broken config file throws', ({ assert }) => {
    const config = testCatalog()
    config.plans!.pro.features = { teleport: true }
    assert.throws(() => defineConfig(config), /plans\.pro\.features\.teleport/)
  })

  test('a broken catalog fails app boot with E_BILLING_INVALID_CONFIG', async ({ assert }) => {
    const config = testCatalog()
    config.plans!.pro.prices!.month!.amount = -100
    await assert.rejects(() => setupApp('sqlite', { billing: config }), /E_BILLING_INVALID_CONFIG|plans\.pro\.prices\.month\.amount/)
  })

  test('missing secrets fail boot in production only', async ({ assert }) => {
    const withoutSecrets = testCatalog({ stripe: {} })
    const dev = await setupApp('sqlite', { billing: withoutSecrets })
    assert.isUndefined(dev.billing.config.stripe.secretKey)

    try {
      await setupApp('sqlite', { billing: withoutSecrets, nodeEnv: 'production' })
      assert.fail('expected boot to fail')
    } catch (error) {
      assert.equal(error.code, 'E_BILLING_INVALID_CONFIG')
      assert.equal(error.key, 'stripe.secretKey')
    }
    try {
      await setupApp('sqlite', { billing: testCatalog({ stripe: { secretKey: 'sk_live_x' } }), nodeEnv: 'production' })
      assert.fail('expected boot to fail')
    } catch (error) {
      assert.equal(error.key, 'stripe.webhookSecret')
    }
    const prod = await setupApp('sqlite', { billing: testCatalog({ stripe: { secretKey: 'sk_test_123', webhookSecret: 'whsec_test_secret', allowTestKeys: true } }), nodeEnv: 'production' })
    assert.equal(prod.billing.config.stripe.secretKey, 'sk_test_123')
  })
})
