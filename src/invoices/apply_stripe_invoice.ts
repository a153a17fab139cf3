/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Stripe } from 'stripe'
import { DateTime } from 'luxon'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import Invoice from '../models/invoice.ts'
import { lockOrCreate } from '../models/lock_or_create.ts'
import Subscription from '../models/subscription.ts'
import type Customer from '../models/customer.ts'

const fromUnix = (value: number | null | undefined) => (value ? DateTime.fromSeconds(value, { zone: 'utc' }) : null)

/**
 * Total tax of a Stripe invoice in minor units (`total_taxes` since API 2025-03-31).
 */
export function invoiceTax(invoice: Stripe.Invoice): number {
  const taxes = (invoice as any).total_taxes as Array<{ amount: number }> | undefined
  return (taxes ?? []).reduce((sum, tax) => sum + tax.amount, 0)
}

/**
 * The subscription a Stripe invoice belongs to (`parent.subscription_details` since 2025-03-31).
 */
export function invoiceSubscriptionId(invoice: Stripe.Invoice): string | null {
  const parent = (invoice as any).parent?.subscription_details?.subscription
  const legacy = (invoice as any).subscription
  const value = parent ?? legacy ?? null
  return typeof value === 'string' ? value : (value?.id ?? null)
}

/**
 * Upserts the local copy of a Stripe invoice inside `trx` (amounts in minor units, lines with
 * their tax amounts). Returns the row.
 */
export async function applyStripeInvoice(
  trx: TransactionClientContract,
  customer: Customer,
  object: Stripe.Invoice,
  options: { observedAt?: DateTime } = {}
): Promise<Invoice> {
  const subscriptionId = invoiceSubscriptionId(object)
  const subscription = subscriptionId
    ? await Subscription.query({ client: trx }).where('stripe_subscription_id', subscriptionId).first()
    : null
  const { row, created } = await lockOrCreate(trx, Invoice, 'stripe_invoice_id', object.id!, {
    customer_id: customer.id,
    status: object.status ?? 'draft',
    currency: object.currency,
  })
  /**
   * An older copy than the stored one (out-of-order webhook) changes nothing
   */
  if (!created && row.stripeUpdatedAt && options.observedAt && row.stripeUpdatedAt > options.observedAt) return row
  row.useTransaction(trx)
  row.merge({
    customerId: customer.id,
    subscriptionId: subscription?.id ?? null,
    stripeSubscriptionId: subscriptionId,
    stripeInvoiceId: object.id!,
    number: object.number ?? null,
    status: object.status ?? 'draft',
    currency: object.currency,
    subtotal: object.subtotal,
    tax: invoiceTax(object),
    total: object.total,
    amountDue: object.amount_due,
    amountPaid: object.amount_paid,
    amountRemaining: object.amount_remaining,
    hostedInvoiceUrl: object.hosted_invoice_url ?? null,
    invoicePdf: object.invoice_pdf ?? null,
    periodStart: fromUnix(object.period_start),
    periodEnd: fromUnix(object.period_end),
    lines: (object.lines?.data ?? []).map((line) => ({
      id: line.id,
      description: line.description,
      amount: line.amount,
      currency: line.currency,
      quantity: line.quantity,
      taxes: ((line as any).taxes ?? []).map((tax: any) => ({ amount: tax.amount, taxable_amount: tax.taxable_amount })),
      period: { start: line.period?.start ?? null, end: line.period?.end ?? null },
      proration: (line as any).parent?.subscription_item_details?.proration ?? (line as any).proration ?? false,
    })),
    stripeCreatedAt: fromUnix(object.created),
    stripeUpdatedAt: options.observedAt ?? DateTime.utc(),
  })
  await row.save()
  return row
}

/**
 * Links the customer's invoices that arrived before their subscription (they name its Stripe id):
 * references are resolved whichever side arrives first. Returns how many were linked.
 */
export async function linkInvoicesToSubscription(trx: TransactionClientContract, subscription: { id: number; stripeSubscriptionId: string | null }): Promise<number> {
  if (!subscription.stripeSubscriptionId) return 0
  const result = await trx
    .from(Invoice.table)
    .where('stripe_subscription_id', subscription.stripeSubscriptionId)
    .whereNull('subscription_id')
    .update({ subscription_id: subscription.id })
  return Array.isArray(result) ? Number(result[0] ?? 0) : Number(result)
}
