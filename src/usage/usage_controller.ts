/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { fixedOf, fixedText } from './decimal.ts'
import { DateTime } from 'luxon'
import type { HttpContext } from '@adonisjs/core/http'
import Customer from '../models/customer.ts'
import { fromDbDateTime, toDbDateTime } from '../models/columns.ts'
import { ForbiddenException, InvalidArgumentException, UnauthenticatedException } from '../errors.ts'
import { UsageValidationException, type UsageRecordInput } from './usage_recorder.ts'

/**
 * Who may write usage for which customer: `(ctx, customer) => boolean` (e.g. "the signed-in user
 * owns it"), or `'service'` for a service-to-service guard whose callers may write for every customer.
 * Chosen explicitly in `registerRoutes({ usage: { authorize } })`.
 */
export type UsageAuthorizer = 'service' | ((ctx: HttpContext, customer: Customer) => boolean | Promise<boolean>)

/**
 * Largest usage request body, JSON or NDJSON: `maxBatch` records of at most `maxPropertiesBytes` of
 * properties plus 1 KiB for the rest of each record.
 */
function maxBodyBytes(usage: { maxBatch: number; maxPropertiesBytes: number }) {
  return usage.maxBatch * (usage.maxPropertiesBytes + 1024)
}

function tooLarge(message: string) {
  const error = new UsageValidationException(`${message}; nothing was stored`)
  error.status = 413
  return error
}

function notJson(index: number) {
  const error = new UsageValidationException(`Line ${index + 1} is not JSON`)
  error.errors = [{ index, field: 'record', message: 'not JSON' }]
  error.details = { errors: error.errors }
  return error
}

/**
 * Parses NDJSON as it streams in, one line at a time, and stops (413) past `maxBytes` or past
 * `maxLines` records: an oversized body is never buffered whole.
 */
async function readNdjson(ctx: HttpContext, maxLines: number, maxBytes: number): Promise<unknown[]> {
  const records: unknown[] = []
  const take = (line: string) => {
    const text = line.trim()
    if (!text) return
    if (records.length >= maxLines) throw tooLarge(`At most ${maxLines} records per batch`)
    try {
      records.push(JSON.parse(text))
    } catch {
      throw notJson(records.length)
    }
  }
  const raw = ctx.request.raw()
  if (raw !== null && raw !== undefined) {
    if (Buffer.byteLength(raw) > maxBytes) throw tooLarge(`At most ${maxBytes} bytes per request`)
    for (const line of raw.split('\n')) take(line)
    return records
  }
  const declared = Number(ctx.request.header('content-length'))
  if (declared > maxBytes) throw tooLarge(`At most ${maxBytes} bytes per request`)
  const decoder = new TextDecoder('utf-8')
  let pending = ''
  let bytes = 0
  const stream = ctx.request.request
  try {
    for await (const chunk of stream) {
      bytes += (chunk as Buffer).length
      if (bytes > maxBytes) throw tooLarge(`At most ${maxBytes} bytes per request`)
      pending += decoder.decode(chunk as Buffer, { stream: true })
      let newline = pending.indexOf('\n')
      while (newline !== -1) {
        take(pending.slice(0, newline))
        pending = pending.slice(newline + 1)
        newline = pending.indexOf('\n')
      }
    }
  } catch (error) {
    /**
     * Stop reading: the rest of the body is neither read nor buffered, and the connection closes
     * after the answer
     */
    stream.pause()
    ctx.response.header('connection', 'close')
    throw error
  }
  take(pending + decoder.decode())
  return records
}

/**
 * Who wrote a batch, stored on each event: the signed-in user, else the service.
 */
function actorOf(ctx: HttpContext, authorize: UsageAuthorizer): string {
  const user = (ctx as any).auth?.user
  const id = user?.$primaryKeyValue ?? user?.id
  if (id !== undefined && id !== null) return `user:${String(id)}`.slice(0, 255)
  return authorize === 'service' ? 'service' : 'anonymous'
}

/**
 * `POST <prefix>/v1/usage`: usage from other services, as a JSON array or NDJSON
 * (`application/x-ndjson`), at most `usage.maxBatch` records (413 beyond); each names its customer by `customerId` or by
 * `billableType` + `billableId`. Every customer named must pass the route's authorizer (403, nothing
 * stored, when one does not). All or nothing: 200 with per-item results, or 422 listing every bad
 * item (nothing stored); 409 when a key is reused with another payload.
 */
