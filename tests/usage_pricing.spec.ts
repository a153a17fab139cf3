import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { priceUsage } from '../src/usage/usage_pricing.ts'
import { setupApp } from './helpers.ts'
import { testCatalog } from './fixtures/catalog.ts'
import { User } from './fixtures/user.ts'
import Subscription from '../src/models/subscription.ts'
import type { ResolvedUsagePrice } from '../src/types.ts'

const base = { meter: 'api_calls', currency: 'usd', lookupKey: 'k', taxBehavior: 'exclusive' as const }

/**
 * [quantity, expected minor units], computed by hand. A quantity of 0 falls in the first tier: a
 * tiered price bills that tier's flat amount with no usage, as Stripe does.
 */
const TABLES: Array<[string, ResolvedUsagePrice, Array<[string | number, number]>]> = [
  [
    'per unit 0.25',
    { ...base, model: 'per_unit', unitAmount: '0.25' },
    [[0, 0], [1, 0], [2, 1], [3, 1], [10, 3], ['2.5', 1], [400, 100]],
  ],
  [
    'package of 1000 at 100, rounded up',
    { ...base, model: 'package', amount: 100, packageSize: 1000, round: 'up' },
    [[0, 0], [1, 100], [1000, 100], [1001, 200], [2000, 200]],
  ],
  [
    'package of 1000 at 100, rounded down',
    { ...base, model: 'package', amount: 100, packageSize: 1000, round: 'down' },
    [[999, 0], [1000, 100], [1999, 100], [2000, 200]],
  ],
  [
    'graduated: 10000 free, then 0.05',
    { ...base, model: 'graduated', tiers: [{ upTo: 10000, unitAmount: '0' }, { upTo: 'inf', unitAmount: '0.05' }] },
    [[0, 0], [10000, 0], [10001, 0], [10010, 1], [10030, 2], [20000, 500]],
  ],
  [
    'graduated with a flat fee: 100 at 10 + 200 flat, then 2.5',
    { ...base, model: 'graduated', tiers: [{ upTo: 100, unitAmount: 10, flatAmount: 200 }, { upTo: 'inf', unitAmount: '2.5' }] },
    [[0, 200], [1, 210], [100, 1200], [101, 1203], [102, 1205]],
  ],
  [
    'volume: up to 100 at 10, up to 1000 at 8 + 500, then 5',
    { ...base, model: 'volume', tiers: [{ upTo: 100, unitAmount: 10 }, { upTo: 1000, unitAmount: 8, flatAmount: 500 }, { upTo: 'inf', unitAmount: 5 }] },
    [[0, 0], [1, 10], [100, 1000], [101, 1308], [1000, 8500], [1001, 5005]],
  ],
  [
    'volume with a first-tier flat fee: 300 + 2 per unit up to 10, then 1',
    { ...base, model: 'volume', tiers: [{ upTo: 10, unitAmount: 2, flatAmount: 300 }, { upTo: 'inf', unitAmount: 1 }] },
    [[0, 300], [1, 302], [10, 320], [11, 11]],
  ],
]

test.group('usage pricing', () => {
  for (const [name, price, rows] of TABLES) {
    test(name, ({ assert }) => {
      for (const [quantity, expected] of rows) {
        assert.equal(priceUsage(price, quantity).amount, expected, `${name} at ${quantity}`)
      }
    })
  }

  test('the breakdown shows each tier; decimals stay exact', ({ assert }) => {
    const price: ResolvedUsagePrice = { ...base, model: 'graduated', tiers: [{ upTo: 100, unitAmount: 10, flatAmount: 200 }, { upTo: 'inf', unitAmount: '2.5' }] }
    assert.deepEqual(priceUsage(price, 101).tiers, [
      { tier: 1, quantity: '100', unitAmount: '10', flatAmount: 200, amount: '1200' },
      { tier: 2, quantity: '1', unitAmount: '2.5', flatAmount: 0, amount: '2.5' },
    ])
    assert.equal(priceUsage({ ...base, model: 'per_unit', unitAmount: '0.1' }, '0.3').tiers[0].amount, '0.03')
    assert.throws(() => priceUsage(price, -1), /non-negative decimal/)
  })

  test('preview() prices this period under the customer plan', async ({ assert }) => {
    const { billing } = await setupApp('sqlite', { billing: testCatalog() })
    const user = await User.create({ email: 'p@example.com', name: null })
    const customer = await billing.for(user).customer()
    const start = DateTime.utc().minus({ days: 2 }).startOf('hour')
    await Subscription.create({ customerId: customer.id, name: 'default', plan: 'pro', status: 'active', cancelAtPeriodEnd: false, currentPeriodStart: start, currentPeriodEnd: start.plus({ days: 30 }) })
    await billing.usage.recordMany([
      { customerId: customer.id, meter: 'api_calls', quantity: 12000, idempotencyKey: 'in-period', at: start.plus({ hours: 1 }) },
      { customerId: customer.id, meter: 'api_calls', quantity: 999, idempotencyKey: 'before-period', at: start.minus({ hours: 2 }) },
    ])
    const preview = await billing.for(user).usage('api_calls').preview()
    assert.deepInclude(preview!, { plan: 'pro', currency: 'usd', quantity: '12000', amount: 100 })
    assert.equal(preview!.periodStart, start.toISO())
    assert.isNull(await billing.for(await User.create({ email: 'none@example.com', name: null })).usage('api_calls').preview())
  })
})
