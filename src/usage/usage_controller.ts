/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import type { HttpContext } from '@adonisjs/core/http'
import Customer from '../models/customer.ts'
import { fromDbDateTime, toDbDateTime } from '../models/columns.ts'
import { InvalidArgumentException, UnauthenticatedException } from '../errors.ts'
import { UsageValidationException, type UsageRecordInput } from './usage_recorder.ts'

async function readNdjson(ctx: HttpContext): Promise<unknown[]> {
  let text = ctx.request.raw()
  if (text === null || text === undefined) {
    const chunks: Buffer[] = []
    for await (const chunk of ctx.request.request) chunks.push(chunk as Buffer)
    text = Buffer.concat(chunks).toString('utf8')
  }
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line, index) => {
      try {
        return JSON.parse(line)
      } catch {
        const error = new UsageValidationException(`Line ${index + 1} is not JSON`)
        error.errors = [{ index, field: 'record', message: 'not JSON' }]
        error.details = { errors: error.errors }
        throw error
      }
    })
}

/**
 * `POST <prefix>/v1/usage`: usage from other services, as a JSON array or NDJSON
 * (`application/x-ndjson`), at most `usage.maxBatch` records (413 beyond); each names its customer by `customerId` or by
 * `billableType` + `billableId`. All or nothing: 200 with per-item results, or 422 listing every bad
 * item (nothing stored).
 */
export async function recordUsage(ctx: HttpContext) {
  const billing = await ctx.containerResolver.make('billing.manager')
  const contentType = ctx.request.header('content-type') ?? ''
  const items = contentType.includes('ndjson') ? await readNdjson(ctx) : ctx.request.body()
  if (!Array.isArray(items)) throw new InvalidArgumentException('Send a JSON array of usage records (or NDJSON)')

  /**
   * Resolve billable references to customer ids in one query
   */
  const references = items.filter((item: any) => item && item.customerId === undefined && item.billableType && item.billableId)
  const byIdentity = new Map<string, number>()
  if (references.length) {
    const rows = await Customer.query({ client: billing.db() }).where((query) => {
      for (const item of references as any[]) query.orWhere((q) => q.where('billable_type', String(item.billableType)).where('billable_id', String(item.billableId)))
    })
    for (const row of rows) byIdentity.set(`${row.billableType}:${row.billableId}`, row.id)
  }
  const records: UsageRecordInput[] = items.map((item: any) => ({
    customerId: item?.customerId ?? byIdentity.get(`${item?.billableType}:${item?.billableId}`) ?? -1,
    meter: item?.meter,
    quantity: item?.quantity,
    idempotencyKey: item?.idempotencyKey,
    at: item?.timestamp ?? item?.at,
    properties: item?.properties,
  }))
  const results = await billing.usage.recordMany(records)
  return ctx.response.ok({ results })
}

/**
 * `GET <prefix>/v1/me/usage?meter=&from=&to=&granularity=hour|day`: the numbers behind an invoice for
 * the authenticated billable, from the hourly rollups (UTC buckets).
 */
export async function myUsage(ctx: HttpContext) {
  const billing = await ctx.containerResolver.make('billing.manager')
  const user = (ctx as any).auth?.user
  if (!user) throw new UnauthenticatedException('Sign in to see your usage')
  const meter = ctx.request.input('meter')
  if (typeof meter !== 'string' || !(meter in billing.config.meters)) throw new InvalidArgumentException(`Unknown meter ${JSON.stringify(meter)}`)
  const granularity = ctx.request.input('granularity', 'day')
  if (granularity !== 'hour' && granularity !== 'day') throw new InvalidArgumentException('granularity must be hour or day')
  const to = ctx.request.input('to') ? DateTime.fromISO(ctx.request.input('to'), { zone: 'utc' }) : DateTime.utc()
  const from = ctx.request.input('from') ? DateTime.fromISO(ctx.request.input('from'), { zone: 'utc' }) : to.minus({ days: 30 })
  if (!from.isValid || !to.isValid || from >= to) throw new InvalidArgumentException('from and to must be ISO dates with from < to')
  if (to.diff(from, 'days').days > 400) throw new InvalidArgumentException('At most 400 days per request')

  const customer = await billing.for(user).find()
  const rows = customer
    ? await billing
        .db()
        .from('billing_usage_rollups')
        .where('customer_id', customer.id)
        .where('meter', meter)
        .where('bucket', '>=', toDbDateTime(from.startOf('hour')))
        .where('bucket', '<', toDbDateTime(to))
        .orderBy('bucket')
        .select('bucket', 'sum', 'count')
    : []
  const buckets = new Map<string, { quantity: number; events: number }>()
  for (const row of rows) {
    const at = fromDbDateTime(row.bucket)!.startOf(granularity)
    const key = at.toISO()!
    const bucket = buckets.get(key) ?? { quantity: 0, events: 0 }
    bucket.quantity += Number(row.sum)
    bucket.events += Number(row.count)
    buckets.set(key, bucket)
  }
  const series = [...buckets.entries()].map(([start, bucket]) => ({ start, ...bucket }))
  return ctx.response.ok({
    meter,
    granularity,
    from: from.toISO(),
    to: to.toISO(),
    total: series.reduce((sum, bucket) => sum + bucket.quantity, 0),
    series,
  })
}
