/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import type { Stripe } from 'stripe'
import Customer from '../models/customer.ts'
import Subscription from '../models/subscription.ts'
import { isGranted } from '../entitlements/plan_entitlements.ts'
import { grantFeature, revokeFeature, type GrantOptions } from '../entitlements/grants.ts'
import type { FeatureValue } from '../types.ts'
import { detailParams, ensureStripeCustomer, setDefaultPaymentMethod, updateStripeCustomer, type StripeCustomerDetails } from './stripe_customer_sync.ts'
import { applyStripeInvoice } from '../invoices/apply_stripe_invoice.ts'
import Invoice from '../models/invoice.ts'
import { SubscriptionScope } from '../subscriptions/subscription_scope.ts'
import { subscribe, type SubscribeOptions } from '../subscriptions/subscribe.ts'
import { checkoutCharge, checkoutSubscription, portalUrl, type ChargeOptions, type CheckoutOptions } from '../subscriptions/checkout.ts'
import { toDbDateTime } from '../models/columns.ts'
import { billableIdentity, type BillableRow } from '../mixins/billable.ts'
import { FeatureNotIncludedException, IdempotencyConflictException, InvalidArgumentException, NotBillableException, PaymentRequiredException, QuotaExceededException } from '../errors.ts'
import { textProblem } from '../usage/usage_input.ts'
import { randomUUID } from 'node:crypto'
import { STRIPE_MAX_LENGTH, assertStripeLength } from '../stripe/stripe_limits.ts'
import { recordUsageEvent } from '../usage/record_usage.ts'
import { meterValue } from '../usage/meter_reading.ts'
import { SCALE, fixedText, roundHalfUp } from '../usage/decimal.ts'
import { priceUsage } from '../usage/usage_pricing.ts'
import type { EntitlementsSnapshot } from '../entitlements/entitlement_resolver.ts'
import type { BillingManager } from '../billing_manager.ts'
import debug from '../debug.ts'

/**
 * The customer-scoped billing API returned by `billing.for(billable)`. Later capabilities
 * (subscriptions, usage, entitlements) hang off this object.
 */
export class CustomerScope {
  #manager: BillingManager
  #billable: BillableRow
  #customer?: Customer

  constructor(manager: BillingManager, billable: BillableRow) {
    if (!billable || typeof billable !== 'object' || typeof (billable as any).billingEmail !== 'function') {
      throw new NotBillableException('billing.for() needs a model composed with the Billable mixin')
    }
    if (!billable.$isPersisted || billable.$primaryKeyValue === undefined || billable.$primaryKeyValue === null) {
      throw new NotBillableException('billing.for() needs a persisted model (save it first)')
    }
    this.#manager = manager
    this.#billable = billable
  }

  /**
   * The billable model this scope acts for.
   */
  get billable() {
    return this.#billable
  }

