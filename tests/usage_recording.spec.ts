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
      assert.equal(await meter.total(hour, hour.plus({ hours: 1 })), 12.5)
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
