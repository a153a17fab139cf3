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
import WebhookEvent from '../models/webhook_event.ts'
import { fromDbDateTime, toDbDateTime } from '../models/columns.ts'

/**
 * What `billing:webhooks:status` and the health route report.
 */
export interface WebhookStatus {
  healthy: boolean
  counts: Record<'received' | 'processed' | 'failed' | 'ignored', number>
  /** Events stored but not processed for more than `stuckAfterSeconds` */
  backlog: number
  oldestUnprocessedAt: string | null
  failuresByType: Array<{ type: string; count: number; lastError: string | null; lastAttemptAt: string | null }>
  lastReceivedByType: Array<{ type: string; at: string }>
  /** Over the last 500 processed events: Stripe's `created` → our `received_at`, and processing time */
  lag: { deliveryP50Seconds: number | null; deliveryMaxSeconds: number | null; processingP50Ms: number | null; processingMaxMs: number | null }
}

function percentile(values: number[], p: number) {
  if (!values.length) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

/**
 * Reads the webhook store's health with indexed, bounded queries.
 */
export async function webhookStatus(client: QueryClientContract, options: { stuckAfterSeconds?: number } = {}): Promise<WebhookStatus> {
  const stuckBefore = toDbDateTime(DateTime.utc().minus({ seconds: options.stuckAfterSeconds ?? 300 }))
  const counts = { received: 0, processed: 0, failed: 0, ignored: 0 }
  for (const row of await client.from(WebhookEvent.table).select('status').count('* as total').groupBy('status')) {
    counts[row.status as keyof typeof counts] = Number(row.total)
  }
  const [{ total: backlog }] = await client.from(WebhookEvent.table).where('status', 'received').where('received_at', '<', stuckBefore).count('* as total')
  const oldest = await client.from(WebhookEvent.table).whereIn('status', ['received', 'failed']).min('received_at as at').first()

  const failures = await client
    .from(WebhookEvent.table)
    .where('status', 'failed')
    .select('type')
    .count('* as total')
    .max('updated_at as last_attempt_at')
    .groupBy('type')
    .orderBy('type')
  const failuresByType = []
  for (const row of failures) {
    const last = await client.from(WebhookEvent.table).where('status', 'failed').where('type', row.type).orderBy('updated_at', 'desc').select('error').first()
    failuresByType.push({
      type: row.type,
      count: Number(row.total),
      lastError: last?.error ?? null,
      lastAttemptAt: fromDbDateTime(row.last_attempt_at)?.toISO() ?? null,
    })
  }

  const lastReceived = await client.from(WebhookEvent.table).select('type').max('received_at as at').groupBy('type').orderBy('type')
  const recent = await client
    .from(WebhookEvent.table)
    .where('status', 'processed')
    .orderBy('id', 'desc')
    .limit(500)
    .select('stripe_created_at', 'received_at', 'processing_ms')
  const delivery = recent
    .map((row) => fromDbDateTime(row.received_at)!.diff(fromDbDateTime(row.stripe_created_at)!, 'seconds').seconds)
    /**
     * An event stamped after we received it means clocks disagree: it says nothing about lag
     */
    .filter((value) => Number.isFinite(value) && value >= 0)
  const processing = recent.map((row) => Number(row.processing_ms)).filter((value) => Number.isFinite(value))

  return {
    healthy: counts.failed === 0 && Number(backlog) === 0,
    counts,
    backlog: Number(backlog),
    oldestUnprocessedAt: fromDbDateTime(oldest?.at)?.toISO() ?? null,
    failuresByType,
    lastReceivedByType: lastReceived.map((row) => ({ type: row.type, at: fromDbDateTime(row.at)!.toISO()! })),
    lag: {
      deliveryP50Seconds: percentile(delivery, 50),
      deliveryMaxSeconds: delivery.length ? Math.max(...delivery) : null,
      processingP50Ms: percentile(processing, 50),
      processingMaxMs: processing.length ? Math.max(...processing) : null,
    },
  }
}
