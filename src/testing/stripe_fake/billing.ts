/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { behaviorOf, customerPaymentMethod, declineError, type TestCard } from './cards.ts'
import { cardError, invalidRequest, missingParameter, resourceMissing } from './errors.ts'
import type { Engine } from './engine.ts'
import { aggregateUsage } from './resources/meters.ts'
import {
  addInterval,
  applyMetadata,
  arr,
  bool,
  formatDate,
  int,
  jsonEqual,
  oneOf,
  PICO,
  picoToMinor,
  prorate,
  randomToken,
  stableId,
  str,
  toPico,
  type Obj,
} from './util.ts'

/**
 * Rate of the deterministic "automatic tax" the fake applies when `automatic_tax[enabled]=true`:
 * 10 % exclusive tax on every line (after discounts), rounded half up per line.
 */
export const FAKE_TAX_PERCENT = 10
/**
 * The tax rate id the fake's tax lines point to.
 */
export const FAKE_TAX_RATE_ID = 'txr_stripe_fake_10_percent'

/**
 * An invoice line before totals are computed.
 */
export interface DraftLine {
  amount: number
  description: string
  quantity: number | null
  price: Obj | null
  period: { start: number; end: number }
  proration: boolean
  subscription: string | null
  subscriptionItem: string | null
  discountable: boolean
}

/**
 * A discount requested by a `discounts[]` parameter, validated but not yet applied.
 */
export interface DiscountSpec {
  coupon: Obj
  promotionCode: Obj | null
  existing: Obj | null
}

type Outcome = 'paid' | 'declined' | 'requires_action' | 'pending'

interface ItemChange {
  item: Obj
  oldPrice: Obj | null
  oldQuantity: number
  newPrice: Obj | null
  newQuantity: number
}

interface ItemsPlan {
  items: Obj[]
  changes: ItemChange[]
  intervalChanged: boolean
}

const LIVE_STATUSES = ['active', 'trialing', 'past_due']

/**
 * Subscription, invoice and payment simulation: the part of the fake that decides statuses, periods,
 * amounts, prorations, discounts and taxes, and emits the events Stripe would.
 */
export class Billing {
  #engine: Engine

  constructor(engine: Engine) {
    this.#engine = engine
    engine.renderers.set('subscription', (copy) => {
      for (const item of copy.items?.data ?? []) {
        const price = engine.store.get(item.price?.id)
        if (price) {
          item.price = structuredClone(price)
          item.plan = this.plan(price)
        }
      }
    })
  }

  // ---------------------------------------------------------------------------------------------
  // Prices and amounts
  // ---------------------------------------------------------------------------------------------

  /**
   * Amount in minor units of `quantity` units of a price (per unit, tiered or transformed quantity).
   */
  priceAmount(price: Obj, quantity: number): number {
    let q = quantity
    if (price.transform_quantity?.divide_by) {
      const divided = q / price.transform_quantity.divide_by
      q = price.transform_quantity.round === 'up' ? Math.ceil(divided) : Math.floor(divided)
    }
    // Decimal unit amounts are summed exactly (1e-12 minor units) and rounded half up once per line.
    const pico = (amount: number | null, decimalValue: string | null) =>
      decimalValue !== null && decimalValue !== undefined ? toPico(decimalValue, 'unit_amount_decimal') : BigInt(amount ?? 0) * PICO
    const units = BigInt(q)
    if (price.billing_scheme === 'tiered') {
      const tiers: Obj[] = this.#engine.meta(price.id).tiers ?? []
      if (price.tiers_mode === 'volume') {
        const tier = tiers.find((t) => t.up_to === null || q <= t.up_to) ?? tiers[tiers.length - 1]
        if (!tier) return 0
        // Quantity 0 falls in the first tier: its flat amount is billed with no usage, as Stripe does.
        return picoToMinor(pico(tier.unit_amount, tier.unit_amount_decimal) * units + pico(tier.flat_amount, tier.flat_amount_decimal))
      }
      let total = 0n
      let lower = 0
      for (const [index, tier] of tiers.entries()) {
        if (q <= lower && index > 0) break
        const upper = tier.up_to === null ? q : Math.min(q, tier.up_to)
        total += pico(tier.unit_amount, tier.unit_amount_decimal) * BigInt(upper - lower) + pico(tier.flat_amount, tier.flat_amount_decimal)
        lower = upper
      }
      return picoToMinor(total)
    }
    return picoToMinor(pico(price.unit_amount, price.unit_amount_decimal) * units)
  }

  /**
   * The legacy `plan` object Stripe still renders next to a subscription item's price.
   */
  plan(price: Obj): Obj {
    const plan = this.#engine.fixture('subscription_item').plan as Obj
    return Object.assign(plan, {
      id: price.id,
      object: 'plan',
      active: price.active,
      amount: price.unit_amount,
      amount_decimal: price.unit_amount_decimal,
      billing_scheme: price.billing_scheme,
      created: price.created,
      currency: price.currency,
      interval: price.recurring?.interval ?? null,
      interval_count: price.recurring?.interval_count ?? null,
      livemode: false,
      metadata: price.metadata,
      meter: price.recurring?.meter ?? null,
      nickname: price.nickname,
      product: price.product,
      tiers_mode: price.tiers_mode,
      transform_usage: null,
      trial_period_days: price.recurring?.trial_period_days ?? null,
      usage_type: price.recurring?.usage_type ?? 'licensed',
    })
  }

