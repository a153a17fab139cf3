/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { toDbDateTime } from '../models/columns.ts'
import { type Fixed, fixedOf, fixedText, maxFixed } from './decimal.ts'

/**
 * Records one usage event inside `trx` and folds it into the hourly rollup in the same transaction.
 * Idempotent on (customer, meter, idempotency key): a repeat records nothing and returns false.
 */
export async function recordUsageEvent(
  trx: TransactionClientContract,
  input: { customerId: number; meter: string; quantity: string; idempotencyKey: string; occurredAt: DateTime; properties?: Record<string, unknown> | null }
): Promise<boolean> {
  const { recorded } = await recordUsageBatch(trx, [input])
  return recorded[0]
}

/**
 * A PostgreSQL array literal (`{"a","b",NULL}`), passed as one text parameter (the query builder
 * would expand a JS array into a list of placeholders).
 */
function pgArray(values: unknown[]): string {
  return `{${values
    .map((value) => (value === null || value === undefined ? 'NULL' : `"${String(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`))
    .join(',')}}`
}

/**
 * One event of a batch.
 */
export interface UsageEventRow {
  customerId: number
  meter: string
  quantity: string
  idempotencyKey: string
  occurredAt: DateTime
  properties?: Record<string, unknown> | null
  /** sha256 of what the record says (meter, quantity, timestamp, properties): a repeat of its key must say the same */
  payloadHash?: string | null
  /** Who recorded it (`user:12`, `service`, `cli:alice`), for the record */
  actor?: string | null
}

/**
 * Records a batch inside `trx` with one multi-row insert per 1000 events
 * (`ON CONFLICT DO NOTHING RETURNING`) and one multi-row rollup upsert with the batch pre-aggregated
 * per (customer, meter, hour). Returns, per input row, whether it was recorded (the first occurrence of
 * a key in the batch wins; repeats and keys seen before are duplicates).
 */
export async function recordUsageBatch(trx: TransactionClientContract, rows: UsageEventRow[]): Promise<{ recorded: boolean[]; conflicts: number[] }> {
  const now = toDbDateTime(DateTime.utc())
  /**
   * Hot loop: plain Date arithmetic (same ISO-8601 UTC text as toDbDateTime) instead of luxon
   */
  const iso = (ms: number) => new Date(ms).toISOString()
  const millis = rows.map((row) => row.occurredAt.toMillis())
  const inserted = new Set<string>()
  const keyOf = (row: { customer_id: number | string; meter: string; idempotency_key: string }) => `${row.customer_id}\u0000${row.meter}\u0000${row.idempotency_key}`
  for (let start = 0; start < rows.length; start += 1000) {
    const chunk = rows.slice(start, start + 1000)
    let result: any
    if (trx.dialect.name === 'postgres') {
      /**
       * PostgreSQL: nine array parameters and unnest() instead of 9000 placeholders: far less to
       * parse and bind, the closest a checked, idempotent insert gets to COPY
       */
      const columns: unknown[][] = [[], [], [], [], [], [], [], [], []]
      chunk.forEach((row, offset) => {
        columns[0].push(row.customerId)
        columns[1].push(row.meter)
        columns[2].push(row.quantity)
        columns[3].push(iso(millis[start + offset]))
        columns[4].push(row.idempotencyKey)
        columns[5].push(row.properties ? JSON.stringify(row.properties) : null)
        columns[6].push(now)
        columns[7].push(row.payloadHash ?? null)
        columns[8].push(row.actor ?? null)
      })
      result = await trx.rawQuery(
        `insert into billing_usage_events (customer_id, meter, quantity, occurred_at, idempotency_key, properties, created_at, payload_hash, actor) ` +
          `select * from unnest(?::int[], ?::text[], ?::numeric[], ?::timestamptz[], ?::text[], ?::json[], ?::timestamptz[], ?::text[], ?::text[]) ` +
          `on conflict (customer_id, meter, idempotency_key) do nothing returning customer_id, meter, idempotency_key`,
        columns.map(pgArray)
      )
    } else {
      const bindings: unknown[] = []
      const values = chunk.map((row, offset) => {
        bindings.push(
          row.customerId,
          row.meter,
          row.quantity,
          iso(millis[start + offset]),
          row.idempotencyKey,
          row.properties ? JSON.stringify(row.properties) : null,
          now,
          row.payloadHash ?? null,
          row.actor ?? null
        )
        return '(?, ?, ?, ?, ?, ?, ?, ?, ?)'
      })
      result = await trx.rawQuery(
        `insert into billing_usage_events (customer_id, meter, quantity, occurred_at, idempotency_key, properties, created_at, payload_hash, actor) values ${values.join(', ')} ` +
          `on conflict (customer_id, meter, idempotency_key) do nothing returning customer_id, meter, idempotency_key`,
        bindings as any[]
      )
    }
    const returned = Array.isArray(result) ? result : result.rows
    for (const row of returned as any[]) inserted.add(keyOf(row))
  }

  /**
   * Which input rows were recorded: the first occurrence of each inserted key
   */
  const claimed = new Map<string, string | null>()
  const conflicts: number[] = []
  const earlier: number[] = []
  const recorded = rows.map((row, index) => {
    const key = keyOf({ customer_id: row.customerId, meter: row.meter, idempotency_key: row.idempotencyKey })
    if (claimed.has(key)) {
      /**
       * A repeat inside the batch must say what its first occurrence said
       */
      const first = claimed.get(key)
      if (first && row.payloadHash && first !== row.payloadHash) conflicts.push(index)
      return false
    }
    if (!inserted.has(key)) {
      earlier.push(index)
      return false
    }
    claimed.set(key, row.payloadHash ?? null)
    return true
  })

  /**
   * Keys recorded before this batch: a repeat must carry the same payload (Stripe's rule), else it is
   * a conflict, not a duplicate. Read only when there are such repeats.
   */
  for (let start = 0; start < earlier.length; start += 500) {
    const chunk = earlier.slice(start, start + 500)
    const stored = await trx
      .from('billing_usage_events')
      .where((query) => {
        for (const index of chunk) {
          query.orWhere((q) => q.where('customer_id', rows[index].customerId).where('meter', rows[index].meter).where('idempotency_key', rows[index].idempotencyKey))
        }
      })
      .select('customer_id', 'meter', 'idempotency_key', 'payload_hash')
    const hashes = new Map(stored.map((row: any) => [keyOf(row), row.payload_hash as string | null]))
    for (const index of chunk) {
      const row = rows[index]
      const hash = hashes.get(keyOf({ customer_id: row.customerId, meter: row.meter, idempotency_key: row.idempotencyKey }))
      if (hash && row.payloadHash && hash !== row.payloadHash) conflicts.push(index)
      else claimed.set(keyOf({ customer_id: row.customerId, meter: row.meter, idempotency_key: row.idempotencyKey }), hash ?? null)
    }
  }
  if (conflicts.length) return { recorded, conflicts }

  /**
   * Fold the recorded rows into their hourly rollups, aggregated first (one row per rollup), exactly
   */
  const rollups = new Map<string, RollupDelta>()
  rows.forEach((row, index) => {
    if (!recorded[index]) return
    const bucket = iso(millis[index] - (millis[index] % 3_600_000))
    const key = `${row.customerId}\u0000${row.meter}\u0000${bucket}`
    const value = fixedOf(row.quantity)
    const current = rollups.get(key)
    if (!current) {
      rollups.set(key, { customerId: row.customerId, meter: row.meter, bucket, sum: value, count: 1, max: value, last: value, lastAt: millis[index] })
      return
    }
    current.sum += value
    current.count++
    current.max = maxFixed(current.max, value)
    if (millis[index] >= current.lastAt) {
      current.last = value
      current.lastAt = millis[index]
    }
  })
  const list = [...rollups.values()]
  if (trx.dialect.name === 'postgres') await upsertRollupsPg(trx, list, now)
  else await upsertRollupsMerged(trx, list, now)
  return { recorded, conflicts }
}

/**
 * One batch's contribution to an hourly rollup.
 */
interface RollupDelta {
  customerId: number
  meter: string
  bucket: string
  sum: Fixed
  count: number
  max: Fixed
  last: Fixed
  lastAt: number
}

/**
 * PostgreSQL: numeric arithmetic is exact, so the rollup is folded in SQL (`sum + excluded.sum`),
 * atomically under concurrent writers.
 */
async function upsertRollupsPg(trx: TransactionClientContract, list: RollupDelta[], now: string) {
  for (let start = 0; start < list.length; start += 500) {
    const chunk = list.slice(start, start + 500)
    await trx.rawQuery(
      `insert into billing_usage_rollups (customer_id, meter, bucket, sum, count, max, last, last_at, updated_at) values ` +
        chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ') +
        ` on conflict (customer_id, meter, bucket) do update set sum = billing_usage_rollups.sum + excluded.sum, count = billing_usage_rollups.count + excluded.count, ` +
        `max = greatest(coalesce(billing_usage_rollups.max, excluded.max), excluded.max), ` +
        /**
         * `last` follows the latest occurrence, not the latest arrival (late events do not overwrite it)
         */
        `last = case when billing_usage_rollups.last_at is null or excluded.last_at >= billing_usage_rollups.last_at then excluded.last else billing_usage_rollups.last end, ` +
        `last_at = case when billing_usage_rollups.last_at is null or excluded.last_at >= billing_usage_rollups.last_at then excluded.last_at else billing_usage_rollups.last_at end, ` +
        `updated_at = excluded.updated_at`,
      chunk.flatMap((rollup) => [rollup.customerId, rollup.meter, rollup.bucket, fixedText(rollup.sum), rollup.count, fixedText(rollup.max), fixedText(rollup.last), new Date(rollup.lastAt).toISOString(), now])
    )
  }
}

/**
 * SQLite keeps quantities as decimal text (its numeric arithmetic is floating point), so the rollups
 * are read, folded here with exact decimals and written back. Safe under concurrent writers: the
 * events were inserted first in this transaction, so it holds SQLite's single write lock and the
 * rows it reads cannot change before it writes them.
 */
async function upsertRollupsMerged(trx: TransactionClientContract, list: RollupDelta[], now: string) {
  for (let start = 0; start < list.length; start += 300) {
    const chunk = list.slice(start, start + 300)
    const existing = await trx
      .from('billing_usage_rollups')
      .where((query) => {
        for (const rollup of chunk) query.orWhere((q) => q.where('customer_id', rollup.customerId).where('meter', rollup.meter).where('bucket', rollup.bucket))
      })
      .select('customer_id', 'meter', 'bucket', 'sum', 'count', 'max', 'last', 'last_at')
    const stored = new Map(existing.map((row: any) => [`${row.customer_id}\u0000${row.meter}\u0000${new Date(row.bucket).toISOString()}`, row]))
    const values = chunk.map((rollup) => {
      const row = stored.get(`${rollup.customerId}\u0000${rollup.meter}\u0000${rollup.bucket}`)
      if (!row) return rollup
      const lastAt = row.last_at ? Date.parse(row.last_at) : null
      const keepLast = lastAt !== null && lastAt > rollup.lastAt
      return {
        ...rollup,
        sum: fixedOf(row.sum, 'sum') + rollup.sum,
        count: Number(row.count) + rollup.count,
        max: row.max === null ? rollup.max : maxFixed(fixedOf(row.max, 'max'), rollup.max),
        last: keepLast ? fixedOf(row.last, 'last') : rollup.last,
        lastAt: keepLast ? lastAt : rollup.lastAt,
      }
    })
    await trx.rawQuery(
      `insert into billing_usage_rollups (customer_id, meter, bucket, sum, count, max, last, last_at, updated_at) values ` +
        values.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ') +
        ` on conflict (customer_id, meter, bucket) do update set sum = excluded.sum, count = excluded.count, max = excluded.max, ` +
        `last = excluded.last, last_at = excluded.last_at, updated_at = excluded.updated_at`,
      values.flatMap((rollup) => [rollup.customerId, rollup.meter, rollup.bucket, fixedText(rollup.sum), rollup.count, fixedText(rollup.max), fixedText(rollup.last), new Date(rollup.lastAt).toISOString(), now])
    )
  }
}
