/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { CHECKOUT_LINK_KEY, checkoutLinkProof } from '../customers/checkout_link.ts'
import type { Stripe } from 'stripe'
import type Customer from '../models/customer.ts'
import type { BillingManager } from '../billing_manager.ts'
import { StripeGateway } from '../stripe/stripe_gateway.ts'
import { ensureStripeCustomer } from '../customers/stripe_customer_sync.ts'
import { flatPriceFor, planItems } from './subscribe.ts'
import { SUBSCRIPTION_NAME_KEY } from './apply_stripe_subscription.ts'
import { InvalidSubscriptionStateException } from './subscription_scope.ts'
import { InvalidArgumentException } from '../errors.ts'
import type { BillingInterval } from '../types.ts'

/**
 * Options of `billing.for(user).checkout(plan, options)`.
 */
export interface CheckoutOptions {
  successUrl: string
  cancelUrl: string
  name?: string
  interval?: BillingInterval
  quantity?: number
  trialDays?: number
  promotionCode?: string
  allowPromotionCodes?: boolean
  metadata?: Record<string, string>
}

/**
 * Options of `billing.for(user).checkout.charge(options)`: a one-off payment.
 */
export interface ChargeOptions {
  successUrl: string
  cancelUrl: string
  /** Line items: a catalog-free product name with an amount in minor units, or a Stripe price id */
  items: Array<{ name: string; amount: number; quantity?: number; currency?: string } | { price: string; quantity?: number }>
  metadata?: Record<string, string>
}

/**
 * Checkout settings shared by subscription and payment sessions: Stripe Tax, tax-id and address
 * collection as configured.
 */
function taxSettings(manager: BillingManager): Partial<Stripe.Checkout.SessionCreateParams> {
  const { tax } = manager.config
  const collecting = tax.automatic || tax.collectTaxIds
  return {
    automatic_tax: { enabled: tax.automatic },
    ...(tax.collectTaxIds ? { tax_id_collection: { enabled: true } } : {}),
    billing_address_collection: tax.collectAddress,
    ...(collecting ? { customer_update: { address: 'auto', name: 'auto' } } : {}),
  }
}

async function createSession(manager: BillingManager, customer: Customer, action: string, params: Stripe.Checkout.SessionCreateParams) {
  const session = await manager.stripe.call((stripe) =>
    stripe.checkout.sessions.create(params, {
      idempotencyKey: StripeGateway.idempotencyKey(`checkout.${params.mode}`, `${customer.id}:${customer.entitlementVersion}`, params),
    })
  )
  await manager.audit.record({
    action,
    subject: { type: 'checkout_session', id: session.id },
    customerId: customer.id,
    after: { mode: session.mode, amount_total: session.amount_total ?? null, currency: session.currency ?? null },
  })
  return { id: session.id, url: session.url! }
}

/**
 * A Checkout Session in subscription mode for a plan.
 */
export async function checkoutSubscription(manager: BillingManager, customer: Customer, planKey: string, options: CheckoutOptions) {
  const plan = manager.catalog.plan(planKey)
  if (plan.free) throw new InvalidSubscriptionStateException(`Plan "${plan.key}" is free: no checkout needed`)
  const stripeCustomerId = await ensureStripeCustomer(manager, customer)
  const trialDays = options.trialDays ?? flatPriceFor(plan, options.interval).trialDays ?? 0
  const metadata = {
    ...options.metadata,
    adonis_billing_plan: plan.key,
    [SUBSCRIPTION_NAME_KEY]: options.name ?? 'default',
    adonis_billing_customer_id: String(customer.id),
  }
  return manager.prices.retryOnRejection(async () =>
    createSession(manager, customer, 'checkout.subscription_started', {
      mode: 'subscription',
      customer: stripeCustomerId,
      client_reference_id: String(customer.id),
      line_items: await planItems(manager, plan, options.interval, options.quantity ?? 1),
      success_url: options.successUrl,
      cancel_url: options.cancelUrl,
      subscription_data: { metadata, ...(trialDays > 0 ? { trial_period_days: trialDays } : {}) },
      metadata: { ...metadata, [CHECKOUT_LINK_KEY]: checkoutLinkProof(manager.app, customer.id, stripeCustomerId) },
      ...(options.promotionCode ? { discounts: [{ promotion_code: options.promotionCode }] } : { allow_promotion_codes: options.allowPromotionCodes ?? false }),
      ...taxSettings(manager),
    })
  )
}

/**
 * A Checkout Session in payment mode for one-off charges.
 */
export async function checkoutCharge(manager: BillingManager, customer: Customer, options: ChargeOptions) {
  const stripeCustomerId = await ensureStripeCustomer(manager, customer)
  const lineItems = options.items.map((item): Stripe.Checkout.SessionCreateParams.LineItem => {
    if ('price' in item) return { price: item.price, quantity: item.quantity ?? 1 }
    if (!Number.isSafeInteger(item.amount) || item.amount <= 0) {
      throw new InvalidArgumentException(`Charge amount for "${item.name}" must be a positive integer in minor units`)
    }
    return {
      quantity: item.quantity ?? 1,
      price_data: { currency: item.currency ?? manager.config.currency, unit_amount: item.amount, product_data: { name: item.name } },
    }
  })
  return createSession(manager, customer, 'checkout.charge_started', {
    mode: 'payment',
    customer: stripeCustomerId,
    client_reference_id: String(customer.id),
    line_items: lineItems,
    success_url: options.successUrl,
    cancel_url: options.cancelUrl,
    metadata: { ...options.metadata, adonis_billing_customer_id: String(customer.id), [CHECKOUT_LINK_KEY]: checkoutLinkProof(manager.app, customer.id, stripeCustomerId) },
    invoice_creation: { enabled: true },
    ...taxSettings(manager),
  })
}

/**
 * A Billing Portal session URL for the customer.
 */
export async function portalUrl(manager: BillingManager, customer: Customer, options: { returnUrl: string }) {
  const stripeCustomerId = await ensureStripeCustomer(manager, customer)
  const session = await manager.stripe.call((stripe) =>
    stripe.billingPortal.sessions.create({ customer: stripeCustomerId, return_url: options.returnUrl })
  )
  return session.url
}
