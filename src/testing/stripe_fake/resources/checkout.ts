/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Billing } from '../billing.ts'
import { attachPaymentMethod, declineError, resolvePaymentMethod, testCardFor } from '../cards.ts'
import { invalidRequest, missingParameter } from '../errors.ts'
import type { Engine, Route } from '../engine.ts'
import { applyMetadata, arr, bool, int, matchesRange, oneOf, prorate, randomToken, str, type Obj } from '../util.ts'
import { FAKE_TAX_PERCENT } from '../billing.ts'
import { createPrice } from './catalog.ts'
import { createCustomer, createTaxId } from './customers.ts'

/**
 * What the customer "enters" on the hosted Checkout page in {@link completeCheckout}.
 */
export interface CheckoutCompletion {
  /**
   * Test card used to pay (`pm_card_visa` by default). SCA cards count as authenticated.
   */
  paymentMethod?: string
  email?: string
  name?: string
  /**
   * Billing address entered on the page (saved on the customer when `customer_update[address]=auto`
   * or when Checkout creates the customer).
   */
  address?: { line1?: string; city?: string; postal_code?: string; state?: string; country?: string }
  /**
   * Tax ids entered when `tax_id_collection[enabled]=true`.
   */
  taxIds?: Array<{ type: string; value: string }>
  /**
   * Promotion code typed on the page when `allow_promotion_codes=true`.
   */
  promotionCode?: string
}

/**
 * Routes of `/v1/checkout/sessions` and `/v1/billing_portal/sessions`.
 */
