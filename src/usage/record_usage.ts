/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import type { QueryClientContract, TransactionClientContract } from '@adonisjs/lucid/types/database'
import { toDbDateTime } from '../models/columns.ts'

/**
 * Records one usage event inside `trx` and folds it into the hourly rollup in the same transaction.
 * Idempotent on (customer, meter, idempotency key): a repeat records nothing and returns false.
 */
export async function recordUsageEvent(
  trx: TransactionClientContract,
  input: { customerId: number; meter: string; quantity: number | string; idempotencyKey: string; occurredAt: DateTime; properties?: Record<string, unknown> | null }
): Promise<boolean> {
  const now = toDbDateTime(DateTime.utc())
  const inserted = await trx
    .knexQuery()
    .table('billing_usage_events')
    .insert({
      customer_id: input.customerId,
      meter: input.meter,
      quantity: String(input.quantity),
      occurred_at: toDbDateTime(input.occurredAt),
      idempotency_key: input.idempotencyKey,
      properties: input.properties ? JSON.stringify(input.properties) : null,
      created_at: now,
    })
    .onConflict(['customer_id', 'meter', 'idempotency_key'])
    .ignore()
    .returning('id')
  if (inserted.length === 0) return false

  const bucket = toDbDateTime(input.occurredAt.toUTC().startOf('hour'))
  const greatest = trx.dialect.name === 'postgres' ? 'greatest' : 'max'
  await trx.rawQuery(
    `insert into billing_usage_rollups (customer_id, meter, bucket, sum, count, max, last, last_at, updated_at) values (?, ?, ?, ?, 1, ?, ?, ?, ?) ` +
      `on conflict (customer_id, meter, bucket) do update set sum = billing_usage_rollups.sum + excluded.sum, count = billing_usage_rollups.count + 1, ` +
      `max = ${greatest}(coalesce(billing_usage_rollups.max, excluded.max), excluded.max), ` +
      /**
       * `last` follows the latest occurrence, not the latest arrival (late events do not overwrite it)
       */
      `last = case when billing_usage_rollups.last_at is null or excluded.last_at >= billing_usage_rollups.last_at then excluded.last else billing_usage_rollups.last end, ` +
      `last_at = case when billing_usage_rollups.last_at is null or excluded.last_at >= billing_usage_rollups.last_at then excluded.last_at else billing_usage_rollups.last_at end, ` +
      `updated_at = excluded.updated_at`,
    [input.customerId, input.meter, bucket, String(input.quantity), String(input.quantity), String(input.quantity), toDbDateTime(input.occurredAt), now]
  )
  return true
}

/**
 * Total of a meter's rollups for a customer over [from, to).
 */
export async function meterTotal(client: { from: TransactionClientContract['from'] }, customerId: number, meter: string, from: DateTime, to: DateTime): Promise<number> {
  const row = await client
    .from('billing_usage_rollups')
    .where('customer_id', customerId)
    .where('meter', meter)
    .where('bucket', '>=', toDbDateTime(from.toUTC().startOf('hour')))
    .where('bucket', '<', toDbDateTime(to))
    .sum('sum as total')
    .first()
  return Number(row?.total ?? 0)
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
   * Fold the recorded rows into their hourly rollups, aggregated first (one row per rollup)
   */
  const rollups = new Map<string, { customerId: number; meter: string; bucket: string; sum: bigint; count: number; max: number; last: string; lastAt: number }>()
  const scale = 10n ** 12n
  const fixed = (text: string) => {
    const [integer, fraction = ''] = text.split('.')
    return BigInt(integer) * scale + BigInt(fraction.padEnd(12, '0'))
  }
  rows.forEach((row, index) => {
    if (!recorded[index]) return
    const bucket = iso(millis[index] - (millis[index] % 3_600_000))
    const key = `${row.customerId}\u0000${row.meter}\u0000${bucket}`
    const current = rollups.get(key)
    const value = Number(row.quantity)
    if (!current) {
      rollups.set(key, { customerId: row.customerId, meter: row.meter, bucket, sum: fixed(row.quantity), count: 1, max: value, last: row.quantity, lastAt: millis[index] })
      return
    }
    current.sum += fixed(row.quantity)
    current.count++
    current.max = Math.max(current.max, value)
    if (millis[index] >= current.lastAt) {
      current.last = row.quantity
      current.lastAt = millis[index]
    }
  })
  const text = (value: bigint) => {
    const fraction = (value % scale).toString().padStart(12, '0').replace(/0+$/, '')
    return fraction ? `${value / scale}.${fraction}` : String(value / scale)
  }
  const list = [...rollups.values()]
  const greatest = trx.dialect.name === 'postgres' ? 'greatest' : 'max'
  for (let start = 0; start < list.length; start += 500) {
    const chunk = list.slice(start, start + 500)
    await trx.rawQuery(
      `insert into billing_usage_rollups (customer_id, meter, bucket, sum, count, max, last, last_at, updated_at) values ` +
        chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ') +
        ` on conflict (customer_id, meter, bucket) do update set sum = billing_usage_rollups.sum + excluded.sum, count = billing_usage_rollups.count + excluded.count, ` +
        `max = ${greatest}(coalesce(billing_usage_rollups.max, excluded.max), excluded.max), ` +
        `last = case when billing_usage_rollups.last_at is null or excluded.last_at >= billing_usage_rollups.last_at then excluded.last else billing_usage_rollups.last end, ` +
        `last_at = case when billing_usage_rollups.last_at is null or excluded.last_at >= billing_usage_rollups.last_at then excluded.last_at else billing_usage_rollups.last_at end, ` +
        `updated_at = excluded.updated_at`,
      chunk.flatMap((rollup) => [rollup.customerId, rollup.meter, rollup.bucket, text(rollup.sum), rollup.count, String(rollup.max), rollup.last, iso(rollup.lastAt), now])
    )
  }
  return { recorded, conflicts }
}

/**
 * The value of a meter for a customer over [from, to), by the meter's aggregation: `sum`, `count`
 * (events), `max`, `last` (latest occurrence) from the hourly rollups, and `unique_count` (distinct
 * values of the meter's `uniqueProperty`) from the events themselves.
 */
export async function meterValue(
  client: QueryClientContract,
  meter: { key: string; aggregation: string; uniqueProperty?: string },
  customerId: number,
  from: DateTime,
  to: DateTime
): Promise<number> {
  const rollups = () =>
    client
      .from('billing_usage_rollups')
      .where('customer_id', customerId)
      .where('meter', meter.key)
      .where('bucket', '>=', toDbDateTime(from.toUTC().startOf('hour')))
      .where('bucket', '<', toDbDateTime(to))
  switch (meter.aggregation) {
    case 'count':
      return Number((await rollups().sum('count as value').first())?.value ?? 0)
    case 'max':
      return Number((await rollups().max('max as value').first())?.value ?? 0)
    case 'last':
      return Number((await rollups().orderBy('last_at', 'desc').select('last').first())?.last ?? 0)
    case 'unique_count': {
      const extract = client.dialect.name === 'postgres' ? '(properties::jsonb ->> ?)' : "json_extract(properties, '$.' || ?)"
      const row = await client
        .from('billing_usage_events')
        .where('customer_id', customerId)
        .where('meter', meter.key)
        .where('occurred_at', '>=', toDbDateTime(from))
        .where('occurred_at', '<', toDbDateTime(to))
        .select(client.raw(`count(distinct ${extract}) as value`, [meter.uniqueProperty ?? '']))
        .first()
      return Number(row?.value ?? 0)
    }
    default:
      return meterTotal(client, customerId, meter.key, from, to)
  }
}
