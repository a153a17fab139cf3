/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { bumpEntitlementVersion } from '../entitlements/entitlement_cache.ts'
import { DateTime } from 'luxon'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import Customer from '../models/customer.ts'
import { toDbDateTime } from '../models/columns.ts'
import type { BillingManager } from '../billing_manager.ts'
import type { AuditActor } from '../types.ts'

/**
 * Tables whose rows belong to a customer and follow it when an unlinked customer is linked.
 */
const OWNED_TABLES = [
  'billing_subscriptions',
  'billing_invoices',
  'billing_usage_events',
  'billing_usage_rollups',
  'billing_usage_reports',
  'billing_entitlement_grants',
  /**
   * Personal data of the unlinked customer's audit rows: erasing the linked customer erases it too
   */
  'billing_audit_personal_data',
]

/**
 * The columns a customer row mirrors from its Stripe customer (webhooks and API reads)
 */
const MIRRORED_COLUMNS = ['email', 'name', 'currency', 'tax_exempt', 'tax_ids', 'balance', 'default_payment_method', 'stripe_entitlements', 'stripe_updated_at'] as const

/**
 * A column value read back raw, ready to be written again (JSON columns come back parsed on PostgreSQL)
 */
function serializedColumn(value: unknown) {
  if (value instanceof Date) return toDbDateTime(DateTime.fromJSDate(value))
  if (value !== null && typeof value === 'object') return JSON.stringify(value)
  return value ?? null
}

async function lockedByStripeId(trx: TransactionClientContract, stripeCustomerId: string) {
  return Customer.query({ client: trx })
    .where('stripe_customer_id', stripeCustomerId)
    .if(trx.dialect.name === 'postgres', (query) => query.forUpdate())
    .first()
}

/**
 * Finds the local customer of a Stripe customer inside a webhook transaction; never drops an event:
 * - a known Stripe id gives its row;
 * - `localId` (a package-made checkout's signed link, or `adonis_billing_customer_id` metadata the
 *   package set through the API; never a buyer-set `client_reference_id`) links the
 *   Stripe customer to that local customer, and an unlinked row recorded earlier for the same Stripe
 *   customer is merged into it (its subscriptions, invoices, usage and grants follow);
 * - otherwise an unlinked customer row is recorded (billable unknown) so the objects attach to it
 *   until the link arrives.
 */
export async function resolveStripeCustomer(
  manager: BillingManager,
  trx: TransactionClientContract,
  stripeCustomerId: string,
  options: { localId?: string | null; actor: AuditActor; email?: string | null; name?: string | null }
): Promise<Customer> {
  let row = await lockedByStripeId(trx, stripeCustomerId)
  const localId = options.localId && /^\d+$/.test(options.localId) ? Number(options.localId) : null

  /**
   * Only a missing or unlinked row can be linked: a row already owned by a billable keeps its owner,
   * so its target is not even read (locking it would serialize every event that names it).
   */
  if (localId && row?.id !== localId && (!row || row.billableType === null)) {
    const target = await Customer.query({ client: trx })
      .where('id', localId)
      .if(trx.dialect.name === 'postgres', (query) => query.forUpdate())
      .first()
    const linkable = target && target.billableType !== null && (!target.stripeCustomerId || target.stripeCustomerId === stripeCustomerId)
    if (target && linkable) {
      /**
       * What was mirrored from Stripe while the customer was unlinked is kept when it is newer than
       * the target's own copy, so the result does not depend on whether the link came first
       */
      let mirrored: Record<string, unknown> = {}
      if (row) {
        const carried = row.stripeUpdatedAt && (!target.stripeUpdatedAt || row.stripeUpdatedAt > target.stripeUpdatedAt)
        const unlinked = await trx.from(Customer.table).where('id', row.id).select(...MIRRORED_COLUMNS).first()
        if (carried && unlinked) mirrored = Object.fromEntries(MIRRORED_COLUMNS.map((column) => [column, serializedColumn(unlinked[column])]))
        else if (unlinked) {
          /**
           * Lists only the unlinked copy has (its tax ids, Stripe's entitlements) are kept too
           */
          for (const column of ['tax_ids', 'stripe_entitlements'] as const) {
            if (unlinked[column] !== null && unlinked[column] !== undefined && (target as any)[column === 'tax_ids' ? 'taxIds' : 'stripeEntitlements'] === null) {
              mirrored[column] = serializedColumn(unlinked[column])
            }
          }
        }
        for (const table of OWNED_TABLES) {
          await trx.from(table).where('customer_id', row.id).update({ customer_id: target.id })
        }
        await trx.from(Customer.table).where('id', row.id).delete()
      }
      await bumpEntitlementVersion(manager.entitlementCache, trx, target.id, {
        ...mirrored,
        stripe_customer_id: stripeCustomerId,
        updated_at: toDbDateTime(DateTime.utc()),
      })
      await manager.audit.record(
        {
          action: 'customer.linked',
          actor: options.actor,
          subject: { type: 'customer', id: target.id },
          customerId: target.id,
          after: { stripe_customer_id: stripeCustomerId, merged_unlinked_customer: row?.id ?? null },
        },
        { client: trx }
      )
      await target.refresh()
      return target
    }
  }
  if (row) return row

  const now = toDbDateTime(DateTime.utc())
  await trx
    .knexQuery()
    .table(Customer.table)
    .insert({
      stripe_customer_id: stripeCustomerId,
      email: options.email ?? null,
      name: options.name ?? null,
      currency: manager.config.currency,
      balance: 0,
      entitlement_version: 0,
      created_at: now,
      updated_at: now,
    })
    .onConflict(['stripe_customer_id'])
    .ignore()
  row = (await lockedByStripeId(trx, stripeCustomerId))!
  await manager.audit.record(
    {
      action: 'customer.recorded_unlinked',
      actor: options.actor,
      subject: { type: 'customer', id: row.id },
      customerId: row.id,
      after: { stripe_customer_id: stripeCustomerId },
    },
    { client: trx }
  )
  return row
}
