/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { DateTime } from 'luxon'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { toDbDateTime } from '../models/columns.ts'

const TABLE = 'billing_stripe_objects'

/**
 * The one ordering rule for Stripe objects mirrored from webhooks that have no row of their own to
 * carry a watermark (tax ids, entitlement summaries, deletions of customers): per object, an
 * observation applies only when it is newer than every one applied before, and a deletion is
 * terminal (nothing applies after it, whatever its time). Kept in `billing_stripe_objects` and
 * decided by one upsert, so concurrent deliveries (and several app instances) agree.
 *
 * Returns true when this observation is to be applied (it was recorded as the object's latest).
 */
export async function observeStripeObject(
  trx: TransactionClientContract,
  object: { type: string; id: string },
  observedAt: DateTime,
  options: { deleted?: boolean } = {}
): Promise<boolean> {
  const deleted = options.deleted ? 1 : 0
  const rows = await trx.rawQuery(
    `insert into ${TABLE} (object_type, stripe_id, observed_at, deleted) values (?, ?, ?, ?) ` +
      `on conflict (object_type, stripe_id) do update set observed_at = excluded.observed_at, deleted = excluded.deleted ` +
      `where ${TABLE}.deleted = 0 and (excluded.deleted = 1 or ${TABLE}.observed_at < excluded.observed_at) ` +
      `returning stripe_id`,
    [object.type, object.id, toDbDateTime(observedAt), deleted]
  )
  const returned = Array.isArray(rows) ? rows : rows.rows
  return returned.length > 0
}

/**
 * Whether Stripe said the object was deleted (terminal).
 */
export async function stripeObjectDeleted(trx: TransactionClientContract, object: { type: string; id: string }): Promise<boolean> {
  const row = await trx.from(TABLE).where('object_type', object.type).where('stripe_id', object.id).where('deleted', 1).select('stripe_id').first()
  return !!row
}
