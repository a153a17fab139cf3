/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { bumpEntitlementVersion } from '../entitlements/entitlement_cache.ts'
import type { Stripe } from 'stripe'
import { DateTime } from 'luxon'
import type Customer from '../models/customer.ts'
import Subscription from '../models/subscription.ts'
import type { BillingManager } from '../billing_manager.ts'
import { StripeGateway } from '../stripe/stripe_gateway.ts'
import { usageLookupKey } from '../catalog/catalog.ts'
import { ensureStripeCustomer, setDefaultPaymentMethod } from '../customers/stripe_customer_sync.ts'
import { applyStripeSubscription, SUBSCRIPTION_NAME_KEY } from './apply_stripe_subscription.ts'
import { applyStripeInvoice } from '../invoices/apply_stripe_invoice.ts'
import { InvalidSubscriptionStateException } from './subscription_scope.ts'
import type { BillingInterval, ResolvedPlan } from '../types.ts'

/**
 * Options of `billing.for(user).subscribe()`.
 */
export interface SubscribeOptions {
  /** Subscription name (several per customer), default `default` */
  name?: string
  interval?: BillingInterval
  quantity?: number
  /** Overrides the plan's trial days; 0 disables the trial */
  trialDays?: number
  /** A payment method id (`pm_...`) to attach and make the default */
  paymentMethod?: string
  promotionCode?: string
  coupon?: string
  metadata?: Record<string, string>
}

/**
 * What `subscribe()` returns: the local row, and what the frontend must do when the first payment
 * needs the customer (3-D Secure: confirm `clientSecret` with Stripe.js; declined: collect another card).
 */
export interface SubscribeResult {
  subscription: Subscription
  outcome: 'active' | 'trialing' | 'requires_action' | 'requires_payment_method'
  clientSecret: string | null
  invoiceId: string | null
}

/**
 * The flat price of a plan for an interval (the plan's first one by default).
 */
export function flatPriceFor(plan: ResolvedPlan, interval?: BillingInterval) {
  const price = interval ? plan.prices.find((candidate) => candidate.interval === interval) : plan.prices[0]
  if (!price) {
    throw new InvalidSubscriptionStateException(
      interval ? `Plan "${plan.key}" has no ${interval}ly price` : `Plan "${plan.key}" has no recurring price`
    )
  }
  return price
}

/**
 * Stripe line items of a plan: the flat price with its quantity and every usage price.
 */
export async function planItems(manager: BillingManager, plan: ResolvedPlan, interval?: BillingInterval, quantity = 1) {
  const flat = flatPriceFor(plan, interval)
  const prices = await manager.prices.resolve([flat.lookupKey, ...plan.usagePrices.map((price) => usageLookupKey(plan, price, flat.interval))])
  return prices.map((price, index) => (index === 0 ? { price: price.id, quantity } : { price: price.id }))
}

/**
 * Subscribes the customer to a plan directly (with a payment method, or on a trial without one).
 * Declined cards and 3-D Secure leave an `incomplete` subscription, stored locally, and say so in
 * `outcome`; Stripe errors (429, 5xx, timeouts) surface as typed exceptions. A payment method is
 * attached and made the default first (mirrored locally, as in Stripe), so it stays when the
 * subscription create then fails; no subscription is stored then.
 */
