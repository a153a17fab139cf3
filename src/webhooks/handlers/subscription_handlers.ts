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
import { applyStripeSubscription } from '../../subscriptions/apply_stripe_subscription.ts'
import { resolveStripeCustomer } from '../customer_resolver.ts'
import type { WebhookContext, WebhookHandler } from '../webhook_context.ts'

const customerIdOf = (value: string | { id: string } | null | undefined) => (typeof value === 'string' ? value : (value?.id ?? null))

/**
 * Applies a subscription (from the event, or fetched from Stripe when `webhooks.refetch` is on) to the
 * local row of its customer, unless the stored copy is newer.
 */
export async function applySubscriptionObject(context: WebhookContext, input: Stripe.Subscription, action: string, options: { fetched?: boolean } = {}) {
  const { manager, trx } = context
  let object = input
  /**
   * A freshly fetched object is Stripe's current state: it is as new as now.
   */
  let observedAt = options.fetched ? DateTime.utc() : context.observedAt
  if (!options.fetched && manager.config.webhooks.refetch) {
    object = await manager.stripe.call((stripe) => stripe.subscriptions.retrieve(input.id))
    observedAt = DateTime.utc()
  }
  const stripeCustomerId = customerIdOf(object.customer)
  if (!stripeCustomerId) return 'ignored' as const
  context.customer = await resolveStripeCustomer(manager, trx, stripeCustomerId, {
    localId: object.metadata?.adonis_billing_customer_id,
    actor: context.actor,
  })
  const { subscription, changed } = await applyStripeSubscription(manager, trx, context.customer, object, {
    observedAt,
    actor: context.actor,
    action,
  })
  if (changed) context.emit(`billing:${action}`, { subscriptionId: subscription.id, status: subscription.status, plan: subscription.plan })
  return 'processed' as const
}

function subscriptionHandler(action: string): WebhookHandler {
  return (context) => applySubscriptionObject(context, context.event.data.object as Stripe.Subscription, action)
}

/**
 * `customer.subscription.*`
 */
export const subscriptionHandlers: Record<string, WebhookHandler> = {
  'customer.subscription.created': subscriptionHandler('subscription.created'),
  'customer.subscription.updated': subscriptionHandler('subscription.updated'),
  'customer.subscription.deleted': subscriptionHandler('subscription.deleted'),
  'customer.subscription.paused': subscriptionHandler('subscription.paused'),
  'customer.subscription.resumed': subscriptionHandler('subscription.resumed'),
  'customer.subscription.pending_update_applied': subscriptionHandler('subscription.pending_update_applied'),
  'customer.subscription.pending_update_expired': subscriptionHandler('subscription.pending_update_expired'),
  'customer.subscription.trial_will_end': async (context) => {
    const result = await applySubscriptionObject(context, context.event.data.object as Stripe.Subscription, 'subscription.updated')
    const object = context.event.data.object as Stripe.Subscription
    context.emit('billing:subscription.trial_will_end', { stripeSubscriptionId: object.id, trialEnd: object.trial_end })
    return result
  },
}
