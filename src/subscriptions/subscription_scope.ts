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
import Subscription from '../models/subscription.ts'
import type Customer from '../models/customer.ts'
import type { BillingManager } from '../billing_manager.ts'
import { StripeGateway } from '../stripe/stripe_gateway.ts'
import { BillingException, InvalidArgumentException } from '../errors.ts'
import { applyStripeSubscription, SUBSCRIPTION_NAME_KEY } from './apply_stripe_subscription.ts'
import { usageLookupKey } from '../catalog/catalog.ts'
import type { BillingInterval } from '../types.ts'

/**
 * The customer has no subscription of that name (or it has ended).
 */
export class SubscriptionNotFoundException extends BillingException {
  static status = 404
  static code = 'E_BILLING_SUBSCRIPTION_NOT_FOUND'
}

/**
 * The operation does not apply to the subscription's current state (e.g. resuming an ended one).
 */
export class InvalidSubscriptionStateException extends BillingException {
  static status = 409
  static code = 'E_BILLING_INVALID_SUBSCRIPTION_STATE'
}

/**
 * How a plan or quantity change is invoiced.
 */
export type ProrationOption = { prorate?: boolean; alwaysInvoice?: boolean }

function prorationBehavior(options: ProrationOption): Stripe.SubscriptionUpdateParams.ProrationBehavior {
  if (options.alwaysInvoice) return 'always_invoice'
  return options.prorate === false ? 'none' : 'create_prorations'
}

/**
 * Lifecycle operations on one named subscription of a customer (`billing.for(user).subscription('default')`).
 * Each call updates Stripe, then the local row from Stripe's response in one transaction with its
 * audit row, so the app is right before any webhook arrives.
 */
export class SubscriptionScope {
  #manager: BillingManager
  #customer: () => Promise<Customer>
  readonly name: string

  constructor(manager: BillingManager, customer: () => Promise<Customer>, name: string) {
    this.#manager = manager
    this.#customer = customer
    this.name = name
  }

