/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Stripe } from 'stripe'
import type { DateTime } from 'luxon'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import type { BillingManager } from '../billing_manager.ts'
import type Customer from '../models/customer.ts'
import type { AuditActor } from '../types.ts'

/**
 * What a webhook handler gets: the verified event, the transaction every write must use (it commits
 * with the event's `processed` mark, or rolls back entirely), and the webhook actor for audit rows.
 */
export interface WebhookContext {
  manager: BillingManager
  trx: TransactionClientContract
  event: Stripe.Event
  /** `event.created` as UTC: the watermark that keeps older events from overwriting newer state */
  observedAt: DateTime
  actor: AuditActor
  /** The customer the event is about, once a handler resolved it */
  customer: Customer | null
  /** Adonis events to emit after commit */
  emit(name: string, payload: Record<string, unknown>): void
}

/**
 * A handler returns `ignored` when the event carries nothing to apply.
 */
export type WebhookHandler = (context: WebhookContext) => Promise<'processed' | 'ignored' | void>