export function checkoutRoutes(engine: Engine, billing: Billing): Route[] {
  const requireSession = (id: unknown) => engine.require(id, 'checkout.session', 'checkout.session')
  const inlinePrice = (data: Obj, param: string) => createPrice(engine, data, param, true)

  engine.virtuals.set('checkout.session.line_items', (session) =>
    engine.list(engine.meta(session.id).lineItems ?? [], {}, `/v1/checkout/sessions/${session.id}/line_items`, false)
  )

  const lineItem = (price: Obj, quantity: number, automaticTax: boolean): Obj => {
    const item = engine.fixture('item')
    const subtotal = billing.priceAmount(price, quantity)
    const tax = automaticTax ? prorate(subtotal, FAKE_TAX_PERCENT, 100) : 0
    Object.assign(item, {
      id: engine.id('li_'),
      object: 'item',
      adjustable_quantity: null,
      amount_discount: 0,
      amount_subtotal: subtotal,
      amount_tax: tax,
      amount_total: subtotal + tax,
      currency: price.currency,
      description: engine.store.get(price.product)?.name ?? null,
      metadata: {},
      price: structuredClone(price),
      quantity,
    })
    return item
  }

  const createSession = (params: Obj) => {
    const mode = oneOf(params.mode, 'mode', ['payment', 'setup', 'subscription'])
    if (!mode) throw missingParameter('mode')
    if (params.customer !== undefined && params.customer_email !== undefined) {
      throw invalidRequest('You may only specify one of these parameters: customer, customer_email.', { param: 'customer_email' })
    }
    if (params.allow_promotion_codes !== undefined && params.discounts !== undefined) {
      throw invalidRequest('You may only specify one of these parameters: allow_promotion_codes, discounts.', { param: 'discounts' })
    }
    const customer = params.customer ? engine.require(params.customer, 'customer', 'customer', 'customer', 400) : null
    if (params.customer_update !== undefined && !customer) {
      throw invalidRequest('customer_update can only be used with customer.', { param: 'customer_update' })
    }
    const automaticTax = bool(params.automatic_tax?.enabled, 'automatic_tax[enabled]') ?? false
    const taxIdCollection = bool(params.tax_id_collection?.enabled, 'tax_id_collection[enabled]') ?? false
    if (customer && taxIdCollection && params.customer_update?.name !== 'auto') {
      throw invalidRequest(
        'tax_id_collection requires updating business name on the customer. To enable tax id collection for an existing customer, please set `customer_update[name]` to `auto`.',
        { param: 'tax_id_collection[enabled]' }
      )
    }
    if (
      customer &&
      automaticTax &&
      !customer.address?.country &&
      params.customer_update?.address !== 'auto' &&
      params.customer_update?.shipping !== 'auto'
    ) {
      throw invalidRequest(
        "Automatic tax calculation in Checkout requires a valid address on the Customer. Add a valid address to the Customer or set either `customer_update[address]` or `customer_update[shipping]` to 'auto' to save the address entered in Checkout.",
        { param: 'automatic_tax[enabled]' }
      )
    }
    const rawItems = (arr(params.line_items) ?? []) as Obj[]
    if (mode !== 'setup' && !rawItems.length) throw missingParameter('line_items')
    if (mode === 'setup' && rawItems.length) {
      throw invalidRequest('You cannot pass `line_items` in `setup` mode.', { param: 'line_items' })
    }
    const resolved = rawItems.map((item, i) => {
      const p = `line_items[${i}]`
      const price = billing.resolveItemPrice(item ?? {}, p, inlinePrice)
      /**
       * Metered prices take no quantity (Stripe refuses one); every other price needs it.
       */
      if (price.recurring?.usage_type === 'metered') {
        if (item?.quantity !== undefined) {
          throw invalidRequest('Quantity should not be specified where usage_type is `metered`. Remove quantity from `' + p + '`.', { param: `${p}[quantity]` })
        }
        return { price, quantity: 0 }
      }
      if (item?.quantity === undefined) throw missingParameter(`${p}[quantity]`)
      return { price, quantity: int(item.quantity, `${p}[quantity]`)! }
    })
    if (mode === 'payment' && resolved.some((r) => r.price.type === 'recurring')) {
      throw invalidRequest(
        'You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.',
        { param: 'mode' }
      )
    }
    if (mode === 'subscription' && !resolved.some((r) => r.price.type === 'recurring')) {
      throw invalidRequest('You must provide at least one recurring price in `subscription` mode when using prices.', { param: 'mode' })
    }
    if (mode === 'subscription' && resolved.some((r) => r.price.type !== 'recurring')) {
      throw invalidRequest('StripeFake does not simulate one-time prices in `subscription` mode yet.', { param: 'line_items' })
    }
    const discountSpecs = params.discounts ? billing.resolveDiscounts(params.discounts, customer) : []
    const currencies = new Set(resolved.map((r) => r.price.currency))
    if (currencies.size > 1) throw invalidRequest('All line items must use the same currency.', { param: 'line_items' })
    const trialDays = int(params.subscription_data?.trial_period_days, 'subscription_data[trial_period_days]') ?? null
    const lineItems = resolved.map((r) => lineItem(r.price, r.quantity, automaticTax))
    const subtotal = lineItems.reduce((t, li) => t + li.amount_subtotal, 0)
    const taxTotal = lineItems.reduce((t, li) => t + li.amount_tax, 0)
    const dueNow = trialDays ? 0 : subtotal + taxTotal

    const now = engine.now()
    const id = `cs_test_a1${randomToken(56)}`
    const session = engine.fixture('checkout.session')
    Object.assign(session, {
      id,
      object: 'checkout.session',
      adaptive_pricing: null,
      after_expiration: null,
      allow_promotion_codes: bool(params.allow_promotion_codes, 'allow_promotion_codes') ?? null,
      amount_subtotal: mode === 'setup' ? null : trialDays ? 0 : subtotal,
      amount_total: mode === 'setup' ? null : dueNow,
      automatic_tax: {
        enabled: automaticTax,
        liability: automaticTax ? { type: 'self' } : null,
        provider: automaticTax ? 'stripe' : null,
        status: automaticTax ? 'requires_location_inputs' : null,
      },
      billing_address_collection: oneOf(params.billing_address_collection, 'billing_address_collection', ['auto', 'required']) ?? null,
      cancel_url: str(params.cancel_url, 'cancel_url') ?? null,
      client_reference_id: str(params.client_reference_id, 'client_reference_id') ?? null,
      client_secret: null,
      collected_information: null,
      consent: null,
      consent_collection: null,
      created: now,
      currency: mode === 'setup' ? str(params.currency, 'currency') ?? null : resolved[0].price.currency,
      currency_conversion: null,
      custom_fields: [],
      custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
      customer: customer?.id ?? null,
      customer_account: null,
      customer_creation: customer || mode !== 'payment' ? null : params.customer_creation ?? 'if_required',
      customer_details: params.customer_email
        ? { address: null, email: String(params.customer_email), name: null, phone: null, tax_exempt: 'none', tax_ids: null, business_name: null, individual_name: null }
        : null,
      customer_email: str(params.customer_email, 'customer_email') ?? null,
      discounts: discountSpecs.map((s) => ({ coupon: s.promotionCode ? null : s.coupon.id, promotion_code: s.promotionCode?.id ?? null })),
      expires_at: int(params.expires_at, 'expires_at') ?? now + 86_400,
      integration_identifier: null,
      invoice: null,
      invoice_creation: mode === 'payment' ? { enabled: bool(params.invoice_creation?.enabled, 'invoice_creation[enabled]') ?? false, invoice_data: { account_tax_ids: null, custom_fields: null, description: null, footer: null, issuer: null, metadata: {}, rendering_options: null } } : null,
      livemode: false,
      locale: str(params.locale, 'locale') ?? null,
      managed_payments: null,
      metadata: applyMetadata({}, params.metadata),
      mode,
      origin_context: null,
      payment_intent: null,
      payment_link: null,
      payment_method_collection: mode === 'subscription' ? params.payment_method_collection ?? 'always' : null,
      payment_method_configuration_details: null,
      payment_method_options: {},
      payment_method_types: (arr(params.payment_method_types) ?? ['card']).map(String),
      payment_status: mode === 'setup' ? 'no_payment_required' : 'unpaid',
      permissions: null,
      phone_number_collection: { enabled: bool(params.phone_number_collection?.enabled, 'phone_number_collection[enabled]') ?? false },
      recovered_from: null,
      saved_payment_method_options: null,
      setup_intent: null,
      shipping_address_collection: null,
      shipping_cost: null,
      shipping_options: [],
      status: 'open',
      submit_type: null,
      subscription: null,
      success_url: str(params.success_url, 'success_url') ?? null,
      tax_id_collection: { enabled: taxIdCollection, required: params.tax_id_collection?.required ?? 'never' },
      total_details: mode === 'setup' ? null : { amount_discount: 0, amount_shipping: 0, amount_tax: trialDays ? 0 : taxTotal },
      ui_mode: params.ui_mode ?? 'hosted',
      url: params.ui_mode === 'embedded' ? null : `https://checkout.stripe.com/c/pay/${id}#fidkdWxOYHwnPyd1blpxYHZxWjA0`,
      wallet_options: null,
    })
    if (session.ui_mode === 'embedded') session.client_secret = `${id}_secret_${randomToken(24)}`
    const meta = engine.meta(id)
    meta.lineItems = lineItems
    meta.params = params
    meta.discountSpecs = discountSpecs
    engine.save(session)
    return engine.render(session)
  }

  return [
    { method: 'POST', path: '/v1/checkout/sessions', schema: 'Checkout.SessionCreateParams', handler: (r) => createSession(r.params) },
    {
      method: 'GET',
      path: '/v1/checkout/sessions',
      schema: 'Checkout.SessionListParams',
      handler: (r) => {
        const items = engine
          .all('checkout.session')
          .filter(
            (s) =>
              (!r.params.customer || s.customer === r.params.customer) &&
              (!r.params.status || s.status === r.params.status) &&
              (!r.params.subscription || s.subscription === r.params.subscription) &&
              (!r.params.payment_intent || s.payment_intent === r.params.payment_intent) &&
              matchesRange(s.created, r.params.created, 'created')
          )
        return engine.list(items, r.params, '/v1/checkout/sessions')
      },
    },
    {
      method: 'GET',
      path: '/v1/checkout/sessions/:id',
      schema: 'Checkout.SessionRetrieveParams',
      handler: (r) => engine.render(requireSession(r.ids.id)),
    },
    {
      method: 'GET',
      path: '/v1/checkout/sessions/:id/line_items',
      schema: 'Checkout.SessionListLineItemsParams',
      handler: (r) => {
        const session = requireSession(r.ids.id)
        return engine.list(engine.meta(session.id).lineItems ?? [], r.params, `/v1/checkout/sessions/${session.id}/line_items`, false)
      },
    },
    {
      method: 'POST',
      path: '/v1/checkout/sessions/:id/expire',
      schema: 'Checkout.SessionExpireParams',
      handler: (r) => {
        const session = requireSession(r.ids.id)
        if (session.status !== 'open') {
          throw invalidRequest(`Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${session.status}".`)
        }
        session.status = 'expired'
        session.url = null
        engine.emit('checkout.session.expired', session)
        return engine.render(session)
      },
    },
    {
      method: 'POST',
      path: '/v1/billing_portal/sessions',
      schema: 'BillingPortal.SessionCreateParams',
      handler: (r) => {
        if (!r.params.customer) throw missingParameter('customer')
        const customer = engine.require(r.params.customer, 'customer', 'customer', 'customer', 400)
        const portal = engine.fixture('billing_portal.session')
        Object.assign(portal, {
          id: engine.id('bps_'),
          object: 'billing_portal.session',
          configuration: str(r.params.configuration, 'configuration') ?? 'bpc_stripefake_default',
          created: engine.now(),
          customer: customer.id,
          customer_account: null,
          flow: r.params.flow_data ? { ...r.params.flow_data } : null,
          livemode: false,
          locale: str(r.params.locale, 'locale') ?? null,
          on_behalf_of: null,
          return_url: str(r.params.return_url, 'return_url') ?? null,
          url: `https://billing.stripe.com/p/session/test_${randomToken(40)}`,
        })
        engine.save(portal)
        engine.emit('billing_portal.session.created', portal)
        return engine.render(portal)
      },
    },
  ]
}

