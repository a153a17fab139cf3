import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { DIALECTS, setupApp } from './helpers.ts'
import { User } from './fixtures/user.ts'
import UsageEvent from '../src/models/usage_event.ts'
import UsageRollup from '../src/models/usage_rollup.ts'
import type { UsageValidationException } from '../src/usage/usage_recorder.ts'

for (const dialect of DIALECTS) {
  test.group(`usage recording [${dialect}]`, (group) => {
    group.tap((t) => t.timeout(60_000))

    test('record() counts once per idempotency key and folds events into hourly rollups', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'u@example.com', name: null })
      const meter = billing.for(user).usage('api_calls')
      const hour = DateTime.utc().minus({ hours: 2 }).startOf('hour')
      assert.equal(await meter.record(3, { idempotencyKey: 'a', at: hour.plus({ minutes: 5 }) }), 'recorded')
      assert.equal(await meter.record(3, { idempotencyKey: 'a', at: hour.plus({ minutes: 5 }) }), 'duplicate')
      assert.equal(await meter.record('2.5', { idempotencyKey: 'b', at: hour.plus({ minutes: 50 }), properties: { path: '/x', note: 'say "hi" \\ {a,b} NULL' } }), 'recorded')
      assert.equal(await meter.record(7, { idempotencyKey: 'c', at: hour.plus({ minutes: 20 }) }), 'recorded')

      const rollup = await UsageRollup.query().firstOrFail()
      assert.equal(rollup.bucket.toISO(), hour.toISO())
      assert.equal(rollup.sum, '12.5')
      assert.equal(rollup.count, 3)
      assert.equal(rollup.max, '7')
      assert.equal(rollup.last, '2.5', 'last follows the latest occurrence, not the latest arrival')
      assert.strictEqual(await meter.total(hour, hour.plus({ hours: 1 })), '12.5')
      assert.lengthOf(await UsageEvent.all(), 3)
      assert.deepEqual((await UsageEvent.findByOrFail('idempotency_key', 'b')).properties, { path: '/x', note: 'say "hi" \\ {a,b} NULL' })
    })

    test('a batch with one bad item stores nothing and names every bad field', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'b@example.com', name: null })
      const customerId = (await billing.for(user).customer()).id
      const now = DateTime.utc()
      const error = (await billing.usage
        .recordMany([
          { customerId, meter: 'api_calls', quantity: 1, idempotencyKey: 'ok-1' },
          { customerId, meter: 'storage', quantity: -1, idempotencyKey: '' },
          { customerId: 999999, meter: 'api_calls', quantity: 'lots' as any, idempotencyKey: 'x', at: now.minus({ days: 40 }) },
          { customerId, meter: 'api_calls', quantity: 1, idempotencyKey: 'y', at: now.plus({ minutes: 10 }).toISO()!, properties: { blob: 'x'.repeat(5000) } },
        ])
        .catch((reason) => reason)) as UsageValidationException
      assert.equal(error.code, 'E_BILLING_INVALID_USAGE')
      assert.equal(error.status, 422)
      assert.deepEqual(
        error.errors.map((item) => [item.index, item.field]),
        [
          [1, 'meter'],
          [1, 'quantity'],
          [1, 'idempotencyKey'],
          [2, 'customerId'],
          [2, 'quantity'],
          [2, 'at'],
          [3, 'at'],
          [3, 'properties'],
        ]
      )
      assert.lengthOf(await UsageEvent.all(), 0)
      assert.lengthOf(await UsageRollup.all(), 0)
    })

    test('duplicates in one batch and across batches are acknowledged, not counted', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'd@example.com', name: null })
      const customerId = (await billing.for(user).customer()).id
      const first = await billing.usage.recordMany([
        { customerId, meter: 'api_calls', quantity: 1, idempotencyKey: 'k1' },
        { customerId, meter: 'api_calls', quantity: 1, idempotencyKey: 'k1' },
        { customerId, meter: 'api_calls', quantity: 1, idempotencyKey: 'k2' },
      ])
      assert.deepEqual(first.map((result) => result.status), ['recorded', 'duplicate', 'recorded'])
      const second = await billing.usage.recordMany([
        { customerId, meter: 'api_calls', quantity: 1, idempotencyKey: 'k2' },
        { customerId, meter: 'api_calls', quantity: 1, idempotencyKey: 'k3' },
      ])
      assert.deepEqual(second.map((result) => result.status), ['duplicate', 'recorded'])
      assert.equal((await UsageRollup.query().firstOrFail()).count, 3)
    })

    test('concurrent recorders with the same keys count once', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'c@example.com', name: null })
      const customerId = (await billing.for(user).customer()).id
      const batch = Array.from({ length: 20 }, (_, index) => ({ customerId, meter: 'api_calls', quantity: 1, idempotencyKey: `key-${index}` }))
      /**
       * Each recorder sends the same keys in its own order
       */
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, worker) => billing.usage.recordMany(worker % 2 ? [...batch].reverse() : batch))
      )
      const recorded = results.flat().filter((result) => result.status === 'recorded').length
      assert.equal(recorded, 20)
      assert.lengthOf(await UsageEvent.all(), 20)
      const rollups = await UsageRollup.all()
      assert.equal(rollups.reduce((sum, rollup) => sum + Number(rollup.sum), 0), 20)
      assert.equal(rollups.reduce((sum, rollup) => sum + rollup.count, 0), 20)
    })
  })
}

