/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { bumpEntitlementVersion } from '../../entitlements/entitlement_cache.ts'
import type { Stripe } from 'stripe'
import { DateTime } from 'luxon'
import { applyStripeCustomer, mirrorLinkedStripeCustomer } from '../../customers/stripe_customer_sync.ts'
import { resolveStripeCustomer } from '../customer_resolver.ts'
import type { WebhookContext, WebhookHandler } from '../webhook_context.ts'
import { observeStripeObject, stripeObjectDeleted } from '../stripe_object_watermark.ts'
import Customer from '../../models/customer.ts'

const idOf = (value: string | { id: string } | null | undefined) => (typeof value === 'string' ? value : (value?.id ?? null))

/**
 * `customer.created` / `customer.updated`: details onto the local row (linking through our metadata).
 */
const customerChanged: WebhookHandler = async (context) => {
  const { manager, trx } = context
  let object = context.event.data.object as Stripe.Customer
  let observedAt = context.observedAt
  /**
   * Deleted in Stripe: terminal, an update delivered after the deletion changes nothing
   */
  if (await stripeObjectDeleted(trx, { type: 'customer', id: object.id })) return 'ignored'
  if (manager.config.webhooks.refetch) {
    const fresh = await manager.stripe.call((stripe) => stripe.customers.retrieve(object.id))
    if ((fresh as Stripe.DeletedCustomer).deleted) return 'ignored'
    object = fresh as Stripe.Customer
    observedAt = DateTime.utc()
  }
  if (!manager.config.webhooks.refetch && trx.dialect.name === 'postgres') {
    const mirrored = await mirrorLinkedStripeCustomer(manager, trx, object, { observedAt, actor: context.actor, action: 'customer.updated' })
    if (mirrored) {
      context.customer = mirrored
      context.emit('billing:customer.updated', { customerId: mirrored.id })
      return 'processed'
    }
  }
  context.customer = await resolveStripeCustomer(manager, trx, object.id, {
    localId: object.metadata?.adonis_billing_customer_id,
    actor: context.actor,
    email: object.email,
    name: object.name,
  })
  await applyStripeCustomer(manager, trx, context.customer, object, { observedAt, actor: context.actor, action: 'customer.updated' })
  context.emit('billing:customer.updated', { customerId: context.customer.id })
  return 'processed'
}

/**
 * `customer.deleted`: the Stripe customer is gone (Stripe cancels its subscriptions with their own
 * events); the local row stays for history, flagged by the audit row.
 */
const customerDeleted: WebhookHandler = async (context) => {
  const { manager, trx } = context
  const object = context.event.data.object as Stripe.Customer
  if (!(await observeStripeObject(trx, { type: 'customer', id: object.id }, context.observedAt, { deleted: true }))) return 'ignored'
  /**
   * A Stripe customer the app never knew: nothing local to flag (no row is created for it)
   */
  const known = await Customer.query({ client: trx }).where('stripe_customer_id', object.id).first()
  if (!known) return 'ignored'
  context.customer = await resolveStripeCustomer(manager, trx, object.id, { actor: context.actor })
  await bumpEntitlementVersion(manager.entitlementCache, trx, context.customer.id)
  await manager.audit.record(
    { action: 'customer.stripe_deleted', actor: context.actor, subject: { type: 'customer', id: context.customer.id }, customerId: context.customer.id, after: { stripe_customer_id: object.id } },
    { client: trx }
  )
  context.emit('billing:customer.deleted', { customerId: context.customer.id })
  return 'processed'
}

/**
 * `customer.tax_id.*`: keeps the customer's tax id list current.
 */
