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