/**
 * Does what Stripe does when the customer pays on the hosted Checkout page: creates the customer
 * if needed, attaches the card, creates the subscription (or payment / setup), marks the session
 * `complete` and records `checkout.session.completed` after the resulting events.
 */
export function completeCheckout(engine: Engine, billing: Billing, sessionId: string, input: CheckoutCompletion = {}): Obj {
  const session = engine.find(sessionId, 'checkout.session')
  if (!session) throw new Error(`StripeFake: no checkout session ${sessionId}`)
  if (session.status !== 'open') throw new Error(`StripeFake: checkout session ${sessionId} is ${session.status}`)
  const meta = engine.meta(session.id)
  const params = meta.params as Obj
  const cardRef = input.paymentMethod ?? 'pm_card_visa'
  const card = testCardFor(cardRef)
  if (!card && !engine.find(cardRef, 'payment_method')) throw new Error(`StripeFake: unknown test card ${cardRef}`)
  if (card && (card.behavior === 'decline' || card.behavior === 'decline_on_charge') && session.mode !== 'setup') {
    throw declineError(card)
  }
  if (card?.behavior === 'decline') throw declineError(card)

  const now = engine.now()
  const email = input.email ?? session.customer_email ?? `customer_${randomToken(6).toLowerCase()}@example.com`
  const address = input.address
    ? { city: null, country: null, line1: null, line2: null, postal_code: null, state: null, ...input.address }
    : null
  let customer = session.customer ? engine.find(session.customer, 'customer') ?? null : null
  const needsCustomer = session.mode !== 'payment' || session.customer_creation === 'always' || customer !== null
  if (!customer && needsCustomer) {
    customer = createCustomer(engine, { email, name: input.name, address: address ?? undefined })
  } else if (customer && params.customer_update) {
    const update = params.customer_update as Obj
    engine.change(
      customer,
      (c) => {
        if (update.address === 'auto' && address) c.address = address
        if (update.name === 'auto' && input.name) c.name = input.name
      },
      'customer.updated'
    )
  }
  if (customer && session.tax_id_collection?.enabled) {
    for (const taxId of input.taxIds ?? []) createTaxId(engine, customer, taxId)
  }
  // The card is saved on the customer for subscriptions and setups; a one-off payment only uses it.
  const pm =
    customer && session.mode !== 'payment'
      ? attachPaymentMethod(engine, cardRef, customer)
      : engine.find(cardRef, 'payment_method') ?? resolvePaymentMethod(engine, cardRef, 'payment_method')

  let discountSpecs = meta.discountSpecs ?? []
  if (input.promotionCode) {
    if (!session.allow_promotion_codes) throw new Error('StripeFake: this session does not allow promotion codes')
    const promo = engine.all('promotion_code').find((p) => p.active && p.code.toLowerCase() === input.promotionCode!.toLowerCase())
    if (!promo) throw new Error(`StripeFake: no active promotion code ${input.promotionCode}`)
    discountSpecs = billing.resolveDiscounts([{ promotion_code: promo.id }], customer)
  }

  const lineItems: Obj[] = meta.lineItems ?? []
  const update: Obj = {
    status: 'complete',
    customer: customer?.id ?? null,
    customer_details: {
      address,
      email: customer?.email ?? email,
      name: customer?.name ?? input.name ?? null,
      phone: null,
      tax_exempt: customer?.tax_exempt ?? 'none',
      tax_ids: (input.taxIds ?? []).map((t) => ({ type: t.type, value: t.value })),
      business_name: null,
      individual_name: null,
    },
    url: null,
  }
  if (session.automatic_tax.enabled) update.automatic_tax = { ...session.automatic_tax, status: 'complete' }

  if (session.mode === 'subscription') {
    const sp = (params.subscription_data ?? {}) as Obj
    const subParams: Obj = {
      customer: customer!.id,
      items: lineItems.map((li) => ({ price: li.price.id, quantity: li.quantity })),
      default_payment_method: pm!.id,
      metadata: sp.metadata,
      description: sp.description,
      payment_behavior: 'error_if_incomplete',
      automatic_tax: { enabled: session.automatic_tax.enabled },
      discounts: discountSpecs.map((s: Obj) => (s.promotionCode ? { promotion_code: s.promotionCode.id } : { coupon: s.coupon.id })),
    }
    if (sp.trial_period_days !== undefined) subParams.trial_period_days = sp.trial_period_days
    if (sp.trial_end !== undefined) subParams.trial_end = sp.trial_end
    const sub = billing.createSubscription(subParams, (data, param) => createPrice(engine, data, param, true), {
      authenticated: true,
      checkoutSession: session.id,
    })
    const invoice = engine.store.get(sub.latest_invoice)!
    Object.assign(update, {
      subscription: sub.id,
      invoice: invoice.id,
      payment_status: invoice.amount_paid > 0 ? 'paid' : 'no_payment_required',
      amount_subtotal: invoice.subtotal,
      amount_total: invoice.total,
      total_details: {
        amount_discount: invoice.total_discount_amounts.reduce((t: number, d: Obj) => t + d.amount, 0),
        amount_shipping: 0,
        amount_tax: invoice.total_taxes.reduce((t: number, d: Obj) => t + d.amount, 0),
      },
    })
  } else if (session.mode === 'payment' && session.invoice_creation?.enabled && customer) {
    const invoice = billing.chargeOneOff(
      customer,
      lineItems.map((li) => ({ price: li.price, quantity: li.quantity })),
      { automaticTax: session.automatic_tax.enabled, paymentMethod: pm }
    )
    Object.assign(update, {
      invoice: invoice.id,
      payment_intent: invoice.payments.data[0]?.payment?.payment_intent ?? null,
      payment_status: 'paid',
      amount_total: invoice.total,
      total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: invoice.total - invoice.subtotal },
    })
  } else if (session.mode === 'payment') {
    const amount = session.amount_total ?? 0
    const pi = engine.fixture('payment_intent')
    const piId = engine.id('pi_')
    Object.assign(pi, {
      id: piId,
      object: 'payment_intent',
      amount,
      amount_capturable: 0,
      amount_received: amount,
      automatic_payment_methods: null,
      canceled_at: null,
      client_secret: `${piId}_secret_${randomToken(24)}`,
      created: now,
      currency: session.currency,
      customer: customer?.id ?? null,
      last_payment_error: null,
      latest_charge: engine.id('ch_'),
      livemode: false,
      next_action: null,
      payment_method: pm?.id ?? null,
      payment_method_configuration_details: null,
      processing: null,
      shipping: null,
      status: 'succeeded',
      transfer_data: null,
      customer_account: null,
      managed_payments: null,
    })
    engine.save(pi)
    engine.emit('payment_intent.created', pi)
    engine.emit('payment_intent.succeeded', pi)
    Object.assign(update, { payment_intent: piId, payment_status: 'paid' })
  } else {
    const setupIntent = engine.fixture('setup_intent')
    const seti = engine.id('seti_')
    Object.assign(setupIntent, {
      id: seti,
      object: 'setup_intent',
      automatic_payment_methods: null,
      client_secret: `${seti}_secret_${randomToken(24)}`,
      last_setup_error: null,
      latest_attempt: null,
      next_action: null,
      payment_method_configuration_details: null,
      created: now,
      customer: customer?.id ?? null,
      livemode: false,
      payment_method: pm?.id ?? null,
      status: 'succeeded',
      usage: 'off_session',
    })
    engine.save(setupIntent)
    engine.emit('setup_intent.succeeded', setupIntent)
    Object.assign(update, { setup_intent: seti, payment_status: 'no_payment_required' })
  }
  Object.assign(session, update)
  engine.save(session)
  engine.emit('checkout.session.completed', session)
  return engine.render(session)
}