  #productName(price: Obj): string {
    return this.#engine.store.get(price.product)?.name ?? price.product
  }

  #isMetered(price: Obj) {
    return price.recurring?.usage_type === 'metered'
  }

  /**
   * Resolves `price` / `price_data` of an item parameter into a stored price (creating inline prices).
   */
  resolveItemPrice(item: Obj, param: string, createPrice: (data: Obj, param: string) => Obj): Obj {
    if (item.price !== undefined && item.price !== '') {
      const price = this.#engine.require(item.price, 'price', 'price', `${param}[price]`, 400)
      if (!price.active) {
        throw invalidRequest('The price specified is inactive. This field only accepts active prices.', {
          param: `${param}[price]`,
        })
      }
      return price
    }
    if (item.price_data) return createPrice(item.price_data, `${param}[price_data]`)
    throw missingParameter(`${param}[price]`)
  }

  // ---------------------------------------------------------------------------------------------
  // Discounts
  // ---------------------------------------------------------------------------------------------

  /**
   * Validates a `discounts` parameter (`[{ coupon } | { promotion_code } | { discount }]`).
   */
  resolveDiscounts(value: unknown, customer: Obj | null, param = 'discounts'): DiscountSpec[] {
    const list = arr(value) ?? []
    const now = this.#engine.now()
    return list.map((entry, index) => {
      const e = (entry ?? {}) as Obj
      const p = `${param}[${index}]`
      if (e.discount) {
        const existing = this.#engine.require(e.discount, 'discount', 'discount', `${p}[discount]`, 400)
        return { coupon: this.#engine.store.get(existing.source.coupon)!, promotionCode: null, existing }
      }
      if (e.promotion_code) {
        const promo = this.#engine.require(e.promotion_code, 'promotion_code', 'promotion code', `${p}[promotion_code]`, 400)
        if (!promo.active || (promo.expires_at !== null && promo.expires_at <= now)) {
          throw invalidRequest('This promotion code cannot be redeemed because it is inactive or expired.', {
            param: `${p}[promotion_code]`,
            code: 'promotion_code_invalid',
          })
        }
        if (promo.max_redemptions !== null && promo.times_redeemed >= promo.max_redemptions) {
          throw invalidRequest('This promotion code has reached its maximum number of redemptions.', {
            param: `${p}[promotion_code]`,
            code: 'promotion_code_invalid',
          })
        }
        if (promo.customer && customer && promo.customer !== customer.id) {
          throw invalidRequest('This promotion code cannot be redeemed by this customer.', {
            param: `${p}[promotion_code]`,
            code: 'promotion_code_customer_not_eligible',
          })
        }
        const coupon = this.#engine.require(promo.promotion.coupon, 'coupon', 'coupon', `${p}[promotion_code]`, 400)
        this.#checkCoupon(coupon, `${p}[promotion_code]`)
        return { coupon, promotionCode: promo, existing: null }
      }
      if (e.coupon) {
        const coupon = this.#engine.require(e.coupon, 'coupon', 'coupon', `${p}[coupon]`, 400)
        this.#checkCoupon(coupon, `${p}[coupon]`)
        return { coupon, promotionCode: null, existing: null }
      }
      throw missingParameter(`${p}[coupon]`)
    })
  }

  #checkCoupon(coupon: Obj, param: string) {
    const now = this.#engine.now()
    const exhausted = coupon.max_redemptions !== null && coupon.times_redeemed >= coupon.max_redemptions
    const expired = coupon.redeem_by !== null && coupon.redeem_by <= now
    if (!coupon.valid || exhausted || expired) {
      throw invalidRequest(`Coupon is not valid: ${coupon.id}`, { param, code: 'coupon_expired' })
    }
  }

  /**
   * Stores discount objects for validated specs (bumping redemption counters).
   */
  applyDiscounts(specs: DiscountSpec[], owner: { customer: string | null; subscription?: string; checkoutSession?: string }): Obj[] {
    const engine = this.#engine
    const now = engine.now()
    return specs.map((spec) => {
      if (spec.existing) return spec.existing
      const discount = engine.fixture('discount')
      Object.assign(discount, {
        id: engine.id('di_'),
        object: 'discount',
        checkout_session: owner.checkoutSession ?? null,
        customer: owner.customer,
        end: spec.coupon.duration === 'repeating' ? addInterval(now, 'month', spec.coupon.duration_in_months ?? 1) : null,
        invoice: null,
        invoice_item: null,
        promotion_code: spec.promotionCode?.id ?? null,
        start: now,
        subscription: owner.subscription ?? null,
        subscription_item: null,
        source: { coupon: spec.coupon.id, type: 'coupon' },
        customer_account: null,
      })
      spec.coupon.times_redeemed += 1
      if (spec.promotionCode) spec.promotionCode.times_redeemed += 1
      return engine.save(discount)
    })
  }

  /**
   * Discount objects among `ids` that still apply at `at`.
   */
  #activeDiscounts(ids: unknown, at: number): Obj[] {
    const out: Obj[] = []
    for (const id of (ids as string[] | undefined) ?? []) {
      const discount = this.#engine.store.get(id)
      if (!discount) continue
      const coupon = this.#engine.store.get(discount.source.coupon)
      if (!coupon) continue
      if (discount.end !== null && discount.end <= at) continue
      if (coupon.duration === 'once' && this.#engine.meta(discount.id).used) continue
      out.push(discount)
    }
    return out
  }

  // ---------------------------------------------------------------------------------------------
  // Invoices
  // ---------------------------------------------------------------------------------------------

  #lineObject(line: DraftLine, invoiceId: string, currency: string, preview: boolean): Obj {
    const engine = this.#engine
    const li = engine.fixture('line_item')
    const unit = line.quantity ? line.amount / line.quantity : line.amount
    Object.assign(li, {
      id: preview ? engine.id('il_tmp_') : engine.id('il_'),
      object: 'line_item',
      amount: line.amount,
      currency,
      description: line.description,
      discount_amounts: [],
      discountable: line.discountable,
      discounts: [],
      invoice: invoiceId,
      livemode: false,
      metadata: {},
      parent: line.subscriptionItem
        ? {
            invoice_item_details: null,
            subscription_item_details: {
              invoice_item: line.proration ? engine.id('ii_') : null,
              proration: line.proration,
              proration_details: { credited_items: null },
              subscription: line.subscription,
              subscription_item: line.subscriptionItem,
            },
            type: 'subscription_item_details',
          }
        : {
            invoice_item_details: {
              invoice_item: engine.id('ii_'),
              proration: line.proration,
              proration_details: { credited_items: null },
              subscription: line.subscription,
            },
            subscription_item_details: null,
            type: 'invoice_item_details',
          },
      period: { ...line.period },
      pretax_credit_amounts: [],
      pricing: line.price
        ? {
            price_details: { price: line.price.id, product: line.price.product },
            type: 'price_details',
            unit_amount_decimal: Number.isInteger(unit) ? String(unit) : unit.toFixed(12).replace(/0+$/, ''),
          }
        : null,
      quantity: line.quantity,
      quantity_decimal: line.quantity === null ? null : String(line.quantity),
      subscription: line.subscription,
      subtotal: line.amount,
      taxes: [],
    })
    return li
  }

  /**
   * Builds an invoice (not stored) with Stripe's totals: discounts per line (percent rounded half up,
   * amount_off spread over positive lines), then the fake's exclusive tax on the discounted amount,
   * then the customer's balance.
   */
  buildInvoice(options: {
    customer: Obj
    subscription: Obj | null
    lines: DraftLine[]
    discounts: Obj[]
    automaticTax: boolean
    billingReason: string
    periodStart: number
    periodEnd: number
    currency: string
    preview?: boolean
  }): Obj {
    const engine = this.#engine
    const now = engine.now()
    const preview = options.preview ?? false
    const id = preview ? engine.id('upcoming_in_') : engine.id('in_')
    const lines = options.lines.map((line) => this.#lineObject(line, id, options.currency, preview))

    const totalDiscounts = new Map<string, number>()
    for (const discount of options.discounts) {
      const coupon = engine.store.get(discount.source.coupon)
      if (!coupon) continue
      if (coupon.percent_off !== null && coupon.percent_off !== undefined) {
        const basisPoints = Math.round(coupon.percent_off * 100)
        for (const line of lines) {
          if (!line.discountable || line.amount === 0) continue
          const amount = prorate(line.amount, basisPoints, 10_000)
          if (!amount) continue
          line.discount_amounts.push({ amount, discount: discount.id })
          line.pretax_credit_amounts.push({ amount, discount: discount.id, type: 'discount' })
          totalDiscounts.set(discount.id, (totalDiscounts.get(discount.id) ?? 0) + amount)
        }
      } else if (coupon.amount_off) {
        let remaining = coupon.amount_off
        for (const line of lines) {
          if (!line.discountable || line.amount <= 0 || remaining <= 0) continue
          const already = line.discount_amounts.reduce((t: number, d: Obj) => t + d.amount, 0)
          const amount = Math.min(remaining, line.amount - already)
          if (amount <= 0) continue
          remaining -= amount
          line.discount_amounts.push({ amount, discount: discount.id })
          line.pretax_credit_amounts.push({ amount, discount: discount.id, type: 'discount' })
          totalDiscounts.set(discount.id, (totalDiscounts.get(discount.id) ?? 0) + amount)
        }
      }
      for (const line of lines) {
        if (line.discount_amounts.some((d: Obj) => d.discount === discount.id)) line.discounts.push(discount.id)
      }
    }

    let taxTotal = 0
    let taxable = 0
    for (const line of lines) {
      const discounted = line.amount - line.discount_amounts.reduce((t: number, d: Obj) => t + d.amount, 0)
      if (!options.automaticTax) continue
      const tax = prorate(discounted, FAKE_TAX_PERCENT, 100)
      line.taxes = [
        {
          amount: tax,
          tax_behavior: 'exclusive',
          tax_rate_details: { tax_rate: FAKE_TAX_RATE_ID },
          taxability_reason: 'standard_rated',
          taxable_amount: discounted,
          type: 'tax_rate_details',
        },
      ]
      taxTotal += tax
      taxable += discounted
    }

    const subtotal = lines.reduce((t, l) => t + l.amount, 0)
    const discountTotal = [...totalDiscounts.values()].reduce((t, a) => t + a, 0)
    const total = subtotal - discountTotal + taxTotal
    const startingBalance = options.customer.balance ?? 0
    const applied = total + startingBalance
    const amountDue = Math.max(0, applied)
    const customerTaxIds = engine
      .all('tax_id')
      .filter((t) => t.customer === options.customer.id)
      .reverse()
      .map((t) => ({ type: t.type, value: t.value }))

    const invoice = engine.fixture('invoice')
    delete invoice.subscription
    Object.assign(invoice, {
      id,
      object: 'invoice',
      account_country: 'US',
      account_name: 'StripeFake',
      account_tax_ids: null,
      amount_due: amountDue,
      amount_overpaid: 0,
      amount_paid: 0,
      amount_remaining: amountDue,
      amount_shipping: 0,
      application: null,
      attempt_count: 0,
      attempted: false,
      auto_advance: !preview,
      automatic_tax: {
        disabled_reason: null,
        enabled: options.automaticTax,
        liability: options.automaticTax ? { type: 'self' } : null,
        provider: options.automaticTax ? 'stripe' : null,
        status: options.automaticTax ? 'complete' : null,
      },
      automatically_finalizes_at: null,
      billing_reason: options.billingReason,
      collection_method: 'charge_automatically',
      confirmation_secret: null,
      created: now,
      currency: options.currency,
      custom_fields: null,
      customer: options.customer.id,
      customer_account: null,
      customer_address: options.customer.address ?? null,
      customer_email: options.customer.email ?? null,
      customer_name: options.customer.name ?? null,
      customer_phone: options.customer.phone ?? null,
      customer_shipping: options.customer.shipping ?? null,
      customer_tax_exempt: options.customer.tax_exempt ?? 'none',
      customer_tax_ids: customerTaxIds,
      default_payment_method: null,
      default_source: null,
      default_tax_rates: [],
      description: null,
      discounts: options.discounts.filter((d) => totalDiscounts.has(d.id)).map((d) => d.id),
      due_date: null,
      effective_at: null,
      ending_balance: null,
      footer: null,
      from_invoice: null,
      hosted_invoice_url: preview ? null : `https://invoice.stripe.com/i/acct_stripefake/test_${randomToken(24)}`,
      invoice_pdf: preview ? null : `https://pay.stripe.com/invoice/acct_stripefake/test_${randomToken(24)}/pdf`,
      issuer: { type: 'self' },
      last_finalization_error: null,
      latest_revision: null,
      lines: { object: 'list', data: lines, has_more: false, total_count: lines.length, url: `/v1/invoices/${id}/lines` },
      livemode: false,
      metadata: {},
      next_payment_attempt: null,
      number: null,
      on_behalf_of: null,
      parent: options.subscription
        ? {
            quote_details: null,
            subscription_details: { metadata: options.subscription.metadata ?? {}, subscription: options.subscription.id },
            type: 'subscription_details',
          }
        : null,
      payment_settings: { default_mandate: null, payment_method_options: null, payment_method_types: null },
      payments: { object: 'list', data: [], has_more: false, url: `/v1/invoice_payments?invoice=${id}` },
      period_end: options.periodEnd,
      period_start: options.periodStart,
      post_payment_credit_notes_amount: 0,
      pre_payment_credit_notes_amount: 0,
      receipt_number: null,
      rendering: null,
      shipping_cost: null,
      shipping_details: null,
      starting_balance: startingBalance,
      statement_descriptor: null,
      status: 'draft',
      status_transitions: { finalized_at: null, marked_uncollectible_at: null, paid_at: null, voided_at: null },
      subtotal,
      subtotal_excluding_tax: subtotal,
      test_clock: null,
      total,
      total_discount_amounts: [...totalDiscounts.entries()].map(([discount, amount]) => ({ amount, discount })),
      total_excluding_tax: subtotal - discountTotal,
      total_pretax_credit_amounts: [...totalDiscounts.entries()].map(([discount, amount]) => ({
        amount,
        discount,
        type: 'discount',
      })),
      total_taxes: options.automaticTax
        ? [
            {
              amount: taxTotal,
              tax_behavior: 'exclusive',
              tax_rate_details: { tax_rate: FAKE_TAX_RATE_ID },
              taxability_reason: 'standard_rated',
              taxable_amount: taxable,
              type: 'tax_rate_details',
            },
          ]
        : [],
      webhooks_delivered_at: null,
    })
    return invoice
  }

  /**
   * What charging `amountDue` to `pm` would do (no side effects).
   */
  predict(amountDue: number, pm: Obj | null, authenticated: boolean): { outcome: Outcome; card: TestCard | null } {
    if (amountDue <= 0) return { outcome: 'paid', card: null }
    if (!pm) return { outcome: 'pending', card: null }
    const card = behaviorOf(this.#engine, pm)
    if (card.behavior === 'decline' || card.behavior === 'decline_on_charge') return { outcome: 'declined', card }
    if (card.behavior === 'sca' && !authenticated) return { outcome: 'requires_action', card }
    return { outcome: 'paid', card }
  }

  /**
   * Stores a draft invoice and emits `invoice.created`.
   */
  #createInvoice(invoice: Obj): Obj {
    this.#engine.save(invoice)
    this.#engine.emit('invoice.created', invoice)
    return invoice
  }

  /**
   * Records a customer balance transaction and moves `customer.balance` by `amount`
   * (negative = credit), emitting `customer.updated`.
   */
  balanceTransaction(customer: Obj, amount: number, details: { type: string; currency?: string; description?: string | null; invoice?: string | null; metadata?: Obj | null }): Obj {
    const engine = this.#engine
    const transaction = engine.fixture('customer_balance_transaction')
    const ending = (customer.balance ?? 0) + amount
    Object.assign(transaction, {
      id: engine.id('cbtxn_'),
      object: 'customer_balance_transaction',
      amount,
      created: engine.now(),
      credit_note: null,
      currency: details.currency ?? customer.currency ?? 'usd',
      customer: customer.id,
      description: details.description ?? null,
      ending_balance: ending,
      invoice: details.invoice ?? null,
      livemode: false,
      metadata: details.metadata ?? null,
      type: details.type,
      checkout_session: null,
      customer_account: null,
    })
    engine.save(transaction)
    engine.change(
      customer,
      (c) => {
        c.balance = ending
        c.currency = c.currency ?? transaction.currency
      },
      'customer.updated'
    )
    return transaction
  }

  /**
   * Finalizes a draft: number, `open`, customer balance applied; emits `invoice.finalized`.
   */
  finalize(invoice: Obj) {
    const engine = this.#engine
    const customer = engine.store.get(invoice.customer)!
    const now = engine.now()
    const sequence = customer.next_invoice_sequence ?? 1
    invoice.number = `${customer.invoice_prefix}-${String(sequence).padStart(4, '0')}`
    invoice.status = 'open'
    invoice.status_transitions.finalized_at = now
    invoice.effective_at = now
    const applied = invoice.total + (customer.balance ?? 0)
    invoice.starting_balance = customer.balance ?? 0
    invoice.amount_due = Math.max(0, applied)
    invoice.amount_remaining = invoice.amount_due
    invoice.ending_balance = applied < 0 ? applied : 0
    customer.next_invoice_sequence = sequence + 1
    const change = invoice.ending_balance - (customer.balance ?? 0)
    if (change !== 0) {
      this.balanceTransaction(customer, change, { type: 'applied_to_invoice', currency: invoice.currency, invoice: invoice.id })
    }
    for (const id of invoice.discounts) {
      const discount = engine.store.get(id)
      if (discount && engine.store.get(discount.source.coupon)?.duration === 'once') engine.meta(id).used = true
    }
    engine.emit('invoice.finalized', invoice)
  }

  #paymentIntent(invoice: Obj, pm: Obj | null, status: string, card: TestCard | null): Obj {
    const engine = this.#engine
    const existing = invoice.payments.data[0]?.payment?.payment_intent
    const pi = (existing && engine.store.get(existing)) || engine.fixture('payment_intent')
    const id = pi.id && existing ? pi.id : engine.id('pi_')
    Object.assign(pi, {
      id,
      object: 'payment_intent',
      amount: invoice.amount_due,
      amount_capturable: 0,
      amount_details: { tip: {} },
      amount_received: status === 'succeeded' ? invoice.amount_due : 0,
      application: null,
      application_fee_amount: null,
      automatic_payment_methods: null,
      canceled_at: null,
      cancellation_reason: null,
      capture_method: 'automatic',
      client_secret: existing ? pi.client_secret : `${id}_secret_${randomToken(24)}`,
      confirmation_method: 'automatic',
      created: existing ? pi.created : engine.now(),
      currency: invoice.currency,
      customer: invoice.customer,
      description: invoice.billing_reason === 'subscription_create' ? 'Subscription creation' : 'Subscription update',
      last_payment_error:
        status === 'requires_payment_method' && card && card.behavior !== 'sca'
          ? {
              code: card.declineCode === 'expired_card' ? 'expired_card' : 'card_declined',
              decline_code: card.declineCode ?? 'generic_decline',
              message: 'Your card was declined.',
              type: 'card_error',
              payment_method: pm ? engine.render(pm) : null,
            }
          : null,
      latest_charge: status === 'succeeded' ? engine.id('ch_') : null,
      livemode: false,
      metadata: {},
      next_action:
        status === 'requires_action'
          ? {
              type: 'use_stripe_sdk',
              use_stripe_sdk: { type: 'three_d_secure_redirect', stripe_js: `https://hooks.stripe.com/3d_secure_2/hosted?payment_intent=${id}` },
            }
          : null,
      on_behalf_of: null,
      payment_method: pm?.id ?? null,
      payment_method_configuration_details: null,
      payment_method_options: {},
      payment_method_types: ['card'],
      processing: null,
      receipt_email: null,
      review: null,
      setup_future_usage: null,
      shipping: null,
      source: null,
      statement_descriptor: null,
      statement_descriptor_suffix: null,
      status,
      transfer_data: null,
      transfer_group: null,
      excluded_payment_method_types: null,
      customer_account: null,
      managed_payments: null,
    })
    engine.save(pi)
    if (!existing) {
      const payment = engine.fixture('invoice_payment')
      Object.assign(payment, {
        id: engine.id('inpay_'),
        object: 'invoice_payment',
        amount_paid: null,
        amount_requested: invoice.amount_due,
        created: engine.now(),
        currency: invoice.currency,
        invoice: invoice.id,
        is_default: true,
        livemode: false,
        payment: { type: 'payment_intent', payment_intent: id },
        status: 'open',
        status_transitions: { canceled_at: null, paid_at: null },
      })
      engine.save(payment)
      invoice.payments.data = [payment]
      invoice.payments.total_count = 1
    }
    return pi
  }

  /**
   * Marks an open invoice paid (amounts, status, payment intent) and emits the events Stripe sends.
   */
  #markPaid(invoice: Obj, pm: Obj | null, outOfBand = false) {
    const engine = this.#engine
    const now = engine.now()
    if (invoice.amount_due > 0 && !outOfBand) {
      const pi = this.#paymentIntent(invoice, pm, 'succeeded', null)
      engine.emit('payment_intent.succeeded', pi)
      const payment = engine.store.get(invoice.payments.data[0].id)!
      Object.assign(payment, { amount_paid: invoice.amount_due, status: 'paid', status_transitions: { canceled_at: null, paid_at: now } })
      invoice.payments.data = [structuredClone(payment)]
      invoice.attempt_count += 1
      invoice.attempted = true
    }
    invoice.amount_paid = invoice.amount_due
    invoice.amount_remaining = 0
    invoice.status = 'paid'
    invoice.confirmation_secret = null
    invoice.next_payment_attempt = null
    invoice.status_transitions.paid_at = now
    invoice.webhooks_delivered_at = now
    if (invoice.payments.data[0]) engine.emit('invoice_payment.paid', engine.store.get(invoice.payments.data[0].id)!)
    engine.emit('invoice.paid', invoice)
    engine.emit('invoice.payment_succeeded', invoice)
    const customer = engine.store.get(invoice.customer)
    if (customer?.delinquent) engine.change(customer, (c) => (c.delinquent = false), 'customer.updated')
  }

  /**
   * Finalizes (if draft) and collects an invoice. `mode`: `charge` attempts the payment method,
   * `pending` leaves the payment intent waiting for confirmation (`default_incomplete`).
   */
  settle(invoice: Obj, pm: Obj | null, mode: 'charge' | 'pending', authenticated = false): Outcome {
    const engine = this.#engine
    if (invoice.status === 'draft') this.finalize(invoice)
    if (invoice.amount_due <= 0) {
      this.#markPaid(invoice, pm)
      return 'paid'
    }
    if (mode === 'pending' || !pm) {
      const pi = this.#paymentIntent(invoice, pm, pm ? 'requires_confirmation' : 'requires_payment_method', null)
      invoice.confirmation_secret = { client_secret: pi.client_secret, type: 'payment_intent' }
      engine.emit('payment_intent.created', pi)
      return 'pending'
    }
    const { outcome, card } = this.predict(invoice.amount_due, pm, authenticated)
    if (outcome === 'paid') {
      this.#markPaid(invoice, pm)
      return 'paid'
    }
    invoice.attempt_count += 1
    invoice.attempted = true
    if (outcome === 'requires_action') {
      const pi = this.#paymentIntent(invoice, pm, 'requires_action', card)
      invoice.confirmation_secret = { client_secret: pi.client_secret, type: 'payment_intent' }
      engine.emit('payment_intent.requires_action', pi)
      engine.emit('invoice.payment_action_required', invoice)
      return 'requires_action'
    }
    const pi = this.#paymentIntent(invoice, pm, 'requires_payment_method', card)
    invoice.confirmation_secret = { client_secret: pi.client_secret, type: 'payment_intent' }
    invoice.next_payment_attempt = engine.now() + 3 * 86_400
    engine.emit('payment_intent.payment_failed', pi)
    engine.emit('invoice.payment_failed', invoice)
    return 'declined'
  }

  /**
   * The payment method a subscription charges: its own default, else the customer's.
   */
  paymentMethodFor(customer: Obj, subscription: Obj | null): Obj | null {
    const id = subscription?.default_payment_method ?? customer.invoice_settings?.default_payment_method
    return id ? this.#engine.find(id, 'payment_method') ?? null : null
  }

  /**
   * Pays an open invoice (`POST /v1/invoices/:id/pay` and the `completeInvoicePayment` helper).
   */
  pay(invoice: Obj, options: { paymentMethod?: Obj | null; authenticated?: boolean; outOfBand?: boolean } = {}): Obj {
    const engine = this.#engine
    if (invoice.status === 'paid') throw invalidRequest('Invoice is already paid', { code: 'invoice_already_paid' })
    if (invoice.status === 'void') throw invalidRequest('This invoice can no longer be paid.', { code: 'invoice_not_editable' })
    const customer = engine.store.get(invoice.customer)!
    const subId = invoice.parent?.subscription_details?.subscription
    const subscription = subId ? engine.store.get(subId) ?? null : null
    if (invoice.status === 'draft') this.finalize(invoice)
    if (options.outOfBand) {
      this.#markPaid(invoice, null, true)
    } else {
      const existingPi = invoice.payments.data[0]?.payment?.payment_intent
      const piPm = existingPi ? engine.store.get(existingPi)?.payment_method : null
      const pm =
        options.paymentMethod ??
        (piPm ? engine.find(piPm, 'payment_method') ?? null : null) ??
        this.paymentMethodFor(customer, subscription)
      if (!pm && invoice.amount_due > 0) {
        throw invalidRequest(
          'This customer has no attached payment source or default payment method. Please consider adding a default payment method.',
          { code: 'invoice_no_payment_method_types' }
        )
      }
      const outcome = this.settle(invoice, pm, 'charge', options.authenticated ?? false)
      engine.save(invoice)
      if (outcome === 'declined') throw declineError(behaviorOf(engine, pm!))
      if (outcome === 'requires_action') {
        throw cardError(
          'This payment requires additional user action before it can be completed successfully. Payment can be completed using the PaymentIntent associated with the invoice.',
          'invoice_payment_intent_requires_action'
        )
      }
    }
    engine.save(invoice)
    if (subscription) this.#afterInvoicePaid(subscription, invoice)
    return invoice
  }

  #afterInvoicePaid(subscription: Obj, invoice: Obj) {
    if (subscription.latest_invoice !== invoice.id) return
    if (!['incomplete', 'past_due', 'unpaid'].includes(subscription.status)) return
    this.#engine.change(
      subscription,
      (s) => (s.status = s.trial_end !== null && s.trial_end > this.#engine.now() ? 'trialing' : 'active'),
      'customer.subscription.updated'
    )
    this.syncEntitlements(subscription.customer)
  }

  /**
   * Creates, finalizes and charges an invoice for one-time prices (Checkout `payment` mode with
   * `invoice_creation[enabled]=true`).
   */
  chargeOneOff(customer: Obj, items: Array<{ price: Obj; quantity: number }>, options: { automaticTax: boolean; paymentMethod: Obj | null }): Obj {
    const now = this.#engine.now()
    const lines: DraftLine[] = items.map(({ price, quantity }) => ({
      amount: this.priceAmount(price, quantity),
      description: this.#productName(price),
      quantity,
      price,
      period: { start: now, end: now },
      proration: false,
      subscription: null,
      subscriptionItem: null,
      discountable: true,
    }))
    const invoice = this.buildInvoice({
      customer,
      subscription: null,
      lines,
      discounts: [],
      automaticTax: options.automaticTax,
      billingReason: 'manual',
      periodStart: now,
      periodEnd: now,
      currency: items[0]?.price.currency ?? 'usd',
    })
    this.#createInvoice(invoice)
    this.settle(invoice, options.paymentMethod, 'charge', true)
    this.#engine.save(invoice)
    return invoice
  }

  /**
   * Voids an open invoice.
   */
  void(invoice: Obj): Obj {
    if (invoice.status !== 'open' && invoice.status !== 'uncollectible') {
      throw invalidRequest(`You can only void open invoices. This invoice is ${invoice.status}.`, {
        code: 'invoice_not_editable',
      })
    }
    this.#engine.change(
      invoice,
      (i) => {
        i.status = 'void'
        i.status_transitions.voided_at = this.#engine.now()
        i.amount_remaining = 0
        i.confirmation_secret = null
      },
      null
    )
    this.#engine.emit('invoice.voided', invoice)
    return invoice
  }

  // ---------------------------------------------------------------------------------------------
  // Subscriptions
  // ---------------------------------------------------------------------------------------------

  #itemObject(subscriptionId: string, price: Obj, quantity: number | null, start: number, end: number, metadata: Obj): Obj {
    const engine = this.#engine
    const item = engine.fixture('subscription_item')
    Object.assign(item, {
      id: engine.id('si_', 14),
      object: 'subscription_item',
      billing_thresholds: null,
      created: engine.now(),
      current_period_end: end,
      current_period_start: start,
      current_trial: null,
      discounts: [],
      metadata,
      plan: this.plan(price),
      price: structuredClone(price),
      quantity,
      subscription: subscriptionId,
      tax_rates: [],
    })
    if (quantity === null) delete item.quantity
    return item
  }

  #lineForItem(subscription: Obj, item: Obj, start: number, end: number, trial: boolean): DraftLine {
    const price = this.#engine.store.get(item.price.id) ?? item.price
    const metered = this.#isMetered(price)
    const quantity = metered ? 0 : item.quantity ?? 1
    const name = this.#productName(price)
    return {
      amount: trial || metered ? 0 : this.priceAmount(price, quantity),
      description: trial ? `Trial period for ${name}` : `${quantity} × ${name} (at ${this.#money(price)} / ${price.recurring?.interval ?? 'unit'})`,
      quantity,
      price,
      period: { start, end },
      proration: false,
      subscription: subscription.id,
      subscriptionItem: item.id,
      discountable: true,
    }
  }

  #meteredLine(subscription: Obj, item: Obj, start: number, end: number): DraftLine {
    const engine = this.#engine
    const price = engine.store.get(item.price.id) ?? item.price
    const meter = engine.store.get(price.recurring?.meter)
    const usage = meter ? aggregateUsage(engine, meter, subscription.customer, start, end) : 0
    return {
      amount: this.priceAmount(price, usage),
      description: `${usage} × ${this.#productName(price)} (usage)`,
      quantity: usage,
      price,
      period: { start, end },
      proration: false,
      subscription: subscription.id,
      subscriptionItem: item.id,
      discountable: true,
    }
  }

  #money(price: Obj) {
    const amount = Number(price.unit_amount_decimal ?? price.unit_amount ?? 0) / 100
    const text = Number.isInteger(amount * 100) ? amount.toFixed(2) : String(amount)
    return price.currency === 'usd' ? `$${text}` : `${text} ${String(price.currency).toUpperCase()}`
  }

  #interval(price: Obj): string {
    return `${price.recurring?.interval}/${price.recurring?.interval_count ?? 1}`
  }

  #checkItemPrices(prices: Obj[], param: string) {
    for (const price of prices) {
      if (price.type !== 'recurring') {
        throw invalidRequest(
          'The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.',
          { param }
        )
      }
    }
    const currencies = new Set(prices.map((p) => p.currency))
    if (currencies.size > 1) {
      throw invalidRequest('Currency and interval fields must match across all plans on this subscription. Found mismatch in currency field.', { param })
    }
    const intervals = new Set(prices.map((p) => this.#interval(p)))
    if (intervals.size > 1) {
      throw invalidRequest('Currency and interval fields must match across all plans on this subscription. Found mismatch in interval field.', { param })
    }
    const ids = prices.map((p) => p.id)
    const duplicate = ids.find((id, i) => ids.indexOf(id) !== i)
    if (duplicate) {
      throw invalidRequest(`Cannot add multiple subscription items with the same price: ${duplicate}`, { param })
    }
  }

  /**
   * Validates `default_payment_method` (must be attached to the customer).
   */
  requireAttachedPaymentMethod(id: unknown, customer: Obj, param: string): Obj {
    const pm = customerPaymentMethod(this.#engine, id, customer)
    if (!pm) {
      throw invalidRequest(
        `The customer does not have a payment method with the ID ${String(id)}. The payment method must be attached to the customer.`,
        { param, code: 'resource_missing' }
      )
    }
    return pm
  }

  /**
   * Creates a subscription (`POST /v1/subscriptions` and checkout completion).
   */
  createSubscription(params: Obj, createPrice: (data: Obj, param: string) => Obj, options: { authenticated?: boolean; checkoutSession?: string } = {}): Obj {
    const engine = this.#engine
    if (!params.customer) throw missingParameter('customer')
    const customer = engine.require(params.customer, 'customer', 'customer', 'customer', 400)
    const itemParams = (arr(params.items) ?? []) as Obj[]
    if (!itemParams.length) throw missingParameter('items')
    for (const unsupported of ['add_invoice_items', 'backdate_start_date', 'billing_cycle_anchor', 'billing_cycle_anchor_config', 'billing_thresholds', 'billing_schedules', 'transfer_data', 'application_fee_percent', 'on_behalf_of', 'pending_invoice_item_interval']) {
      if (params[unsupported] !== undefined && params[unsupported] !== '') {
        throw invalidRequest(`StripeFake does not simulate \`${unsupported}\` yet.`, { param: unsupported })
      }
    }
    if (params.collection_method === 'send_invoice') {
      throw invalidRequest('StripeFake only simulates collection_method=charge_automatically.', { param: 'collection_method' })
    }
    const resolved = itemParams.map((item, i) => ({
      price: this.resolveItemPrice(item ?? {}, `items[${i}]`, createPrice),
      quantity: int(item?.quantity, `items[${i}][quantity]`),
      metadata: applyMetadata({}, item?.metadata, `items[${i}][metadata]`),
    }))
    this.#checkItemPrices(resolved.map((r) => r.price), 'items')

    const now = engine.now()
    if (params.trial_end !== undefined && params.trial_period_days !== undefined) {
      throw invalidRequest('You may only specify one of these parameters: trial_end, trial_period_days.', { param: 'trial_end' })
    }
    let trialEnd: number | null = null
    if (params.trial_end !== undefined && params.trial_end !== 'now') {
      trialEnd = int(params.trial_end, 'trial_end')!
      if (trialEnd <= now) {
        throw invalidRequest('Invalid timestamp: must be an integer Unix timestamp in the future.', { param: 'trial_end' })
      }
    } else if (params.trial_period_days !== undefined) {
      const days = int(params.trial_period_days, 'trial_period_days')!
      if (days < 0 || days > 730) throw invalidRequest('trial_period_days must be between 0 and 730.', { param: 'trial_period_days' })
      if (days > 0) trialEnd = now + days * 86_400
    } else if (bool(params.trial_from_plan, 'trial_from_plan')) {
      const days = Math.max(0, ...resolved.map((r) => r.price.recurring?.trial_period_days ?? 0))
      if (days > 0) trialEnd = now + days * 86_400
    }

    const explicitPm = params.default_payment_method
      ? this.requireAttachedPaymentMethod(params.default_payment_method, customer, 'default_payment_method')
      : null
    const behavior =
      oneOf(params.payment_behavior, 'payment_behavior', ['allow_incomplete', 'default_incomplete', 'error_if_incomplete', 'pending_if_incomplete']) ??
      'allow_incomplete'
    const discountSpecs = params.discounts === '' ? [] : this.resolveDiscounts(params.discounts, customer)
    const automaticTax = bool(params.automatic_tax?.enabled, 'automatic_tax[enabled]') ?? false
    const first = resolved[0].price
    const periodEnd = trialEnd ?? addInterval(now, first.recurring.interval, first.recurring.interval_count ?? 1)

    const id = engine.id('sub_')
    const items = resolved.map((r) =>
      this.#itemObject(id, r.price, this.#isMetered(r.price) ? null : r.quantity ?? 1, now, periodEnd, r.metadata)
    )
    const sub = engine.fixture('subscription')
    Object.assign(sub, {
      id,
      object: 'subscription',
      application: null,
      application_fee_percent: null,
      automatic_tax: { disabled_reason: null, enabled: automaticTax, liability: automaticTax ? { type: 'self' } : null },
      billing_cycle_anchor: trialEnd ?? now,
      billing_cycle_anchor_config: null,
      billing_mode: { flexible: null, type: 'classic' },
      billing_schedules: [],
      billing_thresholds: null,
      cancel_at: null,
      cancel_at_period_end: false,
      canceled_at: null,
      cancellation_details: { comment: null, feedback: null, reason: null },
      collection_method: 'charge_automatically',
      created: now,
      currency: first.currency,
      customer: customer.id,
      customer_account: null,
      days_until_due: null,
      default_payment_method: explicitPm?.id ?? null,
      default_source: null,
      default_tax_rates: [],
      description: str(params.description, 'description') ?? null,
      discounts: [],
      ended_at: null,
      invoice_settings: { account_tax_ids: null, issuer: { type: 'self' } },
      items: { object: 'list', data: items, has_more: false, total_count: items.length, url: `/v1/subscription_items?subscription=${id}` },
      latest_invoice: null,
      livemode: false,
      managed_payments: null,
      metadata: applyMetadata({}, params.metadata),
      next_pending_invoice_item_invoice: null,
      on_behalf_of: null,
      pause_collection: null,
      payment_settings: { payment_method_options: null, payment_method_types: null, save_default_payment_method: 'off' },
      pending_invoice_item_interval: null,
      pending_setup_intent: null,
      pending_update: null,
      schedule: null,
      start_date: now,
      status: 'incomplete',
      test_clock: null,
      transfer_data: null,
      trial_end: trialEnd,
      trial_settings: {
        end_behavior: {
          missing_payment_method:
            oneOf(params.trial_settings?.end_behavior?.missing_payment_method, 'trial_settings[end_behavior][missing_payment_method]', ['cancel', 'create_invoice', 'pause']) ??
            'create_invoice',
        },
      },
      trial_start: trialEnd ? now : null,
    })
    if (params.cancel_at_period_end !== undefined && bool(params.cancel_at_period_end, 'cancel_at_period_end')) {
      sub.cancel_at_period_end = true
      sub.cancel_at = periodEnd
      sub.canceled_at = now
    } else if (params.cancel_at !== undefined && params.cancel_at !== '') {
      sub.cancel_at = int(params.cancel_at, 'cancel_at')
    }

    // Price the first invoice and decide the outcome before touching any state (402 must not mutate).
    const draftDiscounts = discountSpecs.map((spec, i) => ({ id: `di_draft_${i}`, source: { coupon: spec.coupon.id } }))
    const lines = items.map((item) => this.#lineForItem(sub, item, now, periodEnd, trialEnd !== null))
    const priced = this.buildInvoice({
      customer,
      subscription: sub,
      lines,
      discounts: draftDiscounts as Obj[],
      automaticTax,
      billingReason: 'subscription_create',
      periodStart: now,
      periodEnd: now,
      currency: first.currency,
      preview: true,
    })
    const pm = explicitPm ?? this.paymentMethodFor(customer, null)
    let mode: 'charge' | 'pending' = 'charge'
    if (priced.amount_due > 0) {
      if (behavior === 'default_incomplete') mode = 'pending'
      else if (!pm) {
        if (behavior === 'error_if_incomplete') {
          throw invalidRequest(
            'This customer has no attached payment source or default payment method. Please consider adding a default payment method. For more information, visit https://stripe.com/docs/billing/subscriptions/payment-methods-setting#payment-method-priority.',
            { code: 'resource_missing' }
          )
        }
        mode = 'pending'
      } else {
        const { outcome, card } = this.predict(priced.amount_due, pm, options.authenticated ?? false)
        /**
         * Since API 2019-03-14 a declined first payment still creates the subscription (`incomplete`);
         * only `error_if_incomplete` answers 402.
         */
        if (outcome === 'declined' && behavior === 'error_if_incomplete') throw declineError(card!)
        if (outcome === 'requires_action' && (behavior === 'error_if_incomplete' || behavior === 'pending_if_incomplete')) {
          throw cardError(
            'Your card was declined. This transaction requires authentication.',
            'card_declined',
            'authentication_required'
          )
        }
      }
    }

    // Commit.
    const discounts = this.applyDiscounts(discountSpecs, { customer: customer.id, subscription: id, checkoutSession: options.checkoutSession })
    sub.discounts = discounts.map((d) => d.id)
    const invoice = this.buildInvoice({
      customer,
      subscription: sub,
      lines,
      discounts,
      automaticTax,
      billingReason: 'subscription_create',
      periodStart: now,
      periodEnd: now,
      currency: first.currency,
    })
    const predicted = mode === 'pending' ? 'pending' : this.predict(invoice.amount_due, pm, options.authenticated ?? false).outcome
    sub.status = predicted === 'paid' ? (trialEnd ? 'trialing' : 'active') : 'incomplete'
    sub.latest_invoice = invoice.id
    engine.save(sub)
    engine.meta(id).pending = []
    engine.emit('customer.subscription.created', sub)
    this.#createInvoice(invoice)
    this.settle(invoice, pm, mode, options.authenticated ?? false)
    engine.save(invoice)
    this.syncEntitlements(customer.id)
    return sub
  }

  /**
   * Applies `items[]` changes (swap with `id` + `price`, `quantity`, `deleted`, new items) to a copy of
   * the subscription's items.
   */
  planItems(sub: Obj, value: unknown, createPrice: (data: Obj, param: string) => Obj, param = 'items'): ItemsPlan {
    const items: Obj[] = structuredClone(sub.items.data)
    const changes: ItemChange[] = []
    const first = items[0]
    const periodStart = first?.current_period_start ?? this.#engine.now()
    const periodEnd = first?.current_period_end ?? this.#engine.now()
    const oldInterval = first ? this.#interval(first.price) : null
    ;((arr(value) ?? []) as Obj[]).forEach((entry, i) => {
      const p = `${param}[${i}]`
      const e = entry ?? {}
      if (e.id) {
        const index = items.findIndex((item) => item.id === e.id)
        if (index === -1) throw invalidRequest(`No such subscription item: '${e.id}'`, { param: `${p}[id]`, code: 'resource_missing' })
        const item = items[index]
        const oldPrice = this.#engine.store.get(item.price.id) ?? item.price
        const oldQuantity = item.quantity ?? 0
        if (bool(e.deleted, `${p}[deleted]`)) {
          items.splice(index, 1)
          changes.push({ item, oldPrice, oldQuantity, newPrice: null, newQuantity: 0 })
          return
        }
        const newPrice = e.price !== undefined || e.price_data !== undefined ? this.resolveItemPrice(e, p, createPrice) : oldPrice
        const newQuantity = this.#isMetered(newPrice) ? 0 : int(e.quantity, `${p}[quantity]`) ?? item.quantity ?? 1
        if (e.metadata !== undefined) item.metadata = applyMetadata(item.metadata, e.metadata, `${p}[metadata]`)
        if (newPrice.id !== oldPrice.id || newQuantity !== oldQuantity) {
          item.price = structuredClone(newPrice)
          item.plan = this.plan(newPrice)
          if (this.#isMetered(newPrice)) delete item.quantity
          else item.quantity = newQuantity
          changes.push({ item, oldPrice, oldQuantity, newPrice, newQuantity })
        }
        return
      }
      const price = this.resolveItemPrice(e, p, createPrice)
      const quantity = this.#isMetered(price) ? null : int(e.quantity, `${p}[quantity]`) ?? 1
      const item = this.#itemObject(sub.id, price, quantity, periodStart, periodEnd, applyMetadata({}, e.metadata, `${p}[metadata]`))
      items.push(item)
      changes.push({ item, oldPrice: null, oldQuantity: 0, newPrice: price, newQuantity: quantity ?? 0 })
    })
    if (!items.length) throw invalidRequest('A subscription must have at least one active item.', { param })
    this.#checkItemPrices(items.map((item) => this.#engine.store.get(item.price.id) ?? item.price), param)
    const intervalChanged = oldInterval !== null && this.#interval(items[0].price) !== oldInterval
    return { items, changes, intervalChanged }
  }

  /**
   * Proration lines for item changes at `date`: credit for the unused time of the old price and
   * charge for the remaining time of the new one, each `amount × remaining / period` rounded half up.
   */
  prorations(sub: Obj, changes: ItemChange[], date: number): DraftLine[] {
    const lines: DraftLine[] = []
    for (const change of changes) {
      const start = change.item.current_period_start
      const end = change.item.current_period_end
      if (date < start || date > end) {
        throw invalidRequest('The proration date must be within the current billing period of the subscription.', {
          param: 'proration_date',
        })
      }
      const total = end - start
      const remaining = end - date
      if (total <= 0 || remaining <= 0) continue
      const when = formatDate(date)
      if (change.oldPrice && !this.#isMetered(change.oldPrice) && change.oldQuantity > 0) {
        const name = this.#productName(change.oldPrice)
        lines.push({
          amount: -prorate(this.priceAmount(change.oldPrice, change.oldQuantity), remaining, total),
          description: `Unused time on ${change.oldQuantity > 1 ? `${change.oldQuantity} × ` : ''}${name} after ${when}`,
          quantity: change.oldQuantity,
          price: change.oldPrice,
          period: { start: date, end },
          proration: true,
          subscription: sub.id,
          subscriptionItem: change.item.id,
          discountable: false,
        })
      }
      if (change.newPrice && !this.#isMetered(change.newPrice) && change.newQuantity > 0) {
        const name = this.#productName(change.newPrice)
        lines.push({
          amount: prorate(this.priceAmount(change.newPrice, change.newQuantity), remaining, total),
          description: `Remaining time on ${change.newQuantity > 1 ? `${change.newQuantity} × ` : ''}${name} after ${when}`,
          quantity: change.newQuantity,
          price: change.newPrice,
          period: { start: date, end },
          proration: true,
          subscription: sub.id,
          subscriptionItem: change.item.id,
          discountable: false,
        })
      }
    }
    return lines
  }

  /**
   * Updates a subscription (`POST /v1/subscriptions/:id`).
   */
  updateSubscription(sub: Obj, params: Obj, createPrice: (data: Obj, param: string) => Obj): Obj {
    const engine = this.#engine
    const now = engine.now()
    if (sub.status === 'canceled' || sub.status === 'incomplete_expired') {
      const allowed = ['metadata', 'cancellation_details', 'expand']
      const other = Object.keys(params).find((k) => !allowed.includes(k))
      if (other) {
        throw invalidRequest('A canceled subscription can only update its cancellation_details and metadata.', { param: other })
      }
    }
    for (const unsupported of ['add_invoice_items', 'billing_thresholds', 'transfer_data', 'application_fee_percent', 'on_behalf_of', 'pending_invoice_item_interval']) {
      if (params[unsupported] !== undefined && params[unsupported] !== '') {
        throw invalidRequest(`StripeFake does not simulate \`${unsupported}\` yet.`, { param: unsupported })
      }
    }
    const customer = engine.store.get(sub.customer)!
    const behavior =
      oneOf(params.proration_behavior, 'proration_behavior', ['always_invoice', 'create_prorations', 'none']) ?? 'create_prorations'
    const paymentBehavior =
      oneOf(params.payment_behavior, 'payment_behavior', ['allow_incomplete', 'default_incomplete', 'error_if_incomplete', 'pending_if_incomplete']) ??
      'allow_incomplete'
    const prorationDate = params.proration_date !== undefined ? int(params.proration_date, 'proration_date')! : now
    const plan = params.items !== undefined ? this.planItems(sub, params.items, createPrice) : null
    const newPm =
      params.default_payment_method !== undefined && params.default_payment_method !== ''
        ? this.requireAttachedPaymentMethod(params.default_payment_method, customer, 'default_payment_method')
        : undefined
    const discountSpecs = params.discounts !== undefined && params.discounts !== '' ? this.resolveDiscounts(params.discounts, customer) : null
    const endTrialNow = params.trial_end === 'now' && sub.status === 'trialing'
    const newTrialEnd = params.trial_end !== undefined && params.trial_end !== 'now' ? int(params.trial_end, 'trial_end')! : null
    if (newTrialEnd !== null && newTrialEnd <= now) {
      throw invalidRequest('Invalid timestamp: must be an integer Unix timestamp in the future.', { param: 'trial_end' })
    }
    const resetAnchor = params.billing_cycle_anchor === 'now'
    if (params.billing_cycle_anchor !== undefined && !['now', 'unchanged'].includes(params.billing_cycle_anchor)) {
      throw invalidRequest('Invalid billing_cycle_anchor: must be one of now or unchanged', { param: 'billing_cycle_anchor' })
    }
    const trialing = sub.status === 'trialing' && !endTrialNow
    const items = plan?.items ?? structuredClone(sub.items.data)
    const reset = !trialing && (endTrialNow || resetAnchor || (plan?.intervalChanged ?? false))
    const prorationLines = !trialing && plan && behavior !== 'none' && !(endTrialNow) ? this.prorations(sub, plan.changes, reset ? now : prorationDate) : []
    const invoiceNow = reset || (behavior === 'always_invoice' && prorationLines.length > 0)

    // Build the invoice (if any) and check the payment before mutating.
    let invoiceLines: DraftLine[] = []
    let newPeriod: { start: number; end: number } | null = null
    if (reset) {
      const price = items[0].price
      newPeriod = { start: now, end: addInterval(now, price.recurring.interval, price.recurring.interval_count ?? 1) }
      invoiceLines = [
        ...(endTrialNow ? [] : prorationLines.filter((l) => l.amount < 0)),
        ...(engine.meta(sub.id).pending ?? []),
        ...items.map((item: Obj) => this.#lineForItem(sub, item, newPeriod!.start, newPeriod!.end, false)),
      ]
    } else if (invoiceNow) {
      invoiceLines = [...(engine.meta(sub.id).pending ?? []), ...prorationLines]
    }
    const pm = newPm ?? this.paymentMethodFor(customer, sub)
    let invoice: Obj | null = null
    let mode: 'charge' | 'pending' = 'charge'
    if (invoiceNow) {
      const discounts = this.#activeDiscounts(sub.discounts, now)
      invoice = this.buildInvoice({
        customer,
        subscription: sub,
        lines: invoiceLines,
        discounts,
        automaticTax: sub.automatic_tax.enabled,
        billingReason: 'subscription_update',
        periodStart: now,
        periodEnd: now,
        currency: sub.currency,
      })
      if (invoice.amount_due > 0) {
        if (paymentBehavior === 'default_incomplete' || !pm) mode = 'pending'
        const { outcome, card } = this.predict(invoice.amount_due, mode === 'pending' ? null : pm, false)
        if ((outcome === 'declined' || outcome === 'requires_action') && (paymentBehavior === 'error_if_incomplete' || paymentBehavior === 'pending_if_incomplete')) {
          throw outcome === 'declined'
            ? declineError(card!)
            : cardError('Your card was declined. This transaction requires authentication.', 'card_declined', 'authentication_required')
        }
      }
    }

    // Commit.
    const before = engine.render(sub)
    if (plan) {
      sub.items.data = items
      sub.items.total_count = items.length
    }
    if (newPm) sub.default_payment_method = newPm.id
    if (params.default_payment_method === '') sub.default_payment_method = null
    if (params.metadata !== undefined) sub.metadata = applyMetadata(sub.metadata, params.metadata)
    if (params.description !== undefined) sub.description = params.description === '' ? null : str(params.description, 'description')
    if (params.automatic_tax?.enabled !== undefined) {
      const enabled = bool(params.automatic_tax.enabled, 'automatic_tax[enabled]') ?? false
      sub.automatic_tax = { disabled_reason: null, enabled, liability: enabled ? { type: 'self' } : null }
    }
    if (params.cancellation_details !== undefined) {
      sub.cancellation_details = {
        ...sub.cancellation_details,
        ...(params.cancellation_details.comment !== undefined ? { comment: params.cancellation_details.comment || null } : {}),
        ...(params.cancellation_details.feedback !== undefined ? { feedback: params.cancellation_details.feedback || null } : {}),
      }
    }
    if (discountSpecs) {
      sub.discounts = this.applyDiscounts(discountSpecs, { customer: customer.id, subscription: sub.id }).map((d) => d.id)
    } else if (params.discounts === '') {
      sub.discounts = []
    }
    if (params.pause_collection !== undefined) {
      if (params.pause_collection === '') sub.pause_collection = null
      else {
        const behaviorValue = oneOf(params.pause_collection.behavior, 'pause_collection[behavior]', ['keep_as_draft', 'mark_uncollectible', 'void'])
        if (!behaviorValue) throw missingParameter('pause_collection[behavior]')
        sub.pause_collection = {
          behavior: behaviorValue,
          resumes_at: params.pause_collection.resumes_at ? int(params.pause_collection.resumes_at, 'pause_collection[resumes_at]') : null,
        }
      }
    }
    if (newTrialEnd !== null) {
      sub.status = 'trialing'
      sub.trial_start = sub.trial_start ?? now
      sub.trial_end = newTrialEnd
      for (const item of sub.items.data) item.current_period_end = newTrialEnd
    }
    if (newPeriod) {
      for (const item of sub.items.data) {
        item.current_period_start = newPeriod.start
        item.current_period_end = newPeriod.end
      }
      sub.billing_cycle_anchor = newPeriod.start
      if (endTrialNow) sub.trial_end = now
    }
    if (params.cancel_at_period_end !== undefined) {
      const cancel = bool(params.cancel_at_period_end, 'cancel_at_period_end') ?? false
      sub.cancel_at_period_end = cancel
      sub.cancel_at = cancel ? sub.items.data[0].current_period_end : null
      sub.canceled_at = cancel ? now : null
      if (!cancel) sub.cancellation_details = { comment: null, feedback: null, reason: null }
    }
    if (params.cancel_at !== undefined) {
      sub.cancel_at = params.cancel_at === '' ? null : int(params.cancel_at, 'cancel_at')
      sub.cancel_at_period_end = false
      sub.canceled_at = sub.cancel_at === null ? null : now
    }
    if (!invoiceNow && behavior === 'create_prorations' && prorationLines.length) {
      engine.meta(sub.id).pending = [...(engine.meta(sub.id).pending ?? []), ...prorationLines]
    }
    if (invoice) {
      engine.meta(sub.id).pending = []
      sub.latest_invoice = invoice.id
      const outcome = mode === 'pending' ? 'pending' : this.predict(invoice.amount_due, pm, false).outcome
      if (outcome === 'paid') sub.status = 'active'
      else sub.status = 'past_due'
    }
    engine.save(sub)
    const after = engine.render(sub)
    const previous: Obj = {}
    for (const key of Object.keys(after)) if (!jsonEqual(before[key], after[key])) previous[key] = before[key] ?? null
    if (Object.keys(previous).length) engine.emit('customer.subscription.updated', sub, previous)
    if (invoice) {
      this.#createInvoice(invoice)
      this.settle(invoice, pm, mode)
      engine.save(invoice)
    }
    this.syncEntitlements(customer.id)
    return sub
  }

  /**
   * Cancels a subscription now (`DELETE /v1/subscriptions/:id`, period-end cancellations, customer
   * deletion).
   */
  cancel(
    sub: Obj,
    options: { reason?: string; invoiceNow?: boolean; prorate?: boolean; comment?: string | null; feedback?: string | null } = {}
  ): Obj {
    const engine = this.#engine
    if (sub.status === 'canceled' || sub.status === 'incomplete_expired') {
      throw invalidRequest(`This subscription has already been canceled.`)
    }
    const now = engine.now()
    const pending: DraftLine[] = [...(engine.meta(sub.id).pending ?? [])]
    const live = sub.status === 'active' || sub.status === 'past_due'
    if (options.invoiceNow && live) {
      // Usage of the partial period is billed in arrears.
      for (const item of sub.items.data) {
        const price = engine.store.get(item.price.id) ?? item.price
        if (this.#isMetered(price)) pending.push(this.#meteredLine(sub, item, item.current_period_start, now))
      }
    }
    if (options.prorate && live) {
      const changes = sub.items.data.map((item: Obj) => ({
        item,
        oldPrice: engine.store.get(item.price.id) ?? item.price,
        oldQuantity: item.quantity ?? 0,
        newPrice: null,
        newQuantity: 0,
      }))
      pending.push(...this.prorations(sub, changes, Math.min(now, sub.items.data[0].current_period_end)))
    }
    sub.status = 'canceled'
    sub.canceled_at = sub.canceled_at ?? now
    sub.ended_at = now
    sub.cancellation_details = {
      comment: options.comment ?? sub.cancellation_details?.comment ?? null,
      feedback: options.feedback ?? sub.cancellation_details?.feedback ?? null,
      reason: options.reason ?? 'cancellation_requested',
    }
    engine.meta(sub.id).pending = []
    engine.save(sub)
    engine.emit('customer.subscription.deleted', sub)
    if (!options.invoiceNow && options.prorate) {
      // Without a final invoice, the credit for unused time goes to the customer's balance.
      const credit = pending.filter((l) => l.proration).reduce((t, l) => t + l.amount, 0)
      const customer = engine.store.get(sub.customer)!
      if (credit !== 0) this.balanceTransaction(customer, credit, { type: 'adjustment', currency: sub.currency, description: 'Unused time (proration)' })
    }
    if (options.invoiceNow && pending.length) {
      const customer = engine.store.get(sub.customer)!
      const invoice = this.buildInvoice({
        customer,
        subscription: sub,
        lines: pending,
        discounts: this.#activeDiscounts(sub.discounts, now),
        automaticTax: sub.automatic_tax.enabled,
        billingReason: 'subscription_update',
        periodStart: now,
        periodEnd: now,
        currency: sub.currency,
      })
      sub.latest_invoice = invoice.id
      this.#createInvoice(invoice)
      this.settle(invoice, this.paymentMethodFor(customer, sub), 'charge')
      engine.save(invoice)
    }
    this.syncEntitlements(sub.customer)
    return sub
  }

  /**
   * Resumes a paused subscription (`POST /v1/subscriptions/:id/resume`): a new period starts now.
   */
  resume(sub: Obj, params: Obj): Obj {
    const engine = this.#engine
    if (sub.status !== 'paused') {
      throw invalidRequest('Only subscriptions with `status=paused` can be resumed.')
    }
    const customer = engine.store.get(sub.customer)!
    const now = engine.now()
    const price = sub.items.data[0].price
    const end = addInterval(now, price.recurring.interval, price.recurring.interval_count ?? 1)
    const pm = this.paymentMethodFor(customer, sub)
    const lines = sub.items.data.map((item: Obj) => this.#lineForItem(sub, item, now, end, false))
    const invoice = this.buildInvoice({
      customer,
      subscription: sub,
      lines,
      discounts: this.#activeDiscounts(sub.discounts, now),
      automaticTax: sub.automatic_tax.enabled,
      billingReason: 'subscription_cycle',
      periodStart: now,
      periodEnd: now,
      currency: sub.currency,
    })
    const behavior = oneOf(params.payment_behavior, 'payment_behavior', ['resume_on_payment_attempt', 'resume_on_payment_success']) ?? 'resume_on_payment_attempt'
    const outcome = this.predict(invoice.amount_due, pm, false).outcome
    if (behavior === 'resume_on_payment_success' && outcome !== 'paid') {
      throw outcome === 'declined' && pm ? declineError(behaviorOf(engine, pm)) : cardError('The payment could not be completed.', 'card_declined', 'generic_decline')
    }
    const before = engine.render(sub)
    for (const item of sub.items.data) {
      item.current_period_start = now
      item.current_period_end = end
    }
    sub.billing_cycle_anchor = now
    sub.latest_invoice = invoice.id
    sub.status = outcome === 'paid' ? 'active' : 'past_due'
    engine.save(sub)
    const after = engine.render(sub)
    const previous: Obj = {}
    for (const key of Object.keys(after)) if (!jsonEqual(before[key], after[key])) previous[key] = before[key] ?? null
    engine.emit('customer.subscription.resumed', sub)
    engine.emit('customer.subscription.updated', sub, previous)
    this.#createInvoice(invoice)
    this.settle(invoice, pm, 'charge')
    engine.save(invoice)
    this.syncEntitlements(sub.customer)
    return sub
  }

  /**
   * Moves the clock to the end of the subscription's current period (or trial) and does what Stripe
   * does there: renew (new period, invoice, payment), end the trial, or cancel.
   */
  advanceToPeriodEnd(sub: Obj): { subscription: Obj; invoice: Obj | null } {
    const engine = this.#engine
    if (['canceled', 'incomplete_expired'].includes(sub.status)) {
      throw new Error(`StripeFake: subscription ${sub.id} is ${sub.status}; nothing to renew`)
    }
    if (sub.status === 'paused') throw new Error(`StripeFake: subscription ${sub.id} is paused; resume it first`)
    if (sub.status === 'incomplete') {
      const expiresAt = sub.created + 23 * 3600
      if (engine.now() < expiresAt) engine.setNow(expiresAt)
      const invoice = engine.store.get(sub.latest_invoice) ?? null
      engine.change(sub, (s) => {
        s.status = 'incomplete_expired'
        s.ended_at = engine.now()
      }, 'customer.subscription.updated')
      if (invoice && invoice.status === 'open') this.void(invoice)
      return { subscription: sub, invoice }
    }
    const periodEnd = sub.items.data[0].current_period_end
    const target = sub.cancel_at !== null && sub.cancel_at < periodEnd ? sub.cancel_at : periodEnd
    if (engine.now() < target) engine.setNow(target)
    const now = engine.now()
    if (sub.cancel_at !== null && sub.cancel_at <= now) {
      this.cancel(sub, { reason: 'cancellation_requested' })
      return { subscription: sub, invoice: null }
    }
    const customer = engine.store.get(sub.customer)!
    const pm = this.paymentMethodFor(customer, sub)
    const price = sub.items.data[0].price
    const start = periodEnd
    const end = addInterval(start, price.recurring.interval, price.recurring.interval_count ?? 1)
    const wasTrialing = sub.status === 'trialing'

    if (wasTrialing && !pm && sub.trial_settings?.end_behavior?.missing_payment_method !== 'create_invoice') {
      if (sub.trial_settings.end_behavior.missing_payment_method === 'cancel') {
        this.cancel(sub, { reason: 'cancellation_requested' })
        return { subscription: sub, invoice: null }
      }
      engine.change(sub, (s) => (s.status = 'paused'), 'customer.subscription.updated')
      engine.emit('customer.subscription.paused', sub)
      this.syncEntitlements(sub.customer)
      return { subscription: sub, invoice: null }
    }

    const lines: DraftLine[] = [...(engine.meta(sub.id).pending ?? [])]
    for (const item of sub.items.data) {
      const itemPrice = engine.store.get(item.price.id) ?? item.price
      if (this.#isMetered(itemPrice)) {
        if (!wasTrialing) lines.push(this.#meteredLine(sub, item, item.current_period_start, item.current_period_end))
      } else {
        lines.push(this.#lineForItem(sub, item, start, end, false))
      }
    }
    const invoice = this.buildInvoice({
      customer,
      subscription: sub,
      lines,
      discounts: this.#activeDiscounts(sub.discounts, now),
      automaticTax: sub.automatic_tax.enabled,
      billingReason: 'subscription_cycle',
      periodStart: sub.items.data[0].current_period_start,
      periodEnd: periodEnd,
      currency: sub.currency,
    })
    engine.meta(sub.id).pending = []
    const before = engine.render(sub)
    for (const item of sub.items.data) {
      item.current_period_start = start
      item.current_period_end = end
    }
    sub.latest_invoice = invoice.id
    if (wasTrialing) sub.status = 'active'
    if (sub.pause_collection?.resumes_at && sub.pause_collection.resumes_at <= now) sub.pause_collection = null
    engine.save(sub)
    const after = engine.render(sub)
    const previous: Obj = {}
    for (const key of Object.keys(after)) if (!jsonEqual(before[key], after[key])) previous[key] = before[key] ?? null
    engine.emit('customer.subscription.updated', sub, previous)
    this.#createInvoice(invoice)
    const paused = sub.pause_collection?.behavior
    if (paused === 'keep_as_draft') {
      engine.save(invoice)
      return { subscription: sub, invoice }
    }
    if (paused === 'void' || paused === 'mark_uncollectible') {
      this.finalize(invoice)
      if (paused === 'void') this.void(invoice)
      else {
        invoice.status = 'uncollectible'
        invoice.status_transitions.marked_uncollectible_at = now
        engine.emit('invoice.marked_uncollectible', invoice)
      }
      engine.save(invoice)
      return { subscription: sub, invoice }
    }
    const outcome = this.settle(invoice, pm, 'charge')
    engine.save(invoice)
    if (outcome !== 'paid') {
      engine.change(sub, (s) => (s.status = 'past_due'), 'customer.subscription.updated')
      const c = engine.store.get(sub.customer)
      if (c && !c.delinquent) engine.change(c, (x) => (x.delinquent = true), 'customer.updated')
    } else if (sub.status === 'past_due') {
      engine.change(sub, (s) => (s.status = 'active'), 'customer.subscription.updated')
    }
    this.syncEntitlements(sub.customer)
    return { subscription: sub, invoice }
  }

  /**
   * `POST /v1/invoices/create_preview`: the next invoice of a subscription (or of a new one), with
   * the prorations a `subscription_details[items]` change would create.
   */
  preview(params: Obj, createPrice: (data: Obj, param: string) => Obj): Obj {
    const engine = this.#engine
    const now = engine.now()
    const details = (params.subscription_details ?? {}) as Obj
    let customer: Obj | null = params.customer ? engine.require(params.customer, 'customer', 'customer', 'customer', 400) : null
    let sub: Obj | null = params.subscription
      ? engine.require(params.subscription, 'subscription', 'subscription', 'subscription', 400)
      : null
    if (sub && customer && sub.customer !== customer.id) {
      throw invalidRequest('The subscription does not belong to this customer.', { param: 'subscription' })
    }
    if (!sub && customer && details.items === undefined) {
      sub = engine.all('subscription').find((s) => s.customer === customer!.id && LIVE_STATUSES.includes(s.status)) ?? null
    }
    if (sub) customer = engine.store.get(sub.customer)!
    if (!customer) throw missingParameter('customer')
    const automaticTax = params.automatic_tax?.enabled !== undefined
      ? bool(params.automatic_tax.enabled, 'automatic_tax[enabled]') ?? false
      : sub?.automatic_tax?.enabled ?? false
    const discountSpecs = params.discounts !== undefined && params.discounts !== '' ? this.resolveDiscounts(params.discounts, customer) : null
    const draftDiscounts = (specs: DiscountSpec[]) => specs.map((s, i) => ({ id: `di_preview_${i}`, source: { coupon: s.coupon.id } }))

    if (!sub) {
      if (details.items === undefined) {
        throw invalidRequest(`No upcoming invoices for customer: ${customer.id}`, { code: 'invoice_upcoming_none', status: 404 })
      }
      const resolved = ((arr(details.items) ?? []) as Obj[]).map((item, i) => ({
        price: this.resolveItemPrice(item ?? {}, `subscription_details[items][${i}]`, createPrice),
        quantity: int(item?.quantity, `subscription_details[items][${i}][quantity]`) ?? 1,
      }))
      if (!resolved.length) throw missingParameter('subscription_details[items]')
      this.#checkItemPrices(resolved.map((r) => r.price), 'subscription_details[items]')
      const first = resolved[0].price
      const end = addInterval(now, first.recurring.interval, first.recurring.interval_count ?? 1)
      const fakeSub = { id: null, customer: customer.id, metadata: {} }
      const lines = resolved.map((r) => ({
        ...this.#lineForItem(fakeSub, { id: stableId('si_preview_', r.price.id), price: r.price, quantity: r.quantity }, now, end, false),
        subscription: null,
      }))
      return this.buildInvoice({
        customer,
        subscription: null,
        lines,
        discounts: discountSpecs ? (draftDiscounts(discountSpecs) as Obj[]) : [],
        automaticTax,
        billingReason: 'subscription_create',
        periodStart: now,
        periodEnd: now,
        currency: first.currency,
        preview: true,
      })
    }

    if (['canceled', 'incomplete_expired'].includes(sub.status)) {
      throw invalidRequest(`No upcoming invoices for customer: ${customer.id}`, { code: 'invoice_upcoming_none', status: 404 })
    }
    const cancelAtPeriodEnd = details.cancel_at_period_end !== undefined ? bool(details.cancel_at_period_end, 'subscription_details[cancel_at_period_end]') : sub.cancel_at_period_end
    const behavior =
      oneOf(details.proration_behavior, 'subscription_details[proration_behavior]', ['always_invoice', 'create_prorations', 'none']) ??
      'create_prorations'
    const prorationDate =
      details.proration_date !== undefined ? int(details.proration_date, 'subscription_details[proration_date]')! : now
    const plan = details.items !== undefined ? this.planItems(sub, details.items, createPrice, 'subscription_details[items]') : null
    const trialing = sub.status === 'trialing'
    const items: Obj[] = plan?.items ?? sub.items.data
    const reset = !trialing && (plan?.intervalChanged ?? false)
    const prorations = !trialing && plan && behavior !== 'none' ? this.prorations(sub, plan.changes, reset ? now : prorationDate) : []
    const discounts = discountSpecs ? (draftDiscounts(discountSpecs) as Obj[]) : this.#activeDiscounts(sub.discounts, now)
    const pending: DraftLine[] = engine.meta(sub.id).pending ?? []
    let invoice: Obj
    if (reset || (behavior === 'always_invoice' && prorations.length)) {
      const price = items[0].price
      const end = addInterval(now, price.recurring.interval, price.recurring.interval_count ?? 1)
      const lines = reset
        ? [...prorations.filter((l) => l.amount < 0), ...pending, ...items.map((item) => this.#lineForItem(sub!, item, now, end, false))]
        : [...pending, ...prorations]
      invoice = this.buildInvoice({
        customer,
        subscription: sub,
        lines,
        discounts,
        automaticTax,
        billingReason: 'subscription_update',
        periodStart: now,
        periodEnd: now,
        currency: sub.currency,
        preview: true,
      })
    } else {
      if (cancelAtPeriodEnd) {
        throw invalidRequest(`No upcoming invoices for customer: ${customer.id}`, { code: 'invoice_upcoming_none', status: 404 })
      }
      const start = items[0].current_period_end
      const price = items[0].price
      const end = addInterval(start, price.recurring.interval, price.recurring.interval_count ?? 1)
      const lines: DraftLine[] = [...pending, ...(behavior === 'create_prorations' ? prorations : [])]
      for (const item of items) {
        const itemPrice = engine.store.get(item.price.id) ?? item.price
        if (this.#isMetered(itemPrice)) {
          if (!trialing) lines.push(this.#meteredLine(sub, item, item.current_period_start, item.current_period_end))
        } else {
          lines.push(this.#lineForItem(sub, item, start, end, false))
        }
      }
      invoice = this.buildInvoice({
        customer,
        subscription: sub,
        lines,
        discounts,
        automaticTax,
        billingReason: 'subscription_cycle',
        periodStart: items[0].current_period_start,
        periodEnd: items[0].current_period_end,
        currency: sub.currency,
        preview: true,
      })
      invoice.created = start
    }
    if (plan && invoice.parent?.subscription_details) invoice.parent.subscription_details.subscription_proration_date = prorationDate
    return invoice
  }

  // ---------------------------------------------------------------------------------------------
  // Entitlements
  // ---------------------------------------------------------------------------------------------

  /**
   * Active entitlements of a customer: features of the products of its active, trialing and
   * past-due subscriptions.
   */
  activeEntitlements(customerId: string): Obj[] {
    const engine = this.#engine
    const productIds = new Set<string>()
    for (const sub of engine.all('subscription')) {
      if (sub.customer !== customerId || !LIVE_STATUSES.includes(sub.status)) continue
      for (const item of sub.items.data) productIds.add(engine.store.get(item.price.id)?.product ?? item.price.product)
    }
    const seen = new Set<string>()
    const out: Obj[] = []
    for (const pf of engine.all('product_feature').reverse()) {
      if (!productIds.has(engine.meta(pf.id).product)) continue
      const feature = engine.store.get(pf.entitlement_feature.id)
      if (!feature || !feature.active || seen.has(feature.id)) continue
      seen.add(feature.id)
      out.push(
        Object.assign(engine.fixture('entitlements.active_entitlement'), {
          id: stableId('ent_test_61', customerId, feature.id),
          object: 'entitlements.active_entitlement',
          feature: feature.id,
          livemode: false,
          lookup_key: feature.lookup_key,
        })
      )
    }
    return out
  }

  /**
   * Emits `entitlements.active_entitlement_summary.updated` when a customer's entitlements changed.
   */
  syncEntitlements(customerId: string) {
    const engine = this.#engine
    const current = this.activeEntitlements(customerId)
    const meta = engine.meta(customerId)
    const previous: Obj[] = meta.entitlements ?? []
    if (jsonEqual(previous.map((e) => e.feature), current.map((e) => e.feature))) return
    meta.entitlements = current
    // The summary carries each entitlement with its feature expanded, like Stripe's fixture.
    const summary = (list: Obj[]) => ({
      object: 'list',
      data: list.map((e) => ({ ...e, feature: engine.store.get(e.feature) ? engine.render(engine.store.get(e.feature)!) : e.feature })),
      has_more: false,
      url: `/v1/customer/${customerId}/entitlements`,
    })
    const object = Object.assign(engine.fixture('entitlements.active_entitlement_summary'), {
      object: 'entitlements.active_entitlement_summary',
      customer: customerId,
      entitlements: summary(current),
      livemode: false,
    })
    engine.emit('entitlements.active_entitlement_summary.updated', object, { entitlements: summary(previous) })
  }

  /**
   * Re-checks entitlements of every customer with a subscription (after product features change).
   */
  syncAllEntitlements() {
    const customers = new Set(this.#engine.all('subscription').map((s) => s.customer))
    for (const id of customers) this.syncEntitlements(id)
  }

  /**
   * Throws Stripe's 404 for an unknown subscription.
   */
  requireSubscription(id: unknown, param = 'id'): Obj {
    const sub = this.#engine.find(id, 'subscription')
    if (!sub) throw resourceMissing('subscription', String(id), param, param === 'id' ? 404 : 400)
    return sub
  }
}