  /**
   * The customer row if it exists, without creating it.
   */
  async find(): Promise<Customer | null> {
    if (this.#customer) return this.#customer
    const { type, id } = billableIdentity(this.#billable)
    const customer = await Customer.query({ client: this.#manager.db() })
      .where('billable_type', type)
      .where('billable_id', id)
      .first()
    if (customer) this.#customer = customer
    return customer
  }

  /**
   * The customer row, created on first use exactly once even when several requests (or app
   * instances) ask at the same time: the insert relies on the unique (billable_type, billable_id)
   * key, and only the writer whose insert lands records the `customer.created` audit row.
   */
  async customer(): Promise<Customer> {
    const found = await this.find()
    if (found) return found

    const { type, id } = billableIdentity(this.#billable)
    const now = toDbDateTime(DateTime.utc())
    const created = await this.#manager.db().transaction(async (trx) => {
      const inserted = await trx
        .knexQuery()
        .table(Customer.table)
        .insert({
          billable_type: type,
          billable_id: id,
          email: this.#billable.billingEmail(),
          name: this.#billable.billingName(),
          currency: this.#manager.config.currency,
          balance: 0,
          entitlement_version: 0,
          created_at: now,
          updated_at: now,
        })
        .onConflict(['billable_type', 'billable_id'])
        .ignore()
        .returning('id')
      if (inserted.length === 0) return null

      const customerId = Number(typeof inserted[0] === 'object' ? inserted[0].id : inserted[0])
      await this.#manager.audit.record(
        {
          action: 'customer.created',
          subject: { type: 'customer', id: customerId },
          customerId,
          after: { billable_type: type, billable_id: id, email: this.#billable.billingEmail() },
        },
        { client: trx }
      )
      trx.after('commit', () => {
        this.#manager.emitter.emit('billing:customer.created' as any, { customerId, billableType: type, billableId: id })
      })
      return customerId
    })
    debug('customer for %s:%s %s', type, id, created ? `created (#${created})` : 'created concurrently elsewhere')

    this.#customer = await Customer.query({ client: this.#manager.db() })
      .where('billable_type', type)
      .where('billable_id', id)
      .firstOrFail()
    return this.#customer
  }

  /**
   * Features granted by the customer's live subscriptions (catalog values combined across
   * subscriptions and add-ons) and active grants. Without a customer row, nothing is granted.
   * `live` tells whether a subscription grants anything (402 vs 403 in the middleware).
   */
  async features(): Promise<{ live: boolean; features: Record<string, FeatureValue> }> {
    /**
     * Hot path (middleware): no query with a warm cache, one with a cold one
     */
    const { type, id } = billableIdentity(this.#billable)
    const values = await this.#manager.entitlements.values({ billableType: type, billableId: id })
    return values ? { live: values.live, features: values.features } : { live: false, features: {} }
  }

  /**
   * Everything the customer is entitled to, with usage:
   * `{ live, features: { sso: true, seats: { limit: 10, used: 3, remaining: 7 }, api_calls: { limit, used, remaining, resetsAt } } }`.
   */
  async entitlements(): Promise<EntitlementsSnapshot> {
    const customer = await this.find()
    if (!customer) {
      return { live: false, features: Object.fromEntries(Object.entries(this.#manager.config.features).map(([key, definition]) => [key, definition.type === 'boolean' ? false : { limit: 0, used: 0, remaining: 0, ...(definition.type === 'metered' ? { resetsAt: null } : {}) }])) }
    }
    return this.#manager.entitlements.resolve(customer, this.#billable)
  }

  /**
   * The limit of a limit or metered feature (`null` = unlimited, 0 = not included).
   */
  async limit(feature: string): Promise<number | null> {
    const value = (await this.features()).features[feature]
    return value === 'unlimited' ? null : typeof value === 'number' ? value : 0
  }

  /**
   * What is left of a limit or quota (`null` = unlimited).
   */
  async remaining(feature: string): Promise<number | null> {
    const entitlement = (await this.entitlements()).features[feature]
    if (entitlement === undefined || typeof entitlement === 'boolean') throw new InvalidArgumentException(`"${feature}" is not a limit or metered feature`)
    return entitlement.remaining
  }

  /**
   * Throws `E_BILLING_PAYMENT_REQUIRED` (no live subscription) or `E_BILLING_FEATURE_NOT_INCLUDED`
   * unless the feature is granted.
   */
  async assert(feature: string) {
    const decision = await this.check(feature)
    if (decision === 'no_plan') throw new PaymentRequiredException(`"${feature}" needs a subscription`)
    if (decision === 'not_included') throw new FeatureNotIncludedException(`Your plan does not include "${feature}"`)
  }

  /**
   * Uses `quantity` of a metered feature's quota, atomically: the customer row is locked (PostgreSQL)
   * while the period's usage is read and the usage recorded, so concurrent requests never overspend.
   * Throws `E_BILLING_QUOTA_EXCEEDED` (with `retryAfter`) when it would go over the limit. Each call
   * is one use unless it passes an `idempotencyKey` the server derived (never one a client sent): a
   * key already spent throws `E_BILLING_IDEMPOTENCY_CONFLICT` (409) and consumes nothing.
   */
  async consume(feature: string, quantity = 1, options: { idempotencyKey?: string } = {}) {
    const definition = this.#manager.config.features[feature]
    if (definition?.type !== 'metered') throw new InvalidArgumentException(`"${feature}" is not a metered feature`)
    if (!Number.isSafeInteger(quantity) || quantity <= 0) throw new InvalidArgumentException('Quantity must be a positive integer')
    if (options.idempotencyKey !== undefined) {
      const problem = textProblem(options.idempotencyKey, 255)
      if (problem) throw new InvalidArgumentException(`idempotencyKey ${problem}`)
    }
    await this.assert(feature)
    const customer = await this.customer()
    const values = (await this.#manager.entitlements.values({ customerId: customer.id }))!
    const value = values.features[feature]
    const limit = value === 'unlimited' ? null : typeof value === 'number' ? value : 0
    const now = DateTime.utc()
    const period = this.#manager.entitlements.period(values.subscriptions, now)
    return this.#manager.db().transaction(async (trx) => {
      if (trx.dialect.name === 'postgres') await trx.from(Customer.table).where('id', customer.id).forUpdate().select('id')
      const meter = this.#manager.config.meters[definition.meter]
      const exactUsed = await meterValue(trx, { key: definition.meter, ...meter }, customer.id, period.from, period.to)
      const used = Number(fixedText(exactUsed))
      if (limit !== null && exactUsed + BigInt(quantity) * SCALE > BigInt(limit) * SCALE) {
        const error = new QuotaExceededException(`The "${feature}" quota of ${limit} is spent until ${period.to.toUTC().toISO()}`)
        error.retryAfter = Math.max(1, Math.ceil(period.to.diff(now, 'seconds').seconds))
        error.details = { limit, used, resets_at: period.to.toUTC().toISO() }
        throw error
      }
      const recorded = await recordUsageEvent(trx, {
        customerId: customer.id,
        meter: definition.meter,
        quantity: String(quantity),
        idempotencyKey: options.idempotencyKey ?? randomUUID(),
        occurredAt: now,
      })
      /**
       * A key seen before is refused, never let through uncounted: a repeated key must not buy a
       * second use of the feature for free
       */
      if (!recorded) throw new IdempotencyConflictException(`The idempotency key of this "${feature}" consumption was already used`)
      return { limit, used: used + quantity, remaining: limit === null ? null : limit - used - quantity }
    })
  }

  /**
   * Grants a feature to this customer (manual or promotional override), audited.
   *
   * @example
   * await billing.for(team).grant('seats', 5, { expiresAt: DateTime.utc().plus({ months: 1 }), reason: 'launch promo' })
   */
  async grant(feature: string, value: FeatureValue, options: GrantOptions = {}) {
    return grantFeature(this.#manager, await this.customer(), feature, value, options)
  }

  /**
   * Revokes this customer's active grants of a feature; returns how many.
   */
  async revoke(feature: string, options: { grantId?: number; reason?: string; actor?: import('../types.ts').AuditActor } = {}) {
    return revokeFeature(this.#manager, await this.customer(), feature, options)
  }

  /**
   * `granted`, `no_plan` (no live subscription) or `not_included` (the plans lack the feature).
   */
  async check(feature: string): Promise<'granted' | 'no_plan' | 'not_included'> {
    const { type, id } = billableIdentity(this.#billable)
    const cached = this.#manager.entitlements.cachedDecision(type, id, feature)
    if (cached) return cached
    const { live, features } = await this.features()
    if (isGranted(features[feature])) return 'granted'
    return live ? 'not_included' : 'no_plan'
  }

  /**
   * Whether the customer may use the feature now.
   */
  async can(feature: string): Promise<boolean> {
    return (await this.check(feature)) === 'granted'
  }

  /**
   * The Stripe customer id, creating the Stripe customer (with metadata linking back here) when
   * needed. Free plans never call this.
   */
  async stripeCustomerId(details: StripeCustomerDetails = {}): Promise<string> {
    return ensureStripeCustomer(this.#manager, await this.customer(), details)
  }

  /**
   * One named subscription (`default` unless told).
   */
  subscription(name = 'default'): SubscriptionScope {
    return new SubscriptionScope(this.#manager, () => this.customer(), name)
  }

  /**
   * Local subscription rows of the customer, newest first.
   */
  async subscriptions(): Promise<Subscription[]> {
    const customer = await this.find()
    if (!customer) return []
    return Subscription.query({ client: this.#manager.db() }).where('customer_id', customer.id).orderBy('id', 'desc')
  }

  /**
   * Subscribes directly (payment method or trial). See `SubscribeResult` for SCA and declines.
   */
  async subscribe(plan: string, options: SubscribeOptions = {}) {
    return subscribe(this.#manager, await this.customer(), plan, options)
  }

  /**
   * A Stripe Checkout Session for a plan; `checkout.charge()` for one-off payments.
   *
   * @example
   * const { url } = await billing.for(user).checkout('pro', { interval: 'month', successUrl, cancelUrl })
   */
  get checkout() {
    const run = async (plan: string, options: CheckoutOptions) => checkoutSubscription(this.#manager, await this.customer(), plan, options)
    return Object.assign(run, {
      charge: async (options: ChargeOptions) => checkoutCharge(this.#manager, await this.customer(), options),
    })
  }

  /**
   * A Billing Portal URL.
   */
  async portalUrl(options: { returnUrl: string }) {
    return portalUrl(this.#manager, await this.customer(), options)
  }

  /**
   * The customer's invoices, newest first, fetched from Stripe and kept as local copies. Without a
   * Stripe customer there are none.
   */
  async invoices(options: { limit?: number } = {}): Promise<Invoice[]> {
    const customer = await this.find()
    if (!customer?.stripeCustomerId) return []
    const list = await this.#manager.stripe.call((stripe) =>
      stripe.invoices.list({ customer: customer.stripeCustomerId!, limit: options.limit ?? 24 })
    )
    return this.#manager.db().transaction(async (trx) => {
      const rows: Invoice[] = []
      for (const invoice of list.data) rows.push(await applyStripeInvoice(trx, customer, invoice))
      return rows
    })
  }

  /**
   * One invoice of this customer by Stripe id, or null (also for another customer's invoice).
   */
  async invoice(stripeInvoiceId: string): Promise<Invoice | null> {
    const customer = await this.find()
    if (!customer?.stripeCustomerId) return null
    const object = await this.#manager.stripe.call((stripe) => stripe.invoices.retrieve(stripeInvoiceId)).catch((error) => {
      if (error?.stripeCode === 'resource_missing') return null
      throw error
    })
    const owner = object && (typeof object.customer === 'string' ? object.customer : object.customer?.id)
    if (!object || owner !== customer.stripeCustomerId) return null
    return this.#manager.db().transaction((trx) => applyStripeInvoice(trx, customer, object))
  }

  /**
   * Preview of the next invoice of a subscription (`create_preview`); pass `swapTo` to see a swap's
   * proration.
   */
  async upcomingInvoice(options: { subscription?: string; swapTo?: string; quantity?: number } = {}): Promise<Stripe.Invoice> {
    return this.subscription(options.subscription).upcomingInvoice(options)
  }

  /**
   * Updates the Stripe customer (email, name, phone, address, preferred locales, metadata) and the
   * local row.
   */
  async updateStripeCustomer(details: StripeCustomerDetails) {
    const params = detailParams(details)
    return updateStripeCustomer(this.#manager, await this.customer(), 'customer.updated', (stripe, id, key) =>
      stripe.customers.update(id, params, key('customer.update', params))
    )
  }

  /**
   * Sets the tax exemption (`none`, `exempt`, `reverse`).
   */
  async setTaxExempt(status: 'none' | 'exempt' | 'reverse') {
    return updateStripeCustomer(this.#manager, await this.customer(), 'customer.tax_exempt_changed', (stripe, id, key) =>
      stripe.customers.update(id, { tax_exempt: status }, key('customer.tax_exempt', status))
    )
  }

  /**
   * Tax ids of the customer (VAT numbers, ...), mirrored on the customer row.
   */
  get taxIds() {
    return {
      add: async (type: string, value: string): Promise<Customer> =>
        updateStripeCustomer(this.#manager, await this.customer(), 'customer.tax_id_added', (stripe, id, key) =>
          stripe.customers.createTaxId(id, { type: type as any, value }, key('customer.tax_id_added', { type, value }))
        ),
      remove: async (taxId: string): Promise<Customer> =>
        updateStripeCustomer(this.#manager, await this.customer(), 'customer.tax_id_removed', (stripe, id) =>
          stripe.customers.deleteTaxId(id, taxId)
        ),
      list: async (): Promise<Array<{ id: string; type: string; value: string }>> => {
        const id = await this.stripeCustomerId()
        const list = await this.#manager.stripe.call((stripe) => stripe.customers.listTaxIds(id, { limit: 100 }))
        return list.data.map((taxId) => ({ id: taxId.id, type: taxId.type, value: taxId.value }))
      },
    }
  }

  /**
   * Attaches a payment method and makes it the default for invoices.
   */
  async setDefaultPaymentMethod(paymentMethod: string) {
    return setDefaultPaymentMethod(this.#manager, await this.customer(), paymentMethod)
  }

  /**
   * Adds to the customer's balance (negative = credit applied to next invoices), in minor units.
   */
  async adjustBalance(amount: number, description: string) {
    if (!Number.isSafeInteger(amount) || amount === 0) throw new InvalidArgumentException('Balance adjustments are non-zero integers in minor units')
    assertStripeLength(description, STRIPE_MAX_LENGTH.balanceTransactionDescription, 'description')
    const params = { amount, currency: this.#manager.config.currency, description }
    return updateStripeCustomer(this.#manager, await this.customer(), 'customer.balance_adjusted', (stripe, id, key) =>
      stripe.customers.createBalanceTransaction(id, params, key('customer.balance_adjusted', params))
    )
  }

  /**
   * Usage of one meter for this customer.
   *
   * @example
   * await billing.for(user).usage('api_calls').record(1, { idempotencyKey: ctx.request.id()! })
   */
  usage(meter: string) {
    return {
      record: async (quantity: number | string, options: { idempotencyKey: string; at?: DateTime | string; properties?: Record<string, unknown> }) => {
        const customer = await this.customer()
        const [result] = await this.#manager.usage.recordMany([{ customerId: customer.id, meter, quantity, ...options }])
        return result.status
      },
      /**
       * The meter's exact value over [from, to) by its aggregation (sum, count, max, last,
       * unique_count), as decimal text (`'12.5'`): never rounded through a float.
       */
      total: async (from: DateTime, to: DateTime): Promise<string> => {
        const customer = await this.find()
        const definition = this.#manager.config.meters[meter]
        if (!definition) throw new InvalidArgumentException(`Unknown meter "${meter}"`)
        return customer ? fixedText(await meterValue(this.#manager.db(), { key: meter, ...definition }, customer.id, from, to)) : '0'
      },
      /**
       * The charge so far this billing period under the customer's plan, priced on exactly the
       * quantity Stripe will bill: the period's usage (`usage`, exact) rounded half up to a whole
       * number (`quantity`), since Stripe meter values are integers and the reporter sends the rounded
       * period total. Minor units, with the tier breakdown; null without a live plan pricing this meter.
       */
      preview: async () => {
        const customer = await this.find()
        if (!customer) return null
        const values = (await this.#manager.entitlements.values({ customerId: customer.id }))!
        const subscription = values.subscriptions.find((candidate) => this.#manager.config.plans[candidate.plan]?.usagePrices.some((price) => price.meter === meter))
        if (!subscription) return null
        const price = this.#manager.config.plans[subscription.plan].usagePrices.find((candidate) => candidate.meter === meter)!
        const period = this.#manager.entitlements.period([subscription])
        const usage = await meterValue(this.#manager.db(), { key: meter, ...this.#manager.config.meters[meter] }, customer.id, period.from, period.to)
        return {
          plan: subscription.plan,
          periodStart: period.from.toUTC().toISO(),
          periodEnd: period.to.toUTC().toISO(),
          usage: fixedText(usage),
          ...priceUsage(price, String(roundHalfUp(usage))),
        }
      },
    }
  }
}