function taxIdHandler(kind: 'created' | 'updated' | 'deleted'): WebhookHandler {
  return async (context: WebhookContext) => {
    const { manager, trx } = context
    const object = context.event.data.object as Stripe.TaxId
    const stripeCustomerId = idOf(object.customer as any)
    if (!stripeCustomerId) return 'ignored'
    /**
     * Per tax id: the newest observation wins and a deletion is terminal, whatever the order
     */
    if (!(await observeStripeObject(trx, { type: 'tax_id', id: object.id }, context.observedAt, { deleted: kind === 'deleted' }))) return 'ignored'
    const customer = (context.customer = await resolveStripeCustomer(manager, trx, stripeCustomerId, { actor: context.actor }))
    const before = customer.taxIds ?? []
    const others = before.filter((taxId) => taxId.id !== object.id)
    const after = kind === 'deleted' ? others : [...others, { id: object.id, type: object.type, value: object.value }]
    if (JSON.stringify(before) === JSON.stringify(after)) return 'processed'
    customer.useTransaction(trx)
    customer.taxIds = after
    await customer.save()
    await manager.audit.record(
      { action: `customer.tax_id_${kind}`, actor: context.actor, subject: { type: 'customer', id: customer.id }, customerId: customer.id, before: { tax_ids: before }, after: { tax_ids: after } },
      { client: trx }
    )
    return 'processed'
  }
}

/**
 * `payment_method.attached` / `detached`: audited and emitted (the default method arrives with
 * `customer.updated`).
 */
function paymentMethodHandler(kind: 'attached' | 'detached'): WebhookHandler {
  return async (context) => {
    const { manager, trx } = context
    const object = context.event.data.object as Stripe.PaymentMethod
    const previous = (context.event.data.previous_attributes as any)?.customer
    const stripeCustomerId = idOf(object.customer as any) ?? previous ?? null
    if (!stripeCustomerId) return 'ignored'
    context.customer = await resolveStripeCustomer(manager, trx, stripeCustomerId, { actor: context.actor })
    await manager.audit.record(
      {
        action: `payment_method.${kind}`,
        actor: context.actor,
        subject: { type: 'payment_method', id: object.id },
        customerId: context.customer.id,
        after: { type: object.type, brand: object.card?.brand ?? null, last4: object.card?.last4 ?? null },
      },
      { client: trx }
    )
    context.emit(`billing:payment_method.${kind}`, { customerId: context.customer.id, paymentMethodId: object.id })
    return 'processed'
  }
}

/**
 * `entitlements.active_entitlement_summary.updated`: the lookup keys Stripe says the customer has.
 */
const entitlementSummary: WebhookHandler = async (context) => {
  const { manager, trx } = context
  const object = context.event.data.object as Stripe.Entitlements.ActiveEntitlementSummary
  /**
   * One summary per customer: an older one never overwrites a newer one
   */
  if (!(await observeStripeObject(trx, { type: 'entitlement_summary', id: object.customer }, context.observedAt))) return 'ignored'
  const customer = (context.customer = await resolveStripeCustomer(manager, trx, object.customer, { actor: context.actor }))
  const keys = object.entitlements.data.map((entitlement) => entitlement.lookup_key).sort()
  const before = customer.stripeEntitlements ?? []
  if (JSON.stringify(before) === JSON.stringify(keys)) return 'processed'
  await bumpEntitlementVersion(manager.entitlementCache, trx, customer.id, { stripe_entitlements: JSON.stringify(keys) })
  await manager.audit.record(
    { action: 'customer.stripe_entitlements_updated', actor: context.actor, subject: { type: 'customer', id: customer.id }, customerId: customer.id, before: { features: before }, after: { features: keys } },
    { client: trx }
  )
  context.emit('billing:entitlements.updated', { customerId: customer.id, features: keys })
  return 'processed'
}

/**
 * `customer.*`, `payment_method.*`, `entitlements.*`
 */
export const customerHandlers: Record<string, WebhookHandler> = {
  'customer.created': customerChanged,
  'customer.updated': customerChanged,
  'customer.deleted': customerDeleted,
  'customer.tax_id.created': taxIdHandler('created'),
  'customer.tax_id.updated': taxIdHandler('updated'),
  'customer.tax_id.deleted': taxIdHandler('deleted'),
  'payment_method.attached': paymentMethodHandler('attached'),
  'payment_method.detached': paymentMethodHandler('detached'),
  'entitlements.active_entitlement_summary.updated': entitlementSummary,
}
