/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { DateTime } from 'luxon'
import type { QueryClientContract } from '@adonisjs/lucid/types/database'
import WebhookEvent from '../models/webhook_event.ts'
import { toDbDateTime } from '../models/columns.ts'

/**
 * Drops the payloads (customers' names, emails, addresses…) of webhook events received before
 * `before` and done with (`processed` or `ignored`): each becomes `{ id, type, redacted: true }`,
 * while the row keeps its event id, type, status, attempts and timings. Failed and pending events keep
 * theirs (they may still be replayed). Returns how many payloads were dropped; running it again
 * drops nothing more.
 */
export async function pruneWebhookPayloads(client: QueryClientContract, before: DateTime): Promise<number> {
  const postgres = client.dialect.name === 'postgres'
  const redacted = postgres ? "json_build_object('id', event_id, 'type', type, 'redacted', true)" : "json_object('id', event_id, 'type', type, 'redacted', json('true'))"
  const notYet = postgres ? "(payload::jsonb ->> 'redacted') is null" : "json_extract(payload, '$.redacted') is null"
  const changed = await client
    .from(WebhookEvent.table)
    .whereIn('status', ['processed', 'ignored'])
    .where('received_at', '<', toDbDateTime(before))
    .whereRaw(notYet)
    .update({ payload: client.raw(redacted) })
  return Array.isArray(changed) ? Number(changed[0] ?? 0) : Number(changed)
}