export function usageRecordHandler(authorize: UsageAuthorizer) {
  return async function recordUsage(ctx: HttpContext) {
    const billing = await ctx.containerResolver.make('billing.manager')
    const limits = billing.config.usage
    const contentType = ctx.request.header('content-type') ?? ''
    let items: unknown
    if (contentType.includes('ndjson')) {
      items = await readNdjson(ctx, limits.maxBatch, maxBodyBytes(limits))
    } else {
      const raw = ctx.request.raw()
      if (typeof raw === 'string' && Buffer.byteLength(raw) > maxBodyBytes(limits)) throw tooLarge(`At most ${maxBodyBytes(limits)} bytes per request`)
      items = ctx.request.body()
    }
    if (!Array.isArray(items)) throw new InvalidArgumentException('Send a JSON array of usage records (or NDJSON)')
    /**
     * The batch size is checked before anything is resolved for it
     */
    billing.usage.assertBatch(items)

    /**
     * Resolve billable references and customer ids to customers in one query each
     */
    const references = new Map<string, { type: string; id: string }>()
    const ids = new Set<number>()
    for (const item of items as any[]) {
      if (item?.customerId !== undefined) {
        if (Number.isSafeInteger(item.customerId)) ids.add(item.customerId)
      } else if (typeof item?.billableType === 'string' && (typeof item?.billableId === 'string' || typeof item?.billableId === 'number')) {
        const id = String(item.billableId)
        if (item.billableType.length <= 100 && id.length <= 100) references.set(`${item.billableType}:${id}`, { type: item.billableType, id })
      }
    }
    const customers = new Map<number, Customer>()
    const byIdentity = new Map<string, number>()
    const db = billing.db()
    if (ids.size) for (const row of await Customer.query({ client: db }).whereIn('id', [...ids])) customers.set(row.id, row)
    const pairs = [...references.values()]
    for (let start = 0; start < pairs.length; start += 500) {
      const chunk = pairs.slice(start, start + 500)
      const rows = await Customer.query({ client: db }).where((query) => {
        for (const pair of chunk) query.orWhere((q) => q.where('billable_type', pair.type).where('billable_id', pair.id))
      })
      for (const row of rows) {
        customers.set(row.id, row)
        byIdentity.set(`${row.billableType}:${row.billableId}`, row.id)
      }
    }

    /**
     * Scoping: every customer the batch writes to must be one this caller may write for
     */
    if (authorize !== 'service') {
      for (const customer of customers.values()) {
        if ((await authorize(ctx, customer)) !== true) throw new ForbiddenException('You may not record usage for one of these customers; nothing was stored')
      }
    }

    const records: UsageRecordInput[] = (items as any[]).map((item: any) => ({
      customerId: item?.customerId ?? byIdentity.get(`${item?.billableType}:${item?.billableId}`) ?? -1,
      meter: item?.meter,
      quantity: item?.quantity,
      idempotencyKey: item?.idempotencyKey,
      at: item?.timestamp ?? item?.at,
      properties: item?.properties,
    }))
    const results = await billing.usage.recordMany(records, { actor: actorOf(ctx, authorize) })
    return ctx.response.ok({ results })
  }
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
  if (typeof meter !== 'string' || !Object.hasOwn(billing.config.meters, meter)) throw new InvalidArgumentException(`Unknown meter ${JSON.stringify(meter)}`)
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
  /**
   * Exact decimals, sent as decimal strings (a JSON number would round `0.1 + 0.2`)
   */
  const buckets = new Map<string, { quantity: bigint; events: number }>()
  let total = 0n
  for (const row of rows) {
    const at = fromDbDateTime(row.bucket)!.startOf(granularity)
    const key = at.toISO()!
    const bucket = buckets.get(key) ?? { quantity: 0n, events: 0 }
    const quantity = fixedOf(row.sum, 'sum')
    bucket.quantity += quantity
    total += quantity
    bucket.events += Number(row.count)
    buckets.set(key, bucket)
  }
  const series = [...buckets.entries()].map(([start, bucket]) => ({ start, quantity: fixedText(bucket.quantity), events: bucket.events }))
  return ctx.response.ok({
    meter,
    granularity,
    from: from.toISO(),
    to: to.toISO(),
    total: fixedText(total),
    series,
  })
}
