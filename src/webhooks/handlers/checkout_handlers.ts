/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Stripe } from 'stripe'
import { resolveStripeCustomer } from '../customer_resolver.ts'
import { verifiedCheckoutLink } from '../../customers/checkout_link.ts'
import { applySubscriptionObject } from './subscription_handlers.ts'
import type { WebhookHandler } from '../webhook_context.ts'

/**
 * `checkout.session.completed`: links the Stripe customer to the local customer a session made by the
 * package names (signed metadata; merging an unlinked customer recorded by earlier events), then applies the
 * session's subscription, fetched from Stripe since the session only names it.
 */
const checkoutCompleted: WebhookHandler = async (context) => {
  const { manager, trx } = context
  const session = context.event.data.object as Stripe.Checkout.Session
  const stripeCustomerId = typeof session.customer === 'string' ? session.customer : session.customer?.id
  if (!stripeCustomerId) return 'ignored'
  context.customer = await resolveStripeCustomer(manager, trx, stripeCustomerId, {
    /**
     * Linked only to the customer a package-made session names with its signed proof: never to
     * `client_reference_id`, which a buyer can set on Payment Links and pricing tables
     */
    localId: verifiedCheckoutLink(manager.app, session.metadata, stripeCustomerId),
    actor: context.actor,
    email: session.customer_details?.email ?? null,
    name: session.customer_details?.name ?? null,
  })
  await manager.audit.record(
    {
      action: 'checkout.completed',
      actor: context.actor,
      subject: { type: 'checkout_session', id: session.id },
      customerId: context.customer.id,
      after: { mode: session.mode, amount_total: session.amount_total ?? null, currency: session.currency ?? null },
    },
    { client: trx }
  )
  const subscriptionId = typeof session.subscription === 'string' ? session.subscription : session.subscription?.id
  if (subscriptionId) {
    const subscription = await manager.stripe.call((stripe) => stripe.subscriptions.retrieve(subscriptionId))
    await applySubscriptionObject(context, subscription, 'subscription.updated', { fetched: true })
  }
  context.emit('billing:checkout.completed', { customerId: context.customer.id, sessionId: session.id, mode: session.mode })
  return 'processed'
}

/**
 * `checkout.session.*`
 */
export const checkoutHandlers: Record<string, WebhookHandler> = {
  'checkout.session.completed': checkoutCompleted,
  'checkout.session.async_payment_succeeded': checkoutCompleted,
}