  /**
   * The newest local row of this subscription name, or null.
   */
  async find(): Promise<Subscription | null> {
    const customer = await this.#customer()
    return Subscription.query({ client: this.#manager.db() })
      .where('customer_id', customer.id)
      .where('name', this.name)
      .orderBy('id', 'desc')
      .first()
  }

  async #current(): Promise<Subscription> {
    const subscription = await this.find()
    if (!subscription || !subscription.stripeSubscriptionId) {
      throw new SubscriptionNotFoundException(`No "${this.name}" subscription`)
    }
    return subscription
  }

  /**
   * Runs a Stripe update and writes its response locally.
   */
  async #update(action: string, params: Stripe.SubscriptionUpdateParams, check?: (subscription: Subscription) => void, metadata?: Record<string, unknown>) {
    const subscription = await this.#current()
    check?.(subscription)
    const object = await this.#manager.stripe.call((stripe) =>
      stripe.subscriptions.update(subscription.stripeSubscriptionId!, params, {
        idempotencyKey: StripeGateway.idempotencyKey(action, `${subscription.id}:${subscription.stripeUpdatedAt?.toMillis() ?? 0}`, params),
      })
    )
    return this.#store(action, object, metadata)
  }

  async #store(action: string, object: Stripe.Subscription, metadata?: Record<string, unknown>) {
    const customer = await this.#customer()
    return this.#manager.db().transaction(async (trx) => {
      const { subscription } = await applyStripeSubscription(this.#manager, trx, customer, object, {
        observedAt: DateTime.utc(),
        action,
        name: this.name,
        alwaysAudit: true,
        metadata,
      })
      return subscription
    })
  }

  /**
   * Moves the subscription to another plan (and interval). Prorates by default; `prorate: false`
   * bills the new price from the next period, `alwaysInvoice: true` invoices the proration now.
   */
  async swap(planKey: string, options: ProrationOption & { interval?: BillingInterval; quantity?: number } = {}) {
    const plan = this.#manager.catalog.plan(planKey)
    const current = await this.#current()
    const object = await this.#manager.stripe.call((stripe) => stripe.subscriptions.retrieve(current.stripeSubscriptionId!))
    return this.#manager.prices.retryOnRejection(async () =>
      this.#update('subscription.swapped', {
        items: await this.#swapItems(object, planKey, options),
        proration_behavior: prorationBehavior(options),
        metadata: { adonis_billing_plan: plan.key, [SUBSCRIPTION_NAME_KEY]: this.name },
      })
    )
  }

  /**
   * The item changes that move a Stripe subscription to a plan: the licensed item takes the plan's
   * flat price, metered items not in the plan are removed and the plan's usage prices added.
   */
  async #swapItems(object: Stripe.Subscription, planKey: string, options: { interval?: BillingInterval; quantity?: number }) {
    const plan = this.#manager.catalog.plan(planKey)
    const flat = plan.prices.find((price) => price.interval === (options.interval ?? object.items.data[0]?.price.recurring?.interval)) ?? plan.prices[0]
    if (!flat) throw new InvalidSubscriptionStateException(`Plan "${planKey}" has no recurring price to swap to`)
    const [flatPrice, ...usagePrices] = await this.#manager.prices.resolve([
      flat.lookupKey,
      ...plan.usagePrices.map((price) => usageLookupKey(plan, price, flat.interval)),
    ])

    const licensed = object.items.data.filter((item) => item.price.recurring?.usage_type !== 'metered')
    const metered = object.items.data.filter((item) => item.price.recurring?.usage_type === 'metered')
    const items: Stripe.SubscriptionUpdateParams.Item[] = [
      { ...(licensed[0] ? { id: licensed[0].id } : {}), price: flatPrice.id, quantity: options.quantity ?? licensed[0]?.quantity ?? 1 },
      ...licensed.slice(1).map((item) => ({ id: item.id, deleted: true })),
      ...metered.filter((item) => !usagePrices.some((price) => price.id === item.price.id)).map((item) => ({ id: item.id, deleted: true })),
      ...usagePrices.filter((price) => !metered.some((item) => item.price.id === price.id)).map((price) => ({ price: price.id })),
    ]
    return items
  }

  /**
   * Changes the quantity (seats) of the licensed item.
   */
  async updateQuantity(quantity: number, options: ProrationOption = {}) {
    if (!Number.isSafeInteger(quantity) || quantity < 1) throw new InvalidArgumentException('Quantity must be a positive integer')
    const current = await this.#current()
    const object = await this.#manager.stripe.call((stripe) => stripe.subscriptions.retrieve(current.stripeSubscriptionId!))
    const licensed = object.items.data.find((item) => item.price.recurring?.usage_type !== 'metered')
    if (!licensed) throw new InvalidSubscriptionStateException('The subscription has no licensed item')
    return this.#update('subscription.quantity_updated', {
      items: [{ id: licensed.id, quantity }],
      proration_behavior: prorationBehavior(options),
    })
  }

  /**
   * Cancels at the end of the period: features stay until then (grace period), `resume()` undoes it.
   */
  async cancel() {
    return this.#update('subscription.canceled', { cancel_at_period_end: true }, (subscription) => {
      if (subscription.ended()) throw new InvalidSubscriptionStateException('The subscription has already ended')
    })
  }

  /**
   * Cancels immediately. `invoiceNow` bills pending usage and prorations.
   */
  async cancelNow(options: { invoiceNow?: boolean; prorate?: boolean } = {}) {
    const subscription = await this.#current()
    const params: Stripe.SubscriptionCancelParams = { invoice_now: options.invoiceNow ?? false, prorate: options.prorate ?? false }
    const object = await this.#manager.stripe.call((stripe) =>
      stripe.subscriptions.cancel(subscription.stripeSubscriptionId!, params, {
        idempotencyKey: StripeGateway.idempotencyKey('subscription.cancel', subscription.id, params),
      })
    )
    return this.#store('subscription.canceled_now', object)
  }

  /**
   * Undoes `cancel()` while on the grace period.
   */
  async resume() {
    return this.#update('subscription.resumed', { cancel_at_period_end: false }, (subscription) => {
      if (!subscription.onGracePeriod()) throw new InvalidSubscriptionStateException('Only a subscription on its grace period can be resumed')
    })
  }

  /**
   * Pauses payment collection (`behavior`: what happens to invoices meanwhile).
   */
  async pause(options: { behavior?: 'keep_as_draft' | 'mark_uncollectible' | 'void'; resumesAt?: DateTime } = {}) {
    return this.#update('subscription.paused', {
      pause_collection: {
        behavior: options.behavior ?? 'void',
        ...(options.resumesAt ? { resumes_at: Math.floor(options.resumesAt.toSeconds()) } : {}),
      },
    })
  }

  /**
   * Resumes payment collection.
   */
  async unpause() {
    return this.#update('subscription.unpaused', { pause_collection: '' })
  }

  /**
   * Applies a promotion code (or coupon) to the subscription.
   */
  async applyDiscount(discount: { promotionCode?: string; coupon?: string }) {
    if (!discount.promotionCode === !discount.coupon) throw new InvalidArgumentException('Pass exactly one of promotionCode or coupon')
    return this.#update(
      'subscription.discount_applied',
      { discounts: [discount.promotionCode ? { promotion_code: discount.promotionCode } : { coupon: discount.coupon }] },
      undefined,
      { discount: discount.promotionCode ?? discount.coupon }
    )
  }

  /**
   * Preview of the next invoice; with `swapTo`, the proration a swap would create.
   */
  async upcomingInvoice(options: { swapTo?: string; interval?: BillingInterval; quantity?: number } = {}): Promise<Stripe.Invoice> {
    const current = await this.#current()
    const customer = await this.#customer()
    const params: Stripe.InvoiceCreatePreviewParams = { customer: customer.stripeCustomerId!, subscription: current.stripeSubscriptionId! }
    if (options.swapTo || options.quantity) {
      const object = await this.#manager.stripe.call((stripe) => stripe.subscriptions.retrieve(current.stripeSubscriptionId!))
      const items = await this.#swapItems(object, options.swapTo ?? current.plan, options)
      params.subscription_details = {
        items: items as Stripe.InvoiceCreatePreviewParams.SubscriptionDetails.Item[],
        proration_behavior: 'create_prorations',
      }
    }
    return this.#manager.stripe.call((stripe) => stripe.invoices.createPreview(params))
  }
}