for (const dialect of DIALECTS) {
  test.group(`usage aggregations [${dialect}]`, () => {
    test('sum, count, max, last and unique_count over any range', async ({ assert }) => {
      const { testCatalog } = await import('./fixtures/catalog.ts')
      const catalog = testCatalog({ usage: { maxBatch: 50 } })
      catalog.meters = {
        ...catalog.meters,
        requests: { name: 'Requests', aggregation: 'count' },
        storage: { name: 'Peak storage', aggregation: 'max' },
        seats_now: { name: 'Seats', aggregation: 'last' },
        active_users: { name: 'Active users', aggregation: 'unique_count', uniqueProperty: 'user_id' },
      }
      const { billing } = await setupApp(dialect, { billing: catalog })
      const user = await User.create({ email: 'agg@example.com', name: null })
      const customerId = (await billing.for(user).customer()).id
      const t = DateTime.utc().minus({ hours: 5 }).startOf('hour')
      const at = (minutes: number) => t.plus({ minutes })
      await billing.usage.recordMany([
        { customerId, meter: 'api_calls', quantity: '1.5', idempotencyKey: 's1', at: at(1) },
        { customerId, meter: 'api_calls', quantity: 2, idempotencyKey: 's2', at: at(70) },
        { customerId, meter: 'requests', quantity: 5, idempotencyKey: 'c1', at: at(2) },
        { customerId, meter: 'requests', quantity: 9, idempotencyKey: 'c2', at: at(90) },
        { customerId, meter: 'storage', quantity: 40, idempotencyKey: 'm1', at: at(3) },
        { customerId, meter: 'storage', quantity: 25, idempotencyKey: 'm2', at: at(100) },
        { customerId, meter: 'seats_now', quantity: 8, idempotencyKey: 'l2', at: at(120) },
        { customerId, meter: 'seats_now', quantity: 3, idempotencyKey: 'l1', at: at(10) },
        { customerId, meter: 'active_users', quantity: 1, idempotencyKey: 'u1', at: at(5), properties: { user_id: 'a' } },
        { customerId, meter: 'active_users', quantity: 1, idempotencyKey: 'u2', at: at(65), properties: { user_id: 'b' } },
        { customerId, meter: 'active_users', quantity: 1, idempotencyKey: 'u3', at: at(125), properties: { user_id: 'a' } },
      ])
      const range = [t, t.plus({ hours: 3 })] as const
      const total = (meter: string) => billing.for(user).usage(meter).total(...range)
      assert.strictEqual(await total('api_calls'), '3.5')
      assert.strictEqual(await total('requests'), '2')
      assert.strictEqual(await total('storage'), '40')
      assert.strictEqual(await total('seats_now'), '8', 'last by occurrence, not by arrival')
      assert.strictEqual(await total('active_users'), '2')
      assert.strictEqual(await billing.for(user).usage('active_users').total(t.plus({ hours: 1 }), t.plus({ hours: 3 })), '2')
      assert.strictEqual(await billing.for(user).usage('active_users').total(t.plus({ hours: 2 }), t.plus({ hours: 3 })), '1')

      const tooMany = Array.from({ length: 51 }, (_, index) => ({ customerId, meter: 'api_calls', quantity: 1, idempotencyKey: `b${index}` }))
      const error = await billing.usage.recordMany(tooMany).catch((reason) => reason)
      assert.equal(error.status, 413)
      assert.equal(error.code, 'E_BILLING_INVALID_USAGE')
    })
  })
}