export async function subscribe(manager: BillingManager, customer: Customer, planKey: string, options: SubscribeOptions = {}): Promise<SubscribeResult> {
  const plan = manager.catalog.plan(planKey)
  const name = options.name ?? 'default'
  if (plan.free) return subscribeFree(manager, customer, plan, name)
  const stripeCustomerId = await ensureStripeCustomer(manager, customer)
  /**
   * Prices resolved and verified against the catalog before anything is attached (cached for the
   * create below)
   */
  await planItems(manager, plan, options.interval, options.quantity ?? 1)
  const trialDays = options.trialDays ?? flatPriceFor(plan, options.interval).trialDays ?? 0

  /**
   * Attach first: a card that cannot be attached (declined outright) fails here, before any
   * subscription exists. Stripe returns the attached method's id (test tokens become new ids).
   */
  let paymentMethod: string | undefined
  if (options.paymentMethod) {
    paymentMethod = (await setDefaultPaymentMethod(manager, customer, options.paymentMethod)).defaultPaymentMethod ?? undefined
  }

  /**
   * Prices resolved (and verified against the catalog) inside the retry: a price Stripe rejects as
   * archived is resolved again once
   */
  const object = await manager.prices.retryOnRejection(async () => {
    const params: Stripe.SubscriptionCreateParams = {
      customer: stripeCustomerId,
      items: await planItems(manager, plan, options.interval, options.quantity ?? 1),
      payment_behavior: 'allow_incomplete',
      expand: ['latest_invoice.confirmation_secret'],
      metadata: { ...options.metadata, adonis_billing_plan: plan.key, [SUBSCRIPTION_NAME_KEY]: name, adonis_billing_customer_id: String(customer.id) },
      ...(trialDays > 0 ? { trial_period_days: trialDays, trial_settings: { end_behavior: { missing_payment_method: 'pause' } } } : {}),
      ...(paymentMethod ? { default_payment_method: paymentMethod } : {}),
      ...(options.promotionCode ? { discounts: [{ promotion_code: options.promotionCode }] } : options.coupon ? { discounts: [{ coupon: options.coupon }] } : {}),
      ...(manager.config.tax.automatic ? { automatic_tax: { enabled: true } } : {}),
    }
    return manager.stripe.call((stripe) =>
      stripe.subscriptions.create(params, {
        idempotencyKey: StripeGateway.idempotencyKey('subscription.create', `${customer.id}:${customer.entitlementVersion}`, params),
      })
    )
  })

  const subscription = await manager.db().transaction(async (trx) => {
    const result = await applyStripeSubscription(manager, trx, customer, object, { observedAt: DateTime.utc(), action: 'subscription.created', name })
    if (object.latest_invoice && typeof object.latest_invoice === 'object') await applyStripeInvoice(trx, customer, object.latest_invoice)
    return result.subscription
  })
  await customer.refresh()

  const invoice = typeof object.latest_invoice === 'object' ? object.latest_invoice : null
  const clientSecret = invoice?.confirmation_secret?.client_secret ?? null
  let outcome: SubscribeResult['outcome'] = object.status === 'trialing' ? 'trialing' : 'active'
  if (object.status === 'incomplete') outcome = await firstPaymentOutcome(manager, invoice)
  return { subscription, outcome, clientSecret, invoiceId: invoice?.id ?? null }
}

/**
 * Free plans live only in the database: no Stripe customer, no Stripe subscription.
 */
async function subscribeFree(manager: BillingManager, customer: Customer, plan: ResolvedPlan, name: string): Promise<SubscribeResult> {
  const subscription = await manager.db().transaction(async (trx) => {
    const existing = await Subscription.query({ client: trx })
      .where('customer_id', customer.id)
      .where('name', name)
      .where('plan', plan.key)
      .whereNull('stripe_subscription_id')
      .where('status', 'active')
      .first()
    if (existing) return existing
    const row = await Subscription.create(
      { customerId: customer.id, name, plan: plan.key, status: 'active', quantity: null, stripeSubscriptionId: null, cancelAtPeriodEnd: false, stripeUpdatedAt: DateTime.utc() },
      { client: trx }
    )
    await bumpEntitlementVersion(manager.entitlementCache, trx, customer.id)
    await manager.audit.record(
      { action: 'subscription.created', subject: { type: 'subscription', id: row.id }, customerId: customer.id, after: { plan: plan.key, status: 'active', free: true } },
      { client: trx }
    )
    return row
  })
  return { subscription, outcome: 'active', clientSecret: null, invoiceId: null }
}

/**
 * Why the first payment of an incomplete subscription did not go through: the payment intent asks for
 * customer action (3-D Secure), or needs another payment method (declined).
 */
async function firstPaymentOutcome(manager: BillingManager, invoice: Stripe.Invoice | null): Promise<'requires_action' | 'requires_payment_method'> {
  if (!invoice?.id) return 'requires_payment_method'
  return manager.stripe.call(async (stripe) => {
    const withPayments = invoice.payments ? invoice : await stripe.invoices.retrieve(invoice.id!, { expand: ['payments'] })
    const reference = withPayments.payments?.data?.[0]?.payment?.payment_intent
    if (!reference) return 'requires_payment_method'
    const intent = typeof reference === 'string' ? await stripe.paymentIntents.retrieve(reference) : reference
    return intent.status === 'requires_action' || intent.status === 'requires_confirmation' ? 'requires_action' : 'requires_payment_method'
  })
}
