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
import { applyStripeInvoice } from '../../invoices/apply_stripe_invoice.ts'
import { resolveStripeCustomer } from '../customer_resolver.ts'
import type { WebhookContext, WebhookHandler } from '../webhook_context.ts'
import { observeStripeObject, stripeObjectDeleted } from '../stripe_object_watermark.ts'

/**
 * Stores the invoice copy (unless the stored one is newer) and audits the transition.
 */
function invoiceHandler(action: string): WebhookHandler {
  return async (context: WebhookContext) => {
    const { manager, trx } = context
    let object = context.event.data.object as Stripe.Invoice
    if (!object.id) return 'ignored'
    /**
     * A deleted draft is gone for good: no event of it applies after the deletion
     */
    if (await stripeObjectDeleted(trx, { type: 'invoice', id: object.id })) return 'ignored'
    let observedAt = context.observedAt
    if (manager.config.webhooks.refetch) {
      object = await manager.stripe.call((stripe) => stripe.invoices.retrieve(object.id!))
      observedAt = DateTime.utc()
    }
    const stripeCustomerId = typeof object.customer === 'string' ? object.customer : object.customer?.id
    if (!stripeCustomerId) return 'ignored'
    const metadata = (object as any).parent?.subscription_details?.metadata ?? object.metadata
    context.customer = await resolveStripeCustomer(manager, trx, stripeCustomerId, {
      localId: metadata?.adonis_billing_customer_id,
      actor: context.actor,
      email: object.customer_email,
    })
    const before = await trx.from('billing_invoices').where('stripe_invoice_id', object.id).select('status', 'amount_paid', 'stripe_updated_at').first()
    const invoice = await applyStripeInvoice(trx, context.customer, object, { observedAt })
    const changed = !before || before.status !== invoice.status || Number(before.amount_paid) !== invoice.amountPaid
    if (changed) {
      await manager.audit.record(
        {
          action,
          actor: context.actor,
          subject: { type: 'invoice', id: invoice.id },
          customerId: context.customer.id,
          before: before ? { status: before.status, amount_paid: Number(before.amount_paid) } : null,
          after: { status: invoice.status, amount_paid: invoice.amountPaid, total: invoice.total, currency: invoice.currency },
          metadata: { stripe_invoice_id: object.id },
        },
        { client: trx }
      )
    }
    context.emit(`billing:${action}`, { invoiceId: invoice.id, stripeInvoiceId: object.id, status: invoice.status })
    return 'processed'
  }
}

/**
 * `invoice.deleted`: a draft Stripe deleted never billed anything: its local copy goes (audited), and
 * the deletion is terminal, so the final state is the same whatever the delivery order.
 */
const invoiceDeleted: WebhookHandler = async (context) => {
  const { manager, trx } = context
  const object = context.event.data.object as Stripe.Invoice
  if (!object.id) return 'ignored'
  if (!(await observeStripeObject(trx, { type: 'invoice', id: object.id }, context.observedAt, { deleted: true }))) return 'ignored'
  const row = await trx.from('billing_invoices').where('stripe_invoice_id', object.id).select('id', 'customer_id', 'status').first()
  if (!row) return 'ignored'
  await trx.from('billing_invoices').where('id', row.id).delete()
  await manager.audit.record(
    {
      action: 'invoice.deleted',
      actor: context.actor,
      subject: { type: 'invoice', id: row.id },
      customerId: Number(row.customer_id),
      before: { status: row.status },
      after: null,
      metadata: { stripe_invoice_id: object.id },
    },
    { client: trx }
  )
  context.emit('billing:invoice.deleted', { invoiceId: Number(row.id), stripeInvoiceId: object.id, status: 'deleted' })
  return 'processed'
}

/**
 * Events that only notify (no state of ours to change): emitted for the host, then processed.
 */
function notifyHandler(name: string): WebhookHandler {
  return async (context) => {
    const object = context.event.data.object as { id?: string; customer?: string | { id: string } | null }
    context.emit(`billing:${name}`, { objectId: object.id ?? null, stripeCustomerId: typeof object.customer === 'string' ? object.customer : (object.customer?.id ?? null) })
    return 'processed'
  }
}

/**
 * `invoice.*` and `invoice_payment.paid`
 */
export const invoiceHandlers: Record<string, WebhookHandler> = {
  'invoice.created': invoiceHandler('invoice.created'),
  'invoice.finalized': invoiceHandler('invoice.finalized'),
  'invoice.updated': invoiceHandler('invoice.updated'),
  'invoice.paid': invoiceHandler('invoice.paid'),
  'invoice.payment_succeeded': invoiceHandler('invoice.payment_succeeded'),
  'invoice.payment_failed': invoiceHandler('invoice.payment_failed'),
  'invoice.payment_action_required': invoiceHandler('invoice.payment_action_required'),
  'invoice.voided': invoiceHandler('invoice.voided'),
  'invoice.deleted': invoiceDeleted,
  'invoice.marked_uncollectible': invoiceHandler('invoice.marked_uncollectible'),
  'invoice.overdue': invoiceHandler('invoice.overdue'),
  'invoice.upcoming': notifyHandler('invoice.upcoming'),
  'invoice_payment.paid': notifyHandler('invoice_payment.paid'),
}
