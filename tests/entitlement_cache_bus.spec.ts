import { test } from '@japa/runner'
import { randomUUID } from 'node:crypto'
import { DIALECTS, redisSettings, setupApp, type Dialect, type TestApp } from './helpers.ts'
import { testCatalog } from './fixtures/catalog.ts'
import { normalizeConfig } from '../src/catalog/normalize_config.ts'
import { User } from './fixtures/user.ts'

/**
 * `config/redis.ts` + `config/cache.ts` of a host app whose store `name` has a memory L1 and a Redis
 * bus, with the providers that read them.
 */
async function cacheSetup(name: string) {
  const { defineConfig: defineRedisConfig } = await import('@adonisjs/redis')
  const { defineConfig: defineCacheConfig, store, drivers } = await import('@adonisjs/cache')
  return {
    config: {
      redis: defineRedisConfig({ connection: 'main', connections: { main: { ...redisSettings(), db: 0 } } }),
      cache: defineCacheConfig({
        default: name,
        stores: { [name]: store().useL1Layer(drivers.memory({ maxSize: '10mb' })).useBus(drivers.redisBus({ connectionName: 'main' })) },
      }),
    },
    providers: [() => import('@adonisjs/redis/redis_provider'), () => import('@adonisjs/cache/cache_provider')],
  }
}

/**
 * Long TTL: only an invalidation can make another instance see a change within the test.
 */
function catalog(cacheStore?: string) {
  const config = testCatalog()
  config.policy = { ...config.policy, cacheTtlSeconds: 3600 }
  config.entitlements = { ...config.entitlements, ...(cacheStore ? { cacheStore } : {}) }
  return config
}

async function until(condition: () => Promise<boolean> | boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return true
}

/**
 * Two instances of one app on one database and one bus, plus a third instance without the bus.
 */
async function instances(dialect: Dialect) {
  const store = `billing_${randomUUID().slice(0, 8)}`
  const one: TestApp = await setupApp(dialect, { billing: catalog(store), ...(await cacheSetup(store)) })
  const two: TestApp = await setupApp(dialect, { billing: catalog(store), ...(await cacheSetup(store)), shareDatabaseWith: one })
  const noBus: TestApp = await setupApp(dialect, { billing: catalog(), shareDatabaseWith: one })
  /**
   * A store subscribes its bus when created (at boot, not awaited): wait until each instance hears
   * the other before measuring anything.
   */
  for (const [from, to] of [
    [one, two],
    [two, one],
  ]) {
    const heard = await until(() => {
      from.billing.entitlementBus!.publish(0)
      return to.billing.entitlementBus!.received > 0
    })
    if (!heard) throw new Error('the instances never heard each other on the cache bus')
  }
  return { one, two, noBus }
}

for (const dialect of DIALECTS) {
  test.group(`entitlement cache across instances (@adonisjs/cache bus) [${dialect}]`, () => {
    test('a change committed on one instance reaches the warm cache of the other at once', async ({ assert }) => {
      const { one, two, noBus } = await instances(dialect)
      const user = await User.create({ email: 'bus@example.com', name: 'Bus' })
      await one.billing.for(user).customer()

      /**
       * Every instance caches "no sso"
       */
      assert.isFalse(await one.billing.for(user).can('sso'))
      assert.isFalse(await two.billing.for(user).can('sso'))
      assert.isFalse(await noBus.billing.for(user).can('sso'))

      await one.billing.for(user).grant('sso', true, { reason: 'support' })
      assert.isTrue(await one.billing.for(user).can('sso'))
      const started = Date.now()
      assert.isTrue(await until(() => two.billing.for(user).can('sso'), 2000), 'the other instance never saw the grant')
      const lagMs = Date.now() - started
      assert.isBelow(lagMs, 2000)
      /**
       * The instance without a bus keeps its cached answer until the TTL: the documented bound, and
       * the proof that the bus (not a cache miss) refreshed the other one
       */
      assert.isFalse(await noBus.billing.for(user).can('sso'))

      /**
       * And back: a revoke on the second instance reaches the first
       */
      await two.billing.for(user).revoke('sso', { reason: 'support' })
      assert.isTrue(await until(async () => !(await one.billing.for(user).can('sso')), 2000), 'the first instance never saw the revoke')
    })

    test('entitlements.cacheStore needs @adonisjs/cache and an existing store', async ({ assert }) => {
      await assert.rejects(() => setupApp(dialect, { billing: catalog('billing') }), /E_BILLING_INVALID_CONFIG|needs @adonisjs\/cache/)
      const setup = await cacheSetup('present')
      await assert.rejects(() => setupApp(dialect, { billing: catalog('absent'), ...setup }), /"absent" is not a store/)
      for (const bad of ['has space', '', 42]) {
        const config = catalog()
        ;(config.entitlements as any).cacheStore = bad
        assert.throws(() => normalizeConfig(config), /"entitlements\.cacheStore"/)
      }
    })
  })
}

