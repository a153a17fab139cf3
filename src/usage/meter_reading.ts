/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import type { QueryClientContract } from '@adonisjs/lucid/types/database'
import { fromDbDateTime, toDbDateTime } from '../models/columns.ts'
import { type Fixed, SCALE, fixedOf, maxFixed } from './decimal.ts'

/**
 * What a meter's value is read from: its key, aggregation and (unique_count) the property counted.
 */
export interface MeterRef {
  key: string
  aggregation: string
  uniqueProperty?: string
}

type Client = Pick<QueryClientContract, 'from' | 'raw' | 'dialect'>

/**
 * An exact `sum()` of a quantity column as `integer:fraction` text. PostgreSQL's numeric is exact;
 * SQLite keeps quantities as decimal text and would sum them as floats, so its integer and fractional
 * parts are summed separately as 64-bit integers.
 */
function exactSumSql(client: Client, column: string): string {
  if (client.dialect.name === 'postgres') return `coalesce(sum(${column}), 0)::text`
  const dot = `instr(${column}, '.')`
  const integer = `cast(case when ${dot} > 0 then substr(${column}, 1, ${dot} - 1) else ${column} end as integer)`
  const fraction = `case when ${dot} > 0 then cast(substr(substr(${column}, ${dot} + 1) || '000000000000', 1, 12) as integer) else 0 end`
  return `cast(coalesce(sum(${integer}), 0) as text) || ':' || cast(coalesce(sum(${fraction}), 0) as text)`
}

function readExactSum(value: unknown): Fixed {
  const text = String(value ?? '0')
  const split = text.indexOf(':')
  if (split === -1) return fixedOf(text)
  return BigInt(text.slice(0, split)) * SCALE + BigInt(text.slice(split + 1))
}

/**
 * [from, to) cut where hourly rollups can answer: whole hours inside the range come from
 * `billing_usage_rollups`; the partial hours at either end (a period that starts at 10:30) come from
 * the events themselves, by their own timestamps, so no hour is counted in two periods.
 */
function split(from: DateTime, to: DateTime) {
  const start = from.toUTC()
  const end = to.toUTC()
  const firstHour = start.startOf('hour').equals(start) ? start : start.startOf('hour').plus({ hours: 1 })
  const lastHour = end.startOf('hour')
  if (firstHour >= lastHour) return { hours: null, edges: [[start, end]] as Array<[DateTime, DateTime]> }
  const edges: Array<[DateTime, DateTime]> = []
  if (start < firstHour) edges.push([start, firstHour])
  if (lastHour < end) edges.push([lastHour, end])
  return { hours: [firstHour, lastHour] as [DateTime, DateTime], edges }
}

/**
 * Exact sum, count, max and latest value of a meter for a customer over [from, to).
 */
export interface UsageAggregate {
  sum: Fixed
  count: bigint
  max: Fixed | null
  last: Fixed | null
  lastAt: DateTime | null
}

/**
 * Reads what `aggregation` needs of a meter over [from, to) (all of it when not given).
 */
export async function usageAggregate(
  client: Client,
  customerId: number,
  meter: string,
  from: DateTime,
  to: DateTime,
  need: { sum?: boolean; count?: boolean; max?: boolean; last?: boolean } = { sum: true, count: true, max: true, last: true }
): Promise<UsageAggregate> {
  const result: UsageAggregate = { sum: 0n, count: 0n, max: null, last: null, lastAt: null }
  if (to <= from) return result
  const { hours, edges } = split(from, to)
  const consider = (value: Fixed | null, at: DateTime | null) => {
    if (value === null) return
    result.max = result.max === null ? value : maxFixed(result.max, value)
    if (at && (result.lastAt === null || at >= result.lastAt)) {
      result.last = value
      result.lastAt = at
    }
  }
  if (hours) {
    const rollups = () =>
      client
        .from('billing_usage_rollups')
        .where('customer_id', customerId)
        .where('meter', meter)
        .where('bucket', '>=', toDbDateTime(hours[0]))
        .where('bucket', '<', toDbDateTime(hours[1]))
    if (need.sum || need.count) {
      const row = await rollups()
        .select(client.raw(`${exactSumSql(client, 'sum')} as total, coalesce(sum(count), 0) as events`))
        .first()
      result.sum += readExactSum(row?.total)
      result.count += BigInt(row?.events ?? 0)
    }
    if (need.max) {
      for (const row of await rollups().whereNotNull('max').select('max')) consider(fixedOf(row.max, 'max'), null)
    }
    if (need.last) {
      const row = await rollups().whereNotNull('last_at').orderBy('last_at', 'desc').select('last', 'last_at').first()
      if (row) consider(fixedOf(row.last, 'last'), fromDbDateTime(row.last_at))
    }
  }
  if (edges.length) {
    const events = () =>
      client
        .from('billing_usage_events')
        .where('customer_id', customerId)
        .where('meter', meter)
        .where((query) => {
          for (const [start, end] of edges) query.orWhere((range) => range.where('occurred_at', '>=', toDbDateTime(start)).where('occurred_at', '<', toDbDateTime(end)))
        })
    if (need.sum || need.count) {
      const row = await events()
        .select(client.raw(`${exactSumSql(client, 'quantity')} as total, count(*) as events`))
        .first()
      result.sum += readExactSum(row?.total)
      result.count += BigInt(row?.events ?? 0)
    }
    if (need.max || need.last) {
      /**
       * Edges are at most two partial hours: their events are few
       */
      const rows = await events().orderBy('occurred_at').orderBy('id').select('quantity', 'occurred_at')
      for (const row of rows) consider(fixedOf(row.quantity), fromDbDateTime(row.occurred_at))
    }
  }
  return result
}

/**
 * The exact value of a meter for a customer over [from, to), by the meter's aggregation: `sum`,
 * `count` (events), `max`, `last` (latest occurrence), and `unique_count` (distinct values of the
 * meter's `uniqueProperty`, from the events).
 */
export async function meterValue(client: Client, meter: MeterRef, customerId: number, from: DateTime, to: DateTime): Promise<Fixed> {
  switch (meter.aggregation) {
    case 'count':
      return (await usageAggregate(client, customerId, meter.key, from, to, { count: true })).count * SCALE
    case 'max':
      return (await usageAggregate(client, customerId, meter.key, from, to, { max: true })).max ?? 0n
    case 'last':
      return (await usageAggregate(client, customerId, meter.key, from, to, { last: true })).last ?? 0n
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
      return BigInt(row?.value ?? 0) * SCALE
    }
    default:
      return (await usageAggregate(client, customerId, meter.key, from, to, { sum: true })).sum
  }
}
