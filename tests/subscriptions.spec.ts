import { test } from '@japa/runner'
import { checkoutLinkProof } from '../src/customers/checkout_link.ts'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { User } from './fixtures/user.ts'
import AuditLog from '../src/models/audit_log.ts'
import Subscription from '../src/models/subscription.ts'
import SubscriptionItem from '../src/models/subscription_item.ts'
import Invoice from '../src/models/invoice.ts'
import Customer from '../src/models/customer.ts'
import { StripeGateway } from '../src/stripe/stripe_gateway.ts'
import { testCatalog } from './fixtures/catalog.ts'
import { DateTime, Settings } from 'luxon'
import type { BillingConfigInput } from '../src/types.ts'

/**
 * An app on the Stripe fake with the catalog pushed, and a user.
 */
async function billingWorld(dialect: 'sqlite' | 'pg', options: { billing?: BillingConfigInput; stripe?: BillingConfigInput['stripe'] } = {}) {
  const world = await setupStripeApp(dialect, options)
  const sync = world.billing.catalogSync()
  await sync.apply(await sync.plan())
  const user = await User.create({ email: 'ada@example.com', name: 'Ada Lovelace' })
  const priceId = (lookupKey: string) => (world.fake.store.prices() as any[]).find((price) => price.lookup_key === lookupKey).id as string
  const mark = () => world.fake.requests.length
  const since = (from: number) => world.fake.requests.slice(from).filter((request) => request.method !== 'GET')
  /** `METHOD /path` of the non-GET requests made since `from`, in order */
  const calls = (from: number) => since(from).map((request) => `${request.method} ${request.path}`)
  /** The app's own `stripe` client (pointed at the fake), to set up coupons and the like */
  const stripe = () => world.billing.stripe.client()
  return { ...world, user, priceId, mark, since, calls, stripe }
}

/**
 * Stripe params as the fake records them: form-encoded, so every leaf is a string.
 */
function form(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(form)
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined).map(([key, item]) => [key, form(item)]))
  return String(value)
}

/**
 * The id of the newest audit row (0 when there is none), to read the rows an operation writes.
 */
async function auditMark() {
  return (await AuditLog.query().orderBy('id', 'desc').first())?.id ?? 0
}

/**
 * Audit rows written after `mark`, in order, reduced to what an operation decides.
 */
async function auditSince(mark: number) {
  const { revealPersonalData } = await import('../src/audit/personal_data.ts')
  const query = AuditLog.query().where('id', '>', mark).orderBy('id')
  const rows = await revealPersonalData(query.client as any, (await query).map((row) => row.toJSON() as any))
  return rows.map((row: any) => ({
    action: row.action,
    actorType: row.actorType,
    customerId: row.customerId === null ? null : Number(row.customerId),
    subjectType: row.subjectType,
    subjectId: row.subjectId,
    before: row.before,
    after: row.after,
    metadata: row.metadata,
  }))
}

/**
 * The audited snapshot of a subscription row (what `subscription.*` audit rows carry as before/after).
 */
function auditedFields(subscription: Subscription) {
  return {
    plan: subscription.plan,
    status: subscription.status,
    quantity: subscription.quantity,
    cancel_at_period_end: subscription.cancelAtPeriodEnd,
    ends_at: subscription.endsAt?.toISO() ?? null,
    trial_ends_at: subscription.trialEndsAt?.toISO() ?? null,
    paused_at: subscription.pausedAt?.toISO() ?? null,
  }
}

/**
 * Local items of a subscription, oldest first.
 */
async function localItems(subscriptionId: number) {
  const items = await SubscriptionItem.query().where('subscription_id', subscriptionId).orderBy('id')
  return items.map((item) => ({ stripeItemId: item.stripeItemId, stripePriceId: item.stripePriceId, priceKey: item.priceKey, meter: item.meter, quantity: item.quantity }))
}

/**
 * Everything the package keeps locally, serialized, to compare before/after a failed call.
 */
async function localSnapshot() {
  return {
    customers: (await Customer.query().orderBy('id')).map((row) => row.toJSON()),
    subscriptions: (await Subscription.query().orderBy('id')).map((row) => row.toJSON()),
    items: (await SubscriptionItem.query().orderBy('id')).map((row) => row.toJSON()),
    invoices: (await Invoice.query().orderBy('id')).map((row) => row.toJSON()),
    audit: (await AuditLog.query().orderBy('id')).map((row) => `${row.id}:${row.action}:${row.hash}`),
  }
}

const utcSeconds = (seconds: number) => DateTime.fromSeconds(seconds, { zone: 'utc' }).toISO()

/**
 * Runs `run` with luxon's clock (what the package stamps its rows with) frozen at `now`, so the
 * timestamps written meanwhile are known: e.g. the customer row's `updated_at` when it is linked to
 * Stripe inside `subscribe()`, which scopes the customer idempotency keys.
 */
async function atFrozenTime<T>(run: (now: number) => Promise<T>): Promise<T> {
  const previous = Settings.now
  const now = Date.now()
  Settings.now = () => now
  try {
    return await run(now)
  } finally {
    Settings.now = previous
  }
}

/**
 * The idempotency key the package derives for a customer mutation: scoped to the local customer row
 * as it was before the call (id, `updated_at`, balance) and hashed with the operation's parameters.
 */
function customerKey(operation: string, customer: { id: number; updatedAt: DateTime; balance: number }, params: unknown) {
  return StripeGateway.idempotencyKey(operation, `${customer.id}:${customer.updatedAt.toMillis()}:${customer.balance}`, params)
}

/**
 * The mirrored fields (as customer audit rows carry them) of Ada's customer row before anything was
 * ever read back from Stripe: created and linked only.
 */
const NEVER_MIRRORED = { email: 'ada@example.com', name: 'Ada Lovelace', tax_exempt: null, balance: 0, currency: 'usd', default_payment_method: null, tax_ids: null }

/**
 * Sorted Stripe price ids, as `prices.before` / `prices.after` of a subscription audit row.
 */
const sortedPrices = (...ids: string[]) => [...ids].sort()

/**
 * The test catalog plus `business` (another flat price and another usage price for the same meter)
 * and `starter` (a flat price only).
 */
function swapCatalog() {
  const catalog = testCatalog()
  catalog.plans!.business = {
    name: 'Business',
    prices: { month: { amount: 9900 } },
    usagePrices: { api_calls: { model: 'per_unit', unitAmount: '0.02' } },
    features: { sso: true, seats: 50, api_calls: 100000 },
  }
  catalog.plans!.starter = { name: 'Starter', prices: { month: { amount: 900 } }, features: { seats: 3 } }
  return catalog
}

/**
 * A world with the clock of the fake frozen and `pro` subscribed with a card (no trial).
 */
async function proWorld(dialect: 'sqlite' | 'pg', options: { billing?: BillingConfigInput; stripe?: BillingConfigInput['stripe'] } = {}) {
  const world = await billingWorld(dialect, { billing: options.billing ?? swapCatalog(), stripe: options.stripe })
  world.fake.setNow(world.fake.now())
  const { subscription } = await world.billing.for(world.user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0 })
  const customer = await world.billing.for(world.user).customer()
  const stripeSubscriptionId = subscription.stripeSubscriptionId!
  const stripeSubscription = () => world.fake.store.get(stripeSubscriptionId)! as any
  const [licensed, metered] = stripeSubscription().items.data
  /** The local row as stored now */
  const row = () => Subscription.findOrFail(subscription.id)
  /** The idempotency key `SubscriptionScope` derives for an update of `current` with `params` */
  const updateKey = (operation: string, current: Subscription, params: unknown) =>
    StripeGateway.idempotencyKey(operation, `${current.id}:${current.stripeUpdatedAt?.toMillis() ?? 0}`, params)
  return { ...world, subscription, customer, stripeSubscriptionId, stripeSubscription, licensed, metered, row, updateKey }
}

for (const dialect of DIALECTS) {
  test.group(`checkout and portal [${dialect}]`, () => {
    test('checkout creates the Stripe customer once and a subscription-mode session with tax settings', async ({ assert }) => {
      const world = await billingWorld(dialect, { billing: { ...(await import('./fixtures/catalog.ts')).testCatalog(), tax: { automatic: true, collectTaxIds: true } } })
      const { billing, user, fake } = world
      const from = world.mark()
      const session = await billing.for(user).checkout('pro', { interval: 'month', successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/cancel' })
      assert.match(session.url, /^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_test_/)

      const writes = world.since(from)
      assert.deepEqual(writes.map((request) => `${request.method} ${request.path}`), ['POST /v1/customers', 'POST /v1/checkout/sessions'])
      const customer = await Customer.findByOrFail('billable_id', String(user.id))
      assert.deepEqual(writes[0].body, {
        email: 'ada@example.com',
        name: 'Ada Lovelace',
        metadata: { adonis_billing_customer_id: String(customer.id), billable_type: 'user', billable_id: String(user.id) },
      })
      assert.match(writes[0].idempotencyKey!, /^adonis-billing:customer\.create:/)
      assert.equal(customer.stripeCustomerId, fake.store.customers()[0].id)

      const metadata = { adonis_billing_plan: 'pro', adonis_billing_subscription: 'default', adonis_billing_customer_id: String(customer.id) }
      assert.deepEqual(writes[1].body, {
        mode: 'subscription',
        customer: customer.stripeCustomerId,
        client_reference_id: String(customer.id),
        line_items: [{ price: world.priceId('pro_month'), quantity: '1' }, { price: world.priceId('pro_api_calls') }],
        success_url: 'https://app.test/ok',
        cancel_url: 'https://app.test/cancel',
        subscription_data: { metadata, trial_period_days: '14' },
        metadata: { ...metadata, adonis_billing_link: checkoutLinkProof(world.app, customer.id, customer.stripeCustomerId!) },
        allow_promotion_codes: 'false',
        automatic_tax: { enabled: 'true' },
        tax_id_collection: { enabled: 'true' },
        billing_address_collection: 'auto',
        customer_update: { address: 'auto', name: 'auto' },
      })
      assert.isString(writes[1].idempotencyKey)

      await billing.for(user).checkout('pro', { interval: 'year', successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/cancel' })
      assert.lengthOf(fake.requestsTo('POST', '/v1/customers'), 1)
      assert.deepEqual(
        (await AuditLog.query().orderBy('id')).map((row) => row.action).filter((action) => !action.startsWith('catalog.')),
        ['customer.created', 'customer.stripe_linked', 'checkout.subscription_started', 'checkout.subscription_started']
      )

      const completed = fake.completeCheckout(session.id)
      assert.equal(completed.status, 'complete')
    })

    test('one-off charges and the billing portal', async ({ assert }) => {
      const { billing, user, fake } = await billingWorld(dialect)
      const charge = await billing.for(user).checkout.charge({
        items: [{ name: 'Onboarding', amount: 15000 }],
        successUrl: 'https://app.test/ok',
        cancelUrl: 'https://app.test/cancel',
      })
      assert.match(charge.url, /^https:\/\/checkout\.stripe\.com/)
      const body = fake.lastRequest('POST', '/v1/checkout/sessions')!.body
      assert.equal(body.mode, 'payment')
      assert.deepEqual(body.line_items, [{ quantity: '1', price_data: { currency: 'usd', unit_amount: '15000', product_data: { name: 'Onboarding' } } }])
      await assert.rejects(
        () => billing.for(user).checkout.charge({ items: [{ name: 'Bad', amount: 12.5 }], successUrl: 'https://a', cancelUrl: 'https://b' }),
        /positive integer in minor units/
      )

      const url = await billing.for(user).portalUrl({ returnUrl: 'https://app.test/account' })
      assert.match(url, /^https:\/\/billing\.stripe\.com\//)
      assert.deepEqual(fake.lastRequest('POST', '/v1/billing_portal/sessions')!.body, {
        customer: (await billing.for(user).customer()).stripeCustomerId,
        return_url: 'https://app.test/account',
      })
    })

    test('free plans never touch Stripe', async ({ assert }) => {
      const { billing, user, fake, mark } = await billingWorld(dialect)
      const from = mark()
      const result = await billing.for(user).subscribe('free')
      assert.equal(result.outcome, 'active')
      assert.isNull(result.subscription.stripeSubscriptionId)
      assert.equal(result.subscription.plan, 'free')
      assert.lengthOf(fake.requests.slice(from), 0)
      assert.isNull((await billing.for(user).customer()).stripeCustomerId)
      assert.deepEqual((await billing.for(user).features()).features, { seats: 1, api_calls: 1000 })
      await billing.for(user).subscribe('free')
      assert.lengthOf(await Subscription.all(), 1)
      await assert.rejects(() => billing.for(user).checkout('free', { successUrl: 'https://a', cancelUrl: 'https://b' }), /is free/)
    })
  })

  test.group(`subscription lifecycle [${dialect}]`, () => {
    test('subscribe with a card: active, local rows, items, paid invoice and audit in one go', async ({ assert }) => {
      const world = await billingWorld(dialect)
      const { billing, user, fake } = world
      const from = world.mark()
      const result = await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0, quantity: 2 })
      assert.equal(result.outcome, 'active')
      assert.isNull(result.clientSecret)

      const create = world.since(from).find((request) => request.path === '/v1/subscriptions')!
      const customer = await billing.for(user).customer()
      assert.deepEqual(create.body, {
        customer: customer.stripeCustomerId,
        items: [{ price: world.priceId('pro_month'), quantity: '2' }, { price: world.priceId('pro_api_calls') }],
        payment_behavior: 'allow_incomplete',
        expand: ['latest_invoice.confirmation_secret'],
        metadata: { adonis_billing_plan: 'pro', adonis_billing_subscription: 'default', adonis_billing_customer_id: String(customer.id) },
        default_payment_method: customer.defaultPaymentMethod,
      })
      assert.match(customer.defaultPaymentMethod!, /^pm_/)
      assert.equal(customer.defaultPaymentMethod, (fake.store.paymentMethods() as any[])[0].id)
      assert.deepEqual(world.since(from).map((request) => `${request.method} ${request.path}`), [
        'POST /v1/customers',
        `POST /v1/payment_methods/pm_card_visa/attach`,
        `POST /v1/customers/${customer.stripeCustomerId}`,
        'POST /v1/subscriptions',
      ])
      assert.match(create.idempotencyKey!, /^adonis-billing:subscription\.create:/)

      const subscription = result.subscription
      assert.equal(subscription.status, 'active')
      assert.equal(subscription.plan, 'pro')
      assert.equal(subscription.quantity, 2)
      assert.isTrue(subscription.active())
      assert.isFalse(subscription.onTrial())
      const stripeSubscription = fake.store.subscriptions()[0] as any
      assert.equal(subscription.stripeSubscriptionId, stripeSubscription.id)
      assert.equal(subscription.currentPeriodEnd!.toSeconds(), stripeSubscription.items.data[0].current_period_end)

      const items = await SubscriptionItem.query().where('subscription_id', subscription.id).orderBy('id')
      assert.deepEqual(items.map((item) => [item.priceKey, item.quantity]), [['pro_month', 2], ['pro_api_calls', null]])

      const invoice = await Invoice.query().where('customer_id', customer.id).firstOrFail()
      assert.equal(invoice.status, 'paid')
      assert.strictEqual(invoice.subtotal, 5800)
      assert.strictEqual(invoice.total, 5800)
      assert.strictEqual(invoice.amountPaid, 5800)
      assert.equal(invoice.subscriptionId, subscription.id)

      const audit = await AuditLog.query().where('action', 'subscription.created').firstOrFail()
      assert.deepInclude(audit.after!, { plan: 'pro', status: 'active', quantity: 2 })
      assert.equal(customer.entitlementVersion, 1)
      assert.equal(await billing.for(user).check('sso'), 'granted')
    })

    test('subscribe with a card makes it the default like setDefaultPaymentMethod: keyed requests, mirrored on the local customer, audited', async ({ assert }) => {
      const world = await billingWorld(dialect)
      const { billing, user, fake } = world
      fake.setNow(fake.now())
      const from = world.mark()
      const audit = await auditMark()

      const { result, now } = await atFrozenTime(async (now) => ({ result: await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa' }), now }))

      const customer = await billing.for(user).customer()
      const stripeCustomerId = customer.stripeCustomerId!
      const paymentMethod = (fake.store.paymentMethods() as any[]).find((method) => method.customer === stripeCustomerId).id as string
      assert.match(paymentMethod, /^pm_/)
      assert.notEqual(paymentMethod, 'pm_card_visa')
      /**
       * Every request, GETs included: the card is attached and made the default, then the customer
       * and its tax ids are read back to mirror them, and only then is the subscription created.
       */
      assert.deepEqual(fake.requests.slice(from).map((request) => `${request.method} ${request.path}`), [
        'GET /v1/customers/search',
        'POST /v1/customers',
        'GET /v1/prices',
        'GET /v1/billing/meters',
        'POST /v1/payment_methods/pm_card_visa/attach',
        `POST /v1/customers/${stripeCustomerId}`,
        `GET /v1/customers/${stripeCustomerId}`,
        `GET /v1/customers/${stripeCustomerId}/tax_ids`,
        'POST /v1/subscriptions',
      ])
      const writes = world.since(from)
      /**
       * The customer row was created and linked at the frozen instant, so the keys are scoped to it.
       */
      const linked = { id: customer.id, updatedAt: DateTime.fromMillis(now), balance: 0 }
      assert.deepEqual(writes[1].body, { customer: stripeCustomerId })
      assert.equal(writes[1].idempotencyKey, customerKey('payment_method.attach', linked, 'pm_card_visa'))
      const defaultParams = { invoice_settings: { default_payment_method: paymentMethod } }
      assert.deepEqual(writes[2].body, defaultParams)
      assert.equal(writes[2].idempotencyKey, customerKey('customer.default_payment_method', linked, defaultParams))
      assert.equal(writes[3].body.default_payment_method, paymentMethod)

      /**
       * Mirrored: the local customer has the card as its default, like Stripe.
       */
      assert.equal((fake.store.get(stripeCustomerId) as any).invoice_settings.default_payment_method, paymentMethod)
      assert.deepInclude(customer.toJSON(), { stripeCustomerId, defaultPaymentMethod: paymentMethod, taxExempt: 'none', taxIds: [], balance: 0 })
      assert.equal(customer.updatedAt.toMillis(), now)

      const subscription = result.subscription
      assert.equal(result.outcome, 'trialing')
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'customer.created',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'customer',
          subjectId: String(customer.id),
          before: null,
          after: { billable_type: 'user', billable_id: String(user.id), email: 'ada@example.com' },
          metadata: null,
        },
        {
          action: 'customer.stripe_linked',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'customer',
          subjectId: String(customer.id),
          before: null,
          after: { stripe_customer_id: stripeCustomerId },
          metadata: null,
        },
        {
          action: 'customer.default_payment_method_changed',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'customer',
          subjectId: String(customer.id),
          before: NEVER_MIRRORED,
          after: { ...NEVER_MIRRORED, tax_exempt: 'none', default_payment_method: paymentMethod, tax_ids: [] },
          metadata: null,
        },
        {
          action: 'subscription.created',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'subscription',
          subjectId: String(subscription.id),
          before: null,
          after: auditedFields(subscription),
          metadata: { stripe_subscription_id: subscription.stripeSubscriptionId },
        },
      ])
      assert.deepEqual(auditedFields(subscription), { plan: 'pro', status: 'trialing', quantity: 1, cancel_at_period_end: false, ends_at: null, trial_ends_at: utcSeconds(fake.now() + 14 * 86400), paused_at: null })
    })

    test('subscribe to the yearly price subscribes to the yearly usage price too', async ({ assert }) => {
      const world = await billingWorld(dialect)
      const { billing, user, fake } = world
      const from = world.mark()

      const result = await billing.for(user).subscribe('pro', { interval: 'year', paymentMethod: 'pm_card_visa', trialDays: 0 })

      const customer = await billing.for(user).customer()
      const create = world.since(from).find((request) => request.path === '/v1/subscriptions')!
      const params = {
        customer: customer.stripeCustomerId,
        items: [{ price: world.priceId('pro_year'), quantity: 1 }, { price: world.priceId('pro_api_calls_year') }],
        payment_behavior: 'allow_incomplete',
        expand: ['latest_invoice.confirmation_secret'],
        metadata: { adonis_billing_plan: 'pro', adonis_billing_subscription: 'default', adonis_billing_customer_id: String(customer.id) },
        default_payment_method: customer.defaultPaymentMethod,
      }
      assert.deepEqual(create.body, form(params))
      assert.equal(create.idempotencyKey, StripeGateway.idempotencyKey('subscription.create', `${customer.id}:0`, params))

      assert.equal(result.outcome, 'active')
      const stripeSubscription = fake.store.get(result.subscription.stripeSubscriptionId!) as any
      assert.deepEqual(
        stripeSubscription.items.data.map((item: any) => [item.price.lookup_key, item.price.recurring.interval, item.price.recurring.usage_type]),
        [['pro_year', 'year', 'licensed'], ['pro_api_calls_year', 'year', 'metered']]
      )
      assert.deepEqual(await localItems(result.subscription.id), [
        { stripeItemId: stripeSubscription.items.data[0].id, stripePriceId: world.priceId('pro_year'), priceKey: 'pro_year', meter: null, quantity: 1 },
        { stripeItemId: stripeSubscription.items.data[1].id, stripePriceId: world.priceId('pro_api_calls_year'), priceKey: 'pro_api_calls_year', meter: 'api_calls', quantity: null },
      ])
      assert.deepInclude((await Invoice.findByOrFail('subscription_id', result.subscription.id)).toJSON(), { status: 'paid', subtotal: 29000, total: 29000, amountPaid: 29000 })
    })

    test('automatic tax adds the tax to the local invoice copy', async ({ assert }) => {
      const { testCatalog } = await import('./fixtures/catalog.ts')
      const { billing, user } = await billingWorld(dialect, { billing: { ...testCatalog(), tax: { automatic: true } } })
      await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0 })
      const invoice = await Invoice.query().firstOrFail()
      assert.strictEqual(invoice.subtotal, 2900)
      assert.strictEqual(invoice.tax, 290)
      assert.strictEqual(invoice.total, 3190)
      assert.deepEqual((invoice.lines![0] as any).taxes.map((tax: any) => tax.amount), [290])
    })

    test('a trial without a card', async ({ assert }) => {
      const { billing, user } = await billingWorld(dialect)
      const result = await billing.for(user).subscribe('pro')
      assert.equal(result.outcome, 'trialing')
      assert.equal(result.subscription.status, 'trialing')
      assert.isTrue(result.subscription.onTrial())
      assert.isTrue(result.subscription.active())
      assert.equal(Math.round(result.subscription.trialEndsAt!.diff(result.subscription.createdAt, 'days').days), 14)
    })

    test('a card declined outright fails before anything is created', async ({ assert }) => {
      const { billing, user, fake } = await billingWorld(dialect)
      const error = await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_chargeDeclined', trialDays: 0 }).catch((reason) => reason)
      assert.equal(error.code, 'E_BILLING_CARD_DECLINED')
      assert.equal(error.status, 402)
      assert.match(error.stripeRequestId, /^req_/)
      assert.lengthOf(await Subscription.all(), 0)
      assert.lengthOf(fake.store.subscriptions(), 0)
    })

    test('a card declined on charge leaves an incomplete subscription that grants nothing', async ({ assert }) => {
      const { billing, user } = await billingWorld(dialect)
      const result = await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_chargeCustomerFail', trialDays: 0 })
      assert.equal(result.outcome, 'requires_payment_method')
      assert.equal(result.subscription.status, 'incomplete')
      assert.isTrue(result.subscription.hasIncompletePayment())
      assert.isFalse(result.subscription.active())
      assert.equal(await billing.for(user).check('sso'), 'no_plan')
    })

    test('3-D Secure returns the client secret the frontend confirms', async ({ assert }) => {
      const { billing, user } = await billingWorld(dialect)
      const result = await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_authenticationRequired', trialDays: 0 })
      assert.equal(result.outcome, 'requires_action')
      assert.match(result.clientSecret!, /^pi_.+_secret_/)
      assert.equal(result.subscription.status, 'incomplete')
    })

    test('swap with a proration preview, quantity, cancel with grace, resume, cancel now', async ({ assert }) => {
      const { testCatalog } = await import('./fixtures/catalog.ts')
      const catalog = testCatalog()
      catalog.plans!.business = { name: 'Business', prices: { month: { amount: 9900 } }, features: { sso: true, seats: 50 } }
      const { billing, user, fake } = await billingWorld(dialect, { billing: catalog })
      await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0 })
      const scope = billing.for(user).subscription()

      fake.advance(15 * 86400)
      const preview = await billing.for(user).upcomingInvoice({ swapTo: 'business' })
      const previewRequest = fake.lastRequest('POST', '/v1/invoices/create_preview')!
      assert.equal(previewRequest.body.subscription_details.items[0].price, (fake.store.prices() as any[]).find((p) => p.lookup_key === 'business_month').id)
      /**
       * Hand-computed: the unused share of the period is credited for Pro and charged for Business,
       * each rounded half up to a whole cent.
       */
      const period = (fake.store.subscriptions()[0] as any).items.data[0]
      const share = (period.current_period_end - fake.now()) / (period.current_period_end - period.current_period_start)
      const prorations = preview.lines.data.filter((line: any) => line.parent?.subscription_item_details?.proration)
      assert.deepEqual(prorations.map((line: any) => line.amount).sort((a: number, b: number) => a - b), [-Math.round(2900 * share), Math.round(9900 * share)])
      assert.equal(preview.total, Math.round(9900 * share) - Math.round(2900 * share) + 9900)
      assert.notProperty(previewRequest.body.subscription_details, 'proration_date')

      const swapped = await scope.swap('business')
      assert.equal(swapped.plan, 'business')
      const swap = fake.lastRequest('POST', /^\/v1\/subscriptions\/sub_/)!
      assert.equal(swap.body.proration_behavior, 'create_prorations')
      assert.deepInclude(swap.body.metadata, { adonis_billing_plan: 'business' })
      const swapAudit = await AuditLog.query().where('action', 'subscription.swapped').firstOrFail()
      assert.equal(swapAudit.before!.plan, 'pro')
      assert.equal(swapAudit.after!.plan, 'business')
      assert.deepEqual((await SubscriptionItem.query().where('subscription_id', swapped.id)).map((item) => item.priceKey), ['business_month'])

      const more = await scope.updateQuantity(5, { prorate: false })
      assert.equal(more.quantity, 5)
      assert.equal(fake.lastRequest('POST', /^\/v1\/subscriptions\/sub_/)!.body.proration_behavior, 'none')

      const canceled = await scope.cancel()
      assert.isTrue(canceled.onGracePeriod())
      assert.isTrue(canceled.active())
      assert.equal(canceled.endsAt!.toSeconds(), canceled.currentPeriodEnd!.toSeconds())
      assert.equal(await billing.for(user).check('sso'), 'granted')

      const resumed = await scope.resume()
      assert.isFalse(resumed.onGracePeriod())
      assert.isFalse(resumed.cancelAtPeriodEnd)
      await assert.rejects(() => scope.resume(), /grace period/)

      const ended = await scope.cancelNow()
      assert.equal(ended.status, 'canceled')
      assert.isTrue(ended.ended())
      assert.equal(await billing.for(user).check('sso'), 'no_plan')
      assert.includeMembers((await AuditLog.all()).map((row) => row.action), [
        'subscription.quantity_updated',
        'subscription.canceled',
        'subscription.resumed',
        'subscription.canceled_now',
      ])
    })

    test('pause and unpause collection', async ({ assert }) => {
      const { billing, user, fake } = await billingWorld(dialect)
      await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0 })
      const paused = await billing.for(user).subscription().pause({ behavior: 'keep_as_draft' })
      assert.deepEqual(fake.lastRequest('POST', /^\/v1\/subscriptions\/sub_/)!.body, { pause_collection: { behavior: 'keep_as_draft' } })
      assert.isTrue(paused.paused())
      const unpaused = await billing.for(user).subscription().unpause()
      assert.isFalse(unpaused.paused())
    })
  })

  test.group(`Stripe failures [${dialect}]`, () => {
    test('429, 500 and timeouts surface as typed errors with the request id and store no subscription', async ({ assert }) => {
      const { billing, user, fake } = await billingWorld(dialect)
      const stripeCustomerId = await billing.for(user).stripeCustomerId()
      const before = await localSnapshot()
      const audit = await auditMark()
      const linked = await billing.for(user).customer()

      fake.rateLimitNext({ method: 'POST', path: '/v1/subscriptions' })
      const limited = await billing.for(user).subscribe('pro', { trialDays: 0, paymentMethod: 'pm_card_visa' }).catch((error) => error)
      assert.equal(limited.code, 'E_BILLING_STRIPE_RATE_LIMITED')
      assert.equal(limited.status, 503)
      assert.match(limited.stripeRequestId, /^req_/)
      assert.equal(limited.stripeRequestId, fake.lastRequest('POST', '/v1/subscriptions')!.id)

      fake.serverErrorNext({ method: 'POST', path: '/v1/subscriptions' })
      assert.equal((await billing.for(user).subscribe('pro', { trialDays: 0 }).catch((error) => error)).code, 'E_BILLING_STRIPE_UNAVAILABLE')

      fake.timeoutNext({ method: 'POST', path: '/v1/subscriptions' })
      const timeout = await billing.for(user).subscribe('pro', { trialDays: 0 }).catch((error) => error)
      assert.equal(timeout.code, 'E_BILLING_STRIPE_UNAVAILABLE')

      fake.failNext({ method: 'POST', path: '/v1/subscriptions', status: 402, type: 'card_error', code: 'card_declined', declineCode: 'insufficient_funds' })
      const declined = await billing.for(user).subscribe('pro', { trialDays: 0 }).catch((error) => error)
      assert.equal(declined.code, 'E_BILLING_CARD_DECLINED')
      assert.equal(declined.declineCode, 'insufficient_funds')

      /**
       * No subscription, item or invoice stored. The card of the first call was attached and made the
       * default before the create failed: that is Stripe's state, so it is mirrored (and audited) on the
       * local customer, and nothing else changed.
       */
      const after = await localSnapshot()
      assert.deepEqual({ subscriptions: after.subscriptions, items: after.items, invoices: after.invoices }, { subscriptions: before.subscriptions, items: before.items, invoices: before.invoices })
      assert.lengthOf(fake.store.subscriptions(), 0)
      const paymentMethod = (fake.store.get(stripeCustomerId) as any).invoice_settings.default_payment_method
      assert.match(paymentMethod, /^pm_/)
      assert.equal((await billing.for(user).customer()).defaultPaymentMethod, paymentMethod)
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'customer.default_payment_method_changed',
          actorType: 'system',
          customerId: linked.id,
          subjectType: 'customer',
          subjectId: String(linked.id),
          before: NEVER_MIRRORED,
          after: { ...NEVER_MIRRORED, tax_exempt: 'none', default_payment_method: paymentMethod, tax_ids: [] },
          metadata: null,
        },
      ])
    })

    test('the SDK retries 429 and 500 with the same idempotency key, so nothing is created twice', async ({ assert }) => {
      const { billing, user, fake } = await billingWorld(dialect, { stripe: { maxNetworkRetries: 2 } })
      await billing.for(user).stripeCustomerId()
      fake.rateLimitNext({ method: 'POST', path: '/v1/subscriptions' }).serverErrorNext({ method: 'POST', path: '/v1/subscriptions' })
      const result = await billing.for(user).subscribe('pro', { trialDays: 0, paymentMethod: 'pm_card_visa' })
      assert.equal(result.outcome, 'active')
      const attempts = fake.requestsTo('POST', '/v1/subscriptions')
      assert.lengthOf(attempts, 3)
      assert.lengthOf(new Set(attempts.map((request) => request.idempotencyKey)), 1)
      assert.lengthOf(fake.store.subscriptions(), 1)
    })
  })

  test.group(`customers on Stripe [${dialect}]`, () => {
    test('details, tax ids, tax exemption, default payment method and balance', async ({ assert }) => {
      const { billing, user, fake } = await billingWorld(dialect)
      const scope = billing.for(user)
      await scope.updateStripeCustomer({ name: 'Ada King', address: { country: 'FR', postal_code: '75001', line1: '1 rue de Rivoli', city: 'Paris' }, preferredLocales: ['fr'] })
      const customer = await scope.customer()
      assert.equal(customer.name, 'Ada King')
      assert.deepInclude(fake.lastRequest('POST', /^\/v1\/customers\/cus_/)!.body, { name: 'Ada King', preferred_locales: ['fr'] })

      const withTaxId = await scope.taxIds.add('eu_vat', 'FR40303265045')
      assert.deepEqual(withTaxId.taxIds!.map((taxId) => [taxId.type, taxId.value]), [['eu_vat', 'FR40303265045']])
      const [taxId] = await scope.taxIds.list()
      const withoutTaxId = await scope.taxIds.remove(taxId.id)
      assert.deepEqual(withoutTaxId.taxIds, [])

      assert.equal((await scope.setTaxExempt('reverse')).taxExempt, 'reverse')
      const withCard = await scope.setDefaultPaymentMethod('pm_card_visa')
      assert.match(withCard.defaultPaymentMethod!, /^pm_/)
      assert.equal(withCard.defaultPaymentMethod, (fake.store.customers()[0] as any).invoice_settings.default_payment_method)
      assert.strictEqual((await scope.adjustBalance(-500, 'Goodwill credit')).balance, -500)
      await assert.rejects(() => scope.adjustBalance(1.5, 'x'), /non-zero integers/)
      assert.includeMembers((await AuditLog.all()).map((row) => row.action), [
        'customer.updated',
        'customer.tax_id_added',
        'customer.tax_id_removed',
        'customer.tax_exempt_changed',
        'customer.default_payment_method_changed',
        'customer.balance_adjusted',
      ])
    })

    test('invoices: list and find keep local copies; another customer\'s invoice is not found', async ({ assert }) => {
      const { billing, user, fake } = await billingWorld(dialect)
      await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0 })
      const invoices = await billing.for(user).invoices()
      assert.lengthOf(invoices, 1)
      assert.match(invoices[0].hostedInvoiceUrl!, /^https:\/\//)
      assert.match(invoices[0].invoicePdf!, /^https:\/\//)
      const found = await billing.for(user).invoice(invoices[0].stripeInvoiceId)
      assert.equal(found!.id, invoices[0].id)

      const other = await User.create({ email: 'eve@example.com', name: null })
      await billing.for(other).stripeCustomerId()
      assert.isNull(await billing.for(other).invoice(invoices[0].stripeInvoiceId))
      assert.isNull(await billing.for(other).invoice('in_missing'))
      assert.lengthOf(fake.store.invoices(), 1)
    })
  })

  test.group(`swap: exact requests, local rows and audit [${dialect}]`, () => {
    test('swap prorates by default and replaces the metered item of the old plan with the new plan\'s', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, licensed, metered, stripeSubscriptionId } = world
      fake.advance(10 * 86400)
      const before = await world.row()
      const from = world.mark()
      const audit = await auditMark()

      const swapped = await billing.for(user).subscription().swap('business')

      assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      const params = {
        items: [
          { id: licensed.id, price: world.priceId('business_month'), quantity: 1 },
          { id: metered.id, deleted: true },
          { price: world.priceId('business_api_calls') },
        ],
        proration_behavior: 'create_prorations',
        metadata: { adonis_billing_plan: 'business', adonis_billing_subscription: 'default' },
      }
      const [request] = world.since(from)
      assert.deepEqual(request.body, form(params))
      assert.equal(request.idempotencyKey, world.updateKey('subscription.swapped', before, params))

      /**
       * Stripe: the licensed item now has the Business price, Pro's metered item is gone and
       * Business's metered price was added; nothing is invoiced yet, the prorations wait for the
       * next invoice.
       */
      const stripe = world.stripeSubscription()
      assert.deepEqual(stripe.items.data.map((item: any) => [item.price.lookup_key, item.quantity ?? null]), [['business_month', 1], ['business_api_calls', null]])
      assert.equal(stripe.items.data[0].id, licensed.id)
      assert.lengthOf(fake.store.invoices(), 1)

      const after = await world.row()
      assert.equal(swapped.id, before.id)
      assert.deepInclude(after.toJSON(), { plan: 'business', status: 'active', quantity: 1, cancelAtPeriodEnd: false, endsAt: null, pausedAt: null })
      assert.deepEqual(await localItems(after.id), [
        { stripeItemId: licensed.id, stripePriceId: world.priceId('business_month'), priceKey: 'business_month', meter: null, quantity: 1 },
        { stripeItemId: stripe.items.data[1].id, stripePriceId: world.priceId('business_api_calls'), priceKey: 'business_api_calls', meter: 'api_calls', quantity: null },
      ])
      assert.equal((await Customer.findOrFail(world.customer.id)).entitlementVersion, world.customer.entitlementVersion + 1)
      assert.deepEqual(await billing.for(user).features(), { live: true, features: { sso: true, seats: 50, api_calls: 100000 } })

      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.swapped',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: auditedFields(before),
          after: { ...auditedFields(before), plan: 'business' },
          metadata: {
            stripe_subscription_id: stripeSubscriptionId,
            prices: {
              before: sortedPrices(world.priceId('pro_month'), world.priceId('pro_api_calls')),
              after: sortedPrices(world.priceId('business_month'), world.priceId('business_api_calls')),
            },
          },
        },
      ])
      assert.equal(auditedFields(before).plan, 'pro')

      /**
       * The next invoice carries the hand-computed prorations: unused Pro credited, remaining
       * Business charged, each rounded half up.
       */
      const period = stripe.items.data[0]
      const share = (period.current_period_end - fake.now()) / (period.current_period_end - period.current_period_start)
      const preview = await billing.for(user).upcomingInvoice()
      assert.deepEqual(
        preview.lines.data.filter((line: any) => line.parent?.subscription_item_details?.proration).map((line: any) => line.amount),
        [-Math.round(2900 * share), Math.round(9900 * share)]
      )
    })

    test('swap with prorate: false bills the new price from the next period, and drops metered items the plan lacks', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, licensed, metered, stripeSubscriptionId } = world
      fake.advance(10 * 86400)
      const before = await world.row()
      const from = world.mark()
      const audit = await auditMark()

      const swapped = await billing.for(user).subscription().swap('starter', { prorate: false })

      assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      const params = {
        items: [{ id: licensed.id, price: world.priceId('starter_month'), quantity: 1 }, { id: metered.id, deleted: true }],
        proration_behavior: 'none',
        metadata: { adonis_billing_plan: 'starter', adonis_billing_subscription: 'default' },
      }
      const [request] = world.since(from)
      assert.deepEqual(request.body, form(params))
      assert.equal(request.idempotencyKey, world.updateKey('subscription.swapped', before, params))

      assert.deepEqual(world.stripeSubscription().items.data.map((item: any) => item.price.lookup_key), ['starter_month'])
      assert.lengthOf(fake.store.invoices(), 1)
      assert.deepInclude(swapped.toJSON(), { plan: 'starter', status: 'active', quantity: 1, cancelAtPeriodEnd: false, endsAt: null, pausedAt: null })
      assert.deepEqual(await localItems(swapped.id), [
        { stripeItemId: licensed.id, stripePriceId: world.priceId('starter_month'), priceKey: 'starter_month', meter: null, quantity: 1 },
      ])
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.swapped',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: auditedFields(before),
          after: { ...auditedFields(before), plan: 'starter' },
          metadata: {
            stripe_subscription_id: stripeSubscriptionId,
            prices: { before: sortedPrices(world.priceId('pro_month'), world.priceId('pro_api_calls')), after: [world.priceId('starter_month')] },
          },
        },
      ])
      assert.deepEqual(await billing.for(user).features(), { live: true, features: { seats: 3 } })

      const preview = await billing.for(user).upcomingInvoice()
      assert.deepEqual(preview.lines.data.map((line: any) => [line.amount, line.parent?.subscription_item_details?.proration ?? false]), [[900, false]])
      assert.equal(preview.total, 900)
    })

    test('swap with alwaysInvoice: true invoices the proration now; the local copy has the exact amounts', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, licensed, metered, stripeSubscriptionId } = world
      fake.advance(10 * 86400)
      const before = await world.row()
      const from = world.mark()
      const audit = await auditMark()

      const swapped = await billing.for(user).subscription().swap('business', { alwaysInvoice: true, quantity: 2 })

      assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      const params = {
        items: [
          { id: licensed.id, price: world.priceId('business_month'), quantity: 2 },
          { id: metered.id, deleted: true },
          { price: world.priceId('business_api_calls') },
        ],
        proration_behavior: 'always_invoice',
        metadata: { adonis_billing_plan: 'business', adonis_billing_subscription: 'default' },
      }
      const [request] = world.since(from)
      assert.deepEqual(request.body, form(params))
      assert.equal(request.idempotencyKey, world.updateKey('subscription.swapped', before, params))

      assert.deepInclude(swapped.toJSON(), { plan: 'business', status: 'active', quantity: 2, cancelAtPeriodEnd: false, endsAt: null, pausedAt: null })
      assert.deepEqual((await localItems(swapped.id)).map((item) => [item.priceKey, item.quantity]), [['business_month', 2], ['business_api_calls', null]])
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.swapped',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: auditedFields(before),
          after: { ...auditedFields(before), plan: 'business', quantity: 2 },
          metadata: {
            stripe_subscription_id: stripeSubscriptionId,
            prices: {
              before: sortedPrices(world.priceId('pro_month'), world.priceId('pro_api_calls')),
              after: sortedPrices(world.priceId('business_month'), world.priceId('business_api_calls')),
            },
          },
        },
      ])

      const period = world.stripeSubscription().items.data[0]
      const share = (period.current_period_end - fake.now()) / (period.current_period_end - period.current_period_start)
      const credit = -Math.round(2900 * share)
      const charge = Math.round(2 * 9900 * share)
      const stripeInvoices = fake.store.invoices() as any[]
      assert.lengthOf(stripeInvoices, 2)
      const prorationInvoice = stripeInvoices.find((invoice) => invoice.billing_reason === 'subscription_update')
      assert.equal(prorationInvoice.total, credit + charge)

      const invoices = await billing.for(user).invoices()
      assert.lengthOf(invoices, 2)
      const local = invoices.find((invoice) => invoice.stripeInvoiceId === prorationInvoice.id)!
      assert.deepInclude(local.toJSON(), {
        customerId: world.customer.id,
        subscriptionId: swapped.id,
        status: 'paid',
        currency: 'usd',
        subtotal: credit + charge,
        tax: 0,
        total: credit + charge,
        amountDue: credit + charge,
        amountPaid: credit + charge,
        amountRemaining: 0,
      })
      assert.deepEqual((local.lines as any[]).map((line) => [line.amount, line.quantity, line.proration]), [
        [credit, 1, true],
        [charge, 2, true],
      ])
    })

    test('swap to the yearly price of the same plan moves the metered item to the yearly usage price too', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, licensed, metered, stripeSubscriptionId } = world
      fake.advance(10 * 86400)
      const before = await world.row()
      const from = world.mark()
      const audit = await auditMark()

      const swapped = await billing.for(user).subscription().swap('pro', { interval: 'year' })

      assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      const params = {
        items: [
          { id: licensed.id, price: world.priceId('pro_year'), quantity: 1 },
          { id: metered.id, deleted: true },
          { price: world.priceId('pro_api_calls_year') },
        ],
        proration_behavior: 'create_prorations',
        metadata: { adonis_billing_plan: 'pro', adonis_billing_subscription: 'default' },
      }
      const [request] = world.since(from)
      assert.deepEqual(request.body, form(params))
      assert.equal(request.idempotencyKey, world.updateKey('subscription.swapped', before, params))

      /**
       * Stripe: every item now bills yearly (mixed intervals are refused), the licensed item kept its id.
       */
      const stripe = world.stripeSubscription()
      assert.deepEqual(
        stripe.items.data.map((item: any) => [item.price.lookup_key, item.price.recurring.interval, item.quantity ?? null]),
        [['pro_year', 'year', 1], ['pro_api_calls_year', 'year', null]]
      )
      assert.equal(stripe.items.data[0].id, licensed.id)

      assert.deepInclude(swapped.toJSON(), { plan: 'pro', status: 'active', quantity: 1, cancelAtPeriodEnd: false, endsAt: null, pausedAt: null })
      assert.deepEqual(await localItems(swapped.id), [
        { stripeItemId: licensed.id, stripePriceId: world.priceId('pro_year'), priceKey: 'pro_year', meter: null, quantity: 1 },
        { stripeItemId: stripe.items.data[1].id, stripePriceId: world.priceId('pro_api_calls_year'), priceKey: 'pro_api_calls_year', meter: 'api_calls', quantity: null },
      ])
      /**
       * Plan, status and quantity are unchanged: the audit row records the price change.
       */
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.swapped',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: auditedFields(before),
          after: auditedFields(before),
          metadata: {
            stripe_subscription_id: stripeSubscriptionId,
            prices: {
              before: sortedPrices(world.priceId('pro_month'), world.priceId('pro_api_calls')),
              after: sortedPrices(world.priceId('pro_year'), world.priceId('pro_api_calls_year')),
            },
          },
        },
      ])
      assert.deepEqual(auditedFields(swapped), auditedFields(before))

      /**
       * The interval change restarts the period now: Stripe invoices the year at once, less the unused
       * share of the month (hand-computed, rounded half up); the local copy has Stripe's amounts.
       */
      const yearEnd = DateTime.fromSeconds(fake.now(), { zone: 'utc' }).plus({ years: 1 }).toSeconds()
      assert.deepEqual(stripe.items.data.map((item: any) => [item.current_period_start, item.current_period_end]), [[fake.now(), yearEnd], [fake.now(), yearEnd]])
      assert.equal(swapped.currentPeriodEnd!.toSeconds(), yearEnd)
      const credit = -Math.round(2900 * ((licensed.current_period_end - fake.now()) / (licensed.current_period_end - licensed.current_period_start)))
      const stripeInvoices = fake.store.invoices() as any[]
      assert.lengthOf(stripeInvoices, 2)
      const yearInvoice = stripeInvoices.find((invoice) => invoice.billing_reason === 'subscription_update')
      assert.deepInclude(yearInvoice, { subtotal: 29000 + credit, total: 29000 + credit, amount_paid: 29000 + credit, status: 'paid' })
      const local = (await billing.for(user).invoices()).find((invoice) => invoice.stripeInvoiceId === yearInvoice.id)!
      assert.deepInclude(local.toJSON(), { subscriptionId: before.id, status: 'paid', subtotal: 29000 + credit, tax: 0, total: 29000 + credit, amountPaid: 29000 + credit, amountRemaining: 0 })
      assert.deepEqual((local.lines as any[]).map((line) => [line.amount, line.proration]), [
        [credit, true],
        [29000, false],
        [0, false],
      ])
    })
  })

  test.group(`lifecycle operations: exact requests, local rows and audit [${dialect}]`, () => {
    test('updateQuantity changes only the licensed item, prorates by default, and audits the quantity', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, licensed, stripeSubscriptionId } = world
      fake.advance(10 * 86400)
      const before = await world.row()
      const from = world.mark()
      const audit = await auditMark()

      const updated = await billing.for(user).subscription().updateQuantity(4)

      assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      const params = { items: [{ id: licensed.id, quantity: 4 }], proration_behavior: 'create_prorations' }
      const [request] = world.since(from)
      assert.deepEqual(request.body, form(params))
      assert.equal(request.idempotencyKey, world.updateKey('subscription.quantity_updated', before, params))

      assert.deepEqual(world.stripeSubscription().items.data.map((item: any) => [item.price.lookup_key, item.quantity ?? null]), [['pro_month', 4], ['pro_api_calls', null]])
      assert.deepInclude(updated.toJSON(), { plan: 'pro', status: 'active', quantity: 4, cancelAtPeriodEnd: false, endsAt: null, pausedAt: null })
      assert.deepEqual((await localItems(updated.id)).map((item) => [item.stripeItemId, item.priceKey, item.quantity]), [
        [licensed.id, 'pro_month', 4],
        [world.metered.id, 'pro_api_calls', null],
      ])
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.quantity_updated',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: auditedFields(before),
          after: { ...auditedFields(before), quantity: 4 },
          metadata: { stripe_subscription_id: stripeSubscriptionId },
        },
      ])
      assert.equal(auditedFields(before).quantity, 1)

      const period = world.stripeSubscription().items.data[0]
      const share = (period.current_period_end - fake.now()) / (period.current_period_end - period.current_period_start)
      const preview = await billing.for(user).upcomingInvoice()
      assert.deepEqual(
        preview.lines.data.filter((line: any) => line.parent?.subscription_item_details?.proration).map((line: any) => line.amount),
        [-Math.round(2900 * share), Math.round(4 * 2900 * share)]
      )

      /**
       * `alwaysInvoice` invoices the seat change now.
       */
      const again = await world.row()
      const next = world.mark()
      await billing.for(user).subscription().updateQuantity(5, { alwaysInvoice: true })
      const alwaysParams = { items: [{ id: licensed.id, quantity: 5 }], proration_behavior: 'always_invoice' }
      assert.deepEqual(world.calls(next), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      assert.deepEqual(world.since(next)[0].body, form(alwaysParams))
      assert.equal(world.since(next)[0].idempotencyKey, world.updateKey('subscription.quantity_updated', again, alwaysParams))
      assert.lengthOf(fake.store.invoices(), 2)
      assert.equal((await world.row()).quantity, 5)

      /**
       * The same quantity again changes no mirrored field, and is audited all the same: every explicit
       * action writes its row.
       */
      const same = await world.row()
      const sameFrom = world.mark()
      const sameAudit = await auditMark()
      await billing.for(user).subscription().updateQuantity(5)
      const sameParams = { items: [{ id: licensed.id, quantity: 5 }], proration_behavior: 'create_prorations' }
      assert.deepEqual(world.calls(sameFrom), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      assert.deepEqual(world.since(sameFrom)[0].body, form(sameParams))
      assert.equal(world.since(sameFrom)[0].idempotencyKey, world.updateKey('subscription.quantity_updated', same, sameParams))
      assert.lengthOf(fake.store.invoices(), 2)
      assert.deepEqual(await auditSince(sameAudit), [
        {
          action: 'subscription.quantity_updated',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(same.id),
          before: auditedFields(same),
          after: auditedFields(same),
          metadata: { stripe_subscription_id: stripeSubscriptionId },
        },
      ])
      assert.equal(auditedFields(same).quantity, 5)
    })

    test('cancel sets cancel_at_period_end; resume clears it; both audited with before/after', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, stripeSubscriptionId } = world
      const scope = billing.for(user).subscription()
      const before = await world.row()
      const periodEnd = world.licensed.current_period_end
      let from = world.mark()
      let audit = await auditMark()

      const canceled = await scope.cancel()
      assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      assert.deepEqual(world.since(from)[0].body, { cancel_at_period_end: 'true' })
      assert.equal(world.since(from)[0].idempotencyKey, world.updateKey('subscription.canceled', before, { cancel_at_period_end: true }))
      assert.deepInclude(world.stripeSubscription(), { cancel_at_period_end: true, cancel_at: periodEnd, status: 'active' })

      assert.deepInclude(canceled.toJSON(), { status: 'active', cancelAtPeriodEnd: true, endsAt: utcSeconds(periodEnd), cancelAt: utcSeconds(periodEnd), canceledAt: utcSeconds(fake.now()) })
      assert.isTrue(canceled.onGracePeriod())
      assert.isTrue(canceled.active())
      assert.equal(await billing.for(user).check('sso'), 'granted')
      const graceFields = { ...auditedFields(before), cancel_at_period_end: true, ends_at: utcSeconds(periodEnd) }
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.canceled',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: auditedFields(before),
          after: graceFields,
          metadata: { stripe_subscription_id: stripeSubscriptionId },
        },
      ])

      const onGrace = await world.row()
      from = world.mark()
      audit = await auditMark()
      const resumed = await scope.resume()
      assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      assert.deepEqual(world.since(from)[0].body, { cancel_at_period_end: 'false' })
      assert.equal(world.since(from)[0].idempotencyKey, world.updateKey('subscription.resumed', onGrace, { cancel_at_period_end: false }))
      assert.deepInclude(world.stripeSubscription(), { cancel_at_period_end: false, cancel_at: null, canceled_at: null, status: 'active' })

      assert.deepInclude(resumed.toJSON(), { status: 'active', cancelAtPeriodEnd: false, endsAt: null, cancelAt: null, canceledAt: null })
      assert.isFalse(resumed.onGracePeriod())
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.resumed',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: graceFields,
          after: auditedFields(before),
          metadata: { stripe_subscription_id: stripeSubscriptionId },
        },
      ])

      /**
       * Canceling again after a resume is a new state version: a new idempotency key, so Stripe really
       * cancels again instead of replaying the first answer.
       */
      from = world.mark()
      await scope.cancel()
      assert.notEqual(world.since(from)[0].idempotencyKey, fake.requestsTo('POST', `/v1/subscriptions/${stripeSubscriptionId}`)[0].idempotencyKey)
      assert.isFalse(world.since(from)[0].replayed)
      assert.isTrue(world.stripeSubscription().cancel_at_period_end)
      assert.isTrue((await world.row()).cancelAtPeriodEnd)
    })

    test('cancelNow sends DELETE with invoice_now=false and prorate=false by default and ends the subscription locally', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, stripeSubscriptionId } = world
      fake.advance(3 * 86400)
      const before = await world.row()
      const from = world.mark()
      const audit = await auditMark()

      const ended = await billing.for(user).subscription().cancelNow()

      assert.deepEqual(world.calls(from), [`DELETE /v1/subscriptions/${stripeSubscriptionId}`])
      const [request] = world.since(from)
      /**
       * The SDK sends DELETE parameters in the query string.
       */
      assert.deepEqual(request.query, { invoice_now: 'false', prorate: 'false' })
      assert.deepEqual(request.body, {})
      assert.equal(request.idempotencyKey, StripeGateway.idempotencyKey('subscription.cancel', before.id, { invoice_now: false, prorate: false }))
      assert.deepInclude(world.stripeSubscription(), { status: 'canceled', ended_at: fake.now() })
      assert.lengthOf(fake.store.invoices(), 1)

      assert.deepInclude(ended.toJSON(), { plan: 'pro', status: 'canceled', cancelAtPeriodEnd: false, endsAt: utcSeconds(fake.now()), canceledAt: utcSeconds(fake.now()) })
      assert.isTrue(ended.ended())
      assert.isFalse(ended.active())
      assert.equal(await billing.for(user).check('sso'), 'no_plan')
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.canceled_now',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: auditedFields(before),
          after: { ...auditedFields(before), status: 'canceled', ends_at: utcSeconds(fake.now()) },
          metadata: { stripe_subscription_id: stripeSubscriptionId },
        },
      ])

      /**
       * Nothing left to cancel: both refuse locally, without calling Stripe.
       */
      const quiet = world.mark()
      assert.equal((await billing.for(user).subscription().cancel().catch((error) => error)).code, 'E_BILLING_INVALID_SUBSCRIPTION_STATE')
      assert.lengthOf(fake.requests.slice(quiet), 0)
    })

    test('cancelNow({ invoiceNow: true, prorate: true }) bills the final invoice with the unused-time credit', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, stripeSubscriptionId } = world
      fake.advance(10 * 86400)
      const before = await world.row()
      const from = world.mark()
      const audit = await auditMark()

      const ended = await billing.for(user).subscription().cancelNow({ invoiceNow: true, prorate: true })

      assert.deepEqual(world.calls(from), [`DELETE /v1/subscriptions/${stripeSubscriptionId}`])
      const [request] = world.since(from)
      assert.deepEqual(request.query, { invoice_now: 'true', prorate: 'true' })
      assert.deepEqual(request.body, {})
      assert.equal(request.idempotencyKey, StripeGateway.idempotencyKey('subscription.cancel', before.id, { invoice_now: true, prorate: true }))
      assert.deepInclude(ended.toJSON(), { status: 'canceled', endsAt: utcSeconds(fake.now()) })
      assert.deepEqual((await auditSince(audit)).map((row) => [row.action, row.before?.status, row.after?.status]), [['subscription.canceled_now', 'active', 'canceled']])

      /**
       * Stripe's final invoice credits the unused 20 days of Pro (hand-computed, rounded half up)
       * and bills the metered usage of the partial period (none); the local copy has Stripe's amounts.
       */
      const period = world.licensed
      const credit = -Math.round(2900 * ((period.current_period_end - fake.now()) / (period.current_period_end - period.current_period_start)))
      const final = (fake.store.invoices() as any[]).find((invoice) => invoice.billing_reason === 'subscription_update')
      assert.lengthOf(fake.store.invoices(), 2)
      assert.deepInclude(final, { subtotal: credit, total: credit, amount_due: 0 })
      const local = (await billing.for(user).invoices()).find((invoice) => invoice.stripeInvoiceId === final.id)!
      assert.deepInclude(local.toJSON(), {
        subscriptionId: before.id,
        status: final.status,
        subtotal: credit,
        tax: 0,
        total: credit,
        amountDue: 0,
        amountPaid: final.amount_paid,
        amountRemaining: final.amount_remaining,
      })
      assert.deepEqual((local.lines as any[]).map((line) => [line.amount, line.proration]), final.lines.data.map((line: any) => [line.amount, line.parent?.subscription_item_details?.proration ?? false]))
      assert.deepEqual((local.lines as any[]).filter((line) => line.proration).map((line) => line.amount), [credit])
    })

    test('pause with each behavior and unpause: pause_collection sent as given, pausedAt/resumesAt mirrored, each audited', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, stripeSubscriptionId } = world
      const scope = billing.for(user).subscription()
      const resumesAt = fake.now() + 7 * 86400
      const cases = [
        { options: {}, sent: { behavior: 'void' } },
        { options: { behavior: 'keep_as_draft' as const }, sent: { behavior: 'keep_as_draft' } },
        { options: { behavior: 'mark_uncollectible' as const }, sent: { behavior: 'mark_uncollectible' } },
        { options: { behavior: 'void' as const, resumesAt: DateTime.fromSeconds(resumesAt) }, sent: { behavior: 'void', resumes_at: resumesAt } },
      ]
      for (const { options, sent } of cases) {
        const before = await world.row()
        let from = world.mark()
        let audit = await auditMark()
        const paused = await scope.pause(options)
        assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
        const params = { pause_collection: sent }
        assert.deepEqual(world.since(from)[0].body, form(params))
        assert.equal(world.since(from)[0].idempotencyKey, world.updateKey('subscription.paused', before, params))
        assert.deepEqual(world.stripeSubscription().pause_collection, { behavior: sent.behavior, resumes_at: sent.resumes_at ?? null })

        assert.equal(paused.status, 'active')
        assert.isTrue(paused.paused())
        assert.isNotNull(paused.pausedAt)
        assert.equal(paused.resumesAt?.toSeconds() ?? null, sent.resumes_at ?? null)
        assert.deepEqual(await auditSince(audit), [
          {
            action: 'subscription.paused',
            actorType: 'system',
            customerId: world.customer.id,
            subjectType: 'subscription',
            subjectId: String(before.id),
            before: auditedFields(before),
            after: { ...auditedFields(before), paused_at: paused.pausedAt!.toISO() },
            metadata: { stripe_subscription_id: stripeSubscriptionId },
          },
        ])

        const pausedRow = await world.row()
        from = world.mark()
        audit = await auditMark()
        const unpaused = await scope.unpause()
        assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
        assert.deepEqual(world.since(from)[0].body, { pause_collection: '' })
        assert.equal(world.since(from)[0].idempotencyKey, world.updateKey('subscription.unpaused', pausedRow, { pause_collection: '' }))
        assert.isNull(world.stripeSubscription().pause_collection)
        assert.isFalse(unpaused.paused())
        assert.isNull(unpaused.pausedAt)
        assert.isNull(unpaused.resumesAt)
        assert.deepEqual(await auditSince(audit), [
          {
            action: 'subscription.unpaused',
            actorType: 'system',
            customerId: world.customer.id,
            subjectType: 'subscription',
            subjectId: String(before.id),
            before: auditedFields(pausedRow),
            after: auditedFields(before),
            metadata: { stripe_subscription_id: stripeSubscriptionId },
          },
        ])
      }
    })
  })

  test.group(`discounts and subscribe variants: exact requests, local rows and audit [${dialect}]`, () => {
    test('applyDiscount with a promotion code: discounts[0][promotion_code] sent, the next invoice is discounted', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, stripeSubscriptionId } = world
      const stripe = await world.stripe()
      const coupon = await stripe.coupons.create({ percent_off: 20, duration: 'forever', name: 'Twenty' })
      const promo = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: 'TWENTY' })
      const before = await world.row()
      const from = world.mark()
      const audit = await auditMark()

      const discounted = await billing.for(user).subscription().applyDiscount({ promotionCode: promo.id })

      assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      const params = { discounts: [{ promotion_code: promo.id }] }
      assert.deepEqual(world.since(from)[0].body, form(params))
      assert.equal(world.since(from)[0].idempotencyKey, world.updateKey('subscription.discount_applied', before, params))
      const [discountId] = world.stripeSubscription().discounts
      assert.deepInclude(fake.store.get(discountId) as any, { promotion_code: promo.id, source: { coupon: coupon.id, type: 'coupon' }, subscription: stripeSubscriptionId })
      /**
       * No mirrored field changes, yet the explicit action is audited, with the promotion code.
       */
      assert.deepEqual(auditedFields(discounted), auditedFields(before))
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.discount_applied',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: auditedFields(before),
          after: auditedFields(before),
          metadata: { stripe_subscription_id: stripeSubscriptionId, discount: promo.id },
        },
      ])

      /**
       * The renewal invoice is 20 % off; the local copy carries Stripe's amounts.
       */
      const { invoice: renewal } = fake.advanceToPeriodEnd(stripeSubscriptionId)
      assert.deepInclude(renewal as any, { subtotal: 2900, total: 2320, amount_paid: 2320, status: 'paid' })
      const local = await billing.for(user).invoice(renewal!.id!)
      assert.deepInclude(local!.toJSON(), { subscriptionId: before.id, status: 'paid', subtotal: 2900, tax: 0, total: 2320, amountDue: 2320, amountPaid: 2320, amountRemaining: 0 })
    })

    test('applyDiscount with a coupon: discounts[0][coupon] sent, a once-coupon takes 5.00 off the next invoice only', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake, stripeSubscriptionId } = world
      const stripe = await world.stripe()
      await stripe.coupons.create({ id: 'FIVEOFF', amount_off: 500, currency: 'usd', duration: 'once' })
      const before = await world.row()
      const from = world.mark()
      const audit = await auditMark()

      const discounted = await billing.for(user).subscription().applyDiscount({ coupon: 'FIVEOFF' })

      assert.deepEqual(world.calls(from), [`POST /v1/subscriptions/${stripeSubscriptionId}`])
      const params = { discounts: [{ coupon: 'FIVEOFF' }] }
      assert.deepEqual(world.since(from)[0].body, form(params))
      assert.equal(world.since(from)[0].idempotencyKey, world.updateKey('subscription.discount_applied', before, params))
      assert.lengthOf(world.stripeSubscription().discounts, 1)
      assert.deepInclude(fake.store.get(world.stripeSubscription().discounts[0]) as any, { promotion_code: null, source: { coupon: 'FIVEOFF', type: 'coupon' } })
      assert.deepEqual(auditedFields(discounted), auditedFields(before))
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'subscription.discount_applied',
          actorType: 'system',
          customerId: world.customer.id,
          subjectType: 'subscription',
          subjectId: String(before.id),
          before: auditedFields(before),
          after: auditedFields(before),
          metadata: { stripe_subscription_id: stripeSubscriptionId, discount: 'FIVEOFF' },
        },
      ])

      const { invoice: first } = fake.advanceToPeriodEnd(stripeSubscriptionId)
      const { invoice: second } = fake.advanceToPeriodEnd(stripeSubscriptionId)
      const invoices = await billing.for(user).invoices()
      const amounts = (id: string) => {
        const row = invoices.find((invoice) => invoice.stripeInvoiceId === id)!
        return [row.subtotal, row.total, row.amountPaid, row.amountRemaining]
      }
      assert.deepEqual(amounts(first!.id!), [2900, 2400, 2400, 0])
      assert.deepEqual(amounts(second!.id!), [2900, 2900, 2900, 0])
    })

    test('applyDiscount takes exactly one of promotionCode and coupon: {} or both refuse without any Stripe request', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake } = world
      const stripe = await world.stripe()
      await stripe.coupons.create({ id: 'FIVEOFF', amount_off: 500, currency: 'usd', duration: 'once' })
      const local = await localSnapshot()
      const from = world.mark()

      for (const discount of [{}, { promotionCode: 'promo_missing', coupon: 'FIVEOFF' }, { promotionCode: '', coupon: '' }]) {
        const error = await billing.for(user).subscription().applyDiscount(discount).catch((reason) => reason)
        assert.equal(error.code, 'E_BILLING_INVALID_ARGUMENT', JSON.stringify(discount))
        assert.equal(error.status, 422)
      }
      assert.lengthOf(fake.requests.slice(from), 0)
      assert.deepEqual(await localSnapshot(), local)
      assert.deepEqual(world.stripeSubscription().discounts, [])
    })

    test('subscribe with a promotion code: exact requests, discounted first invoice, audit rows', async ({ assert }) => {
      const world = await billingWorld(dialect)
      const { billing, user, fake } = world
      fake.setNow(fake.now())
      const stripe = await world.stripe()
      const coupon = await stripe.coupons.create({ percent_off: 25, duration: 'forever' })
      const promo = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: 'QUARTER' })
      const from = world.mark()
      const audit = await auditMark()

      const { result, now } = await atFrozenTime(async (now) => ({
        result: await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0, promotionCode: promo.id }),
        now,
      }))

      const customer = await billing.for(user).customer()
      const stripeCustomerId = customer.stripeCustomerId!
      const paymentMethod = (fake.store.paymentMethods() as any[]).find((method) => method.customer === stripeCustomerId).id
      assert.deepEqual(world.calls(from), ['POST /v1/customers', 'POST /v1/payment_methods/pm_card_visa/attach', `POST /v1/customers/${stripeCustomerId}`, 'POST /v1/subscriptions'])
      const writes = world.since(from)
      const metadata = { adonis_billing_plan: 'pro', adonis_billing_subscription: 'default', adonis_billing_customer_id: String(customer.id) }
      const customerParams = { email: 'ada@example.com', name: 'Ada Lovelace', metadata: { adonis_billing_customer_id: String(customer.id), billable_type: 'user', billable_id: String(user.id) } }
      assert.deepEqual(writes[0].body, customerParams)
      assert.equal(writes[0].idempotencyKey, StripeGateway.idempotencyKey('customer.create', customer.id, customerParams))
      /**
       * The attach and the default-card update carry keys scoped to the customer row as it was
       * linked (at the frozen instant, balance 0).
       */
      const linked = { id: customer.id, updatedAt: DateTime.fromMillis(now), balance: 0 }
      const defaultParams = { invoice_settings: { default_payment_method: paymentMethod } }
      assert.deepEqual(writes[1].body, { customer: stripeCustomerId })
      assert.equal(writes[1].idempotencyKey, customerKey('payment_method.attach', linked, 'pm_card_visa'))
      assert.deepEqual(writes[2].body, defaultParams)
      assert.equal(writes[2].idempotencyKey, customerKey('customer.default_payment_method', linked, defaultParams))
      assert.equal(customer.defaultPaymentMethod, paymentMethod)
      const params = {
        customer: stripeCustomerId,
        items: [{ price: world.priceId('pro_month'), quantity: 1 }, { price: world.priceId('pro_api_calls') }],
        payment_behavior: 'allow_incomplete',
        expand: ['latest_invoice.confirmation_secret'],
        metadata,
        default_payment_method: paymentMethod,
        discounts: [{ promotion_code: promo.id }],
      }
      assert.deepEqual(writes[3].body, form(params))
      assert.equal(writes[3].idempotencyKey, StripeGateway.idempotencyKey('subscription.create', `${customer.id}:0`, params))

      assert.equal(result.outcome, 'active')
      const subscription = result.subscription
      assert.deepInclude(subscription.toJSON(), { name: 'default', plan: 'pro', status: 'active', quantity: 1, cancelAtPeriodEnd: false, endsAt: null, trialEndsAt: null, pausedAt: null })
      const stripeSubscription = fake.store.get(subscription.stripeSubscriptionId!) as any
      assert.deepInclude(fake.store.get(stripeSubscription.discounts[0]) as any, { promotion_code: promo.id })

      const stripeInvoice = fake.store.get(stripeSubscription.latest_invoice) as any
      assert.deepInclude(stripeInvoice, { subtotal: 2900, total: 2175, amount_paid: 2175 })
      const invoice = await Invoice.findByOrFail('stripe_invoice_id', stripeInvoice.id)
      assert.deepInclude(invoice.toJSON(), { customerId: customer.id, subscriptionId: subscription.id, status: 'paid', subtotal: 2900, tax: 0, total: 2175, amountDue: 2175, amountPaid: 2175, amountRemaining: 0 })

      assert.deepEqual(await auditSince(audit), [
        {
          action: 'customer.created',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'customer',
          subjectId: String(customer.id),
          before: null,
          after: { billable_type: 'user', billable_id: String(user.id), email: 'ada@example.com' },
          metadata: null,
        },
        {
          action: 'customer.stripe_linked',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'customer',
          subjectId: String(customer.id),
          before: null,
          after: { stripe_customer_id: stripeCustomerId },
          metadata: null,
        },
        {
          action: 'customer.default_payment_method_changed',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'customer',
          subjectId: String(customer.id),
          before: NEVER_MIRRORED,
          after: { ...NEVER_MIRRORED, tax_exempt: 'none', default_payment_method: paymentMethod, tax_ids: [] },
          metadata: null,
        },
        {
          action: 'subscription.created',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'subscription',
          subjectId: String(subscription.id),
          before: null,
          after: auditedFields(subscription),
          metadata: { stripe_subscription_id: subscription.stripeSubscriptionId },
        },
      ])
      assert.deepEqual(auditedFields(subscription), { plan: 'pro', status: 'active', quantity: 1, cancel_at_period_end: false, ends_at: null, trial_ends_at: null, paused_at: null })
    })

    test('a trial with a card: trialing, card is the default, nothing charged, trial ends in 14 days; then an add-on subscription next to it', async ({ assert }) => {
      const world = await billingWorld(dialect)
      const { billing, user, fake } = world
      fake.setNow(fake.now())
      const customer = await billing.for(user).customer()
      const stripeCustomerId = await billing.for(user).stripeCustomerId()
      /** The local row as linked, before the call: it scopes the attach and default-card keys */
      const linked = await Customer.findOrFail(customer.id)
      const from = world.mark()
      const audit = await auditMark()

      const result = await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa' })

      const paymentMethod = (fake.store.paymentMethods() as any[]).find((method) => method.customer === stripeCustomerId).id
      assert.deepEqual(world.calls(from), ['POST /v1/payment_methods/pm_card_visa/attach', `POST /v1/customers/${stripeCustomerId}`, 'POST /v1/subscriptions'])
      const writes = world.since(from)
      const defaultParams = { invoice_settings: { default_payment_method: paymentMethod } }
      assert.deepEqual(writes[0].body, { customer: stripeCustomerId })
      assert.equal(writes[0].idempotencyKey, customerKey('payment_method.attach', linked, 'pm_card_visa'))
      assert.deepEqual(writes[1].body, defaultParams)
      assert.equal(writes[1].idempotencyKey, customerKey('customer.default_payment_method', linked, defaultParams))
      const params = {
        customer: stripeCustomerId,
        items: [{ price: world.priceId('pro_month'), quantity: 1 }, { price: world.priceId('pro_api_calls') }],
        payment_behavior: 'allow_incomplete',
        expand: ['latest_invoice.confirmation_secret'],
        metadata: { adonis_billing_plan: 'pro', adonis_billing_subscription: 'default', adonis_billing_customer_id: String(customer.id) },
        trial_period_days: 14,
        trial_settings: { end_behavior: { missing_payment_method: 'pause' } },
        default_payment_method: paymentMethod,
      }
      assert.deepEqual(writes[2].body, form(params))
      assert.equal(writes[2].idempotencyKey, StripeGateway.idempotencyKey('subscription.create', `${customer.id}:0`, params))

      const trialEnd = fake.now() + 14 * 86400
      assert.equal(result.outcome, 'trialing')
      assert.isNull(result.clientSecret)
      const subscription = result.subscription
      assert.deepInclude(subscription.toJSON(), { plan: 'pro', status: 'trialing', quantity: 1, trialEndsAt: utcSeconds(trialEnd), currentPeriodEnd: utcSeconds(trialEnd), endsAt: null })
      assert.isTrue(subscription.onTrial())
      const stripeSubscription = fake.store.get(subscription.stripeSubscriptionId!) as any
      assert.deepInclude(stripeSubscription, { status: 'trialing', trial_end: trialEnd, default_payment_method: paymentMethod })
      assert.equal((fake.store.get(stripeCustomerId) as any).invoice_settings.default_payment_method, paymentMethod)

      /**
       * Nothing charged: a paid $0 invoice and no payment intent.
       */
      const stripeInvoice = fake.store.get(stripeSubscription.latest_invoice) as any
      assert.deepInclude(stripeInvoice, { total: 0, amount_paid: 0, status: 'paid' })
      assert.lengthOf(fake.store.list('payment_intent'), 0)
      const invoice = await Invoice.findByOrFail('stripe_invoice_id', stripeInvoice.id)
      assert.deepInclude(invoice.toJSON(), { status: 'paid', subtotal: 0, tax: 0, total: 0, amountDue: 0, amountPaid: 0, amountRemaining: 0 })
      assert.equal((await Customer.findOrFail(customer.id)).defaultPaymentMethod, paymentMethod)
      assert.deepEqual(await auditSince(audit), [
        {
          action: 'customer.default_payment_method_changed',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'customer',
          subjectId: String(customer.id),
          before: NEVER_MIRRORED,
          after: { ...NEVER_MIRRORED, tax_exempt: 'none', default_payment_method: paymentMethod, tax_ids: [] },
          metadata: null,
        },
        {
          action: 'subscription.created',
          actorType: 'system',
          customerId: customer.id,
          subjectType: 'subscription',
          subjectId: String(subscription.id),
          before: null,
          after: { plan: 'pro', status: 'trialing', quantity: 1, cancel_at_period_end: false, ends_at: null, trial_ends_at: utcSeconds(trialEnd), paused_at: null },
          metadata: { stripe_subscription_id: subscription.stripeSubscriptionId },
        },
      ])

      /**
       * A second named subscription: only the subscription is created (the customer and its default
       * card exist), charged to the default card, and its features add up with the trial's.
       */
      const refreshed = await Customer.findOrFail(customer.id)
      const next = world.mark()
      const addons = await billing.for(user).subscribe('extra_seats', { name: 'addons' })
      assert.deepEqual(world.calls(next), ['POST /v1/subscriptions'])
      const addonParams = {
        customer: stripeCustomerId,
        items: [{ price: world.priceId('extra_seats_month'), quantity: 1 }],
        payment_behavior: 'allow_incomplete',
        expand: ['latest_invoice.confirmation_secret'],
        metadata: { adonis_billing_plan: 'extra_seats', adonis_billing_subscription: 'addons', adonis_billing_customer_id: String(customer.id) },
      }
      assert.deepEqual(world.since(next)[0].body, form(addonParams))
      assert.equal(world.since(next)[0].idempotencyKey, StripeGateway.idempotencyKey('subscription.create', `${customer.id}:${refreshed.entitlementVersion}`, addonParams))
      assert.equal(addons.outcome, 'active')
      assert.deepInclude(addons.subscription.toJSON(), { name: 'addons', plan: 'extra_seats', status: 'active', quantity: 1 })
      const addonInvoice = await Invoice.findByOrFail('subscription_id', addons.subscription.id)
      assert.deepInclude(addonInvoice.toJSON(), { status: 'paid', subtotal: 500, total: 500, amountPaid: 500 })

      assert.deepEqual((await billing.for(user).subscriptions()).map((row) => [row.name, row.plan, row.status]), [
        ['addons', 'extra_seats', 'active'],
        ['default', 'pro', 'trialing'],
      ])
      assert.equal((await billing.for(user).subscription('addons').find())!.id, addons.subscription.id)
      assert.equal((await billing.for(user).subscription().find())!.id, subscription.id)
      assert.deepEqual(await billing.for(user).features(), { live: true, features: { sso: true, seats: 15, api_calls: 10000 } })
    })
  })

  test.group(`customer operations and invoices: exact requests, local rows and audit [${dialect}]`, () => {
    test('updateStripeCustomer, setTaxExempt, taxIds.add/remove, setDefaultPaymentMethod, adjustBalance: one exact request each, mirrored and audited', async ({ assert }) => {
      const world = await billingWorld(dialect)
      const { billing, user, fake } = world
      const scope = billing.for(user)
      const stripeCustomerId = await scope.stripeCustomerId()
      const customerId = (await scope.customer()).id
      const mirrored = async () => {
        const row = await Customer.findOrFail(customerId)
        return { email: row.email, name: row.name, tax_exempt: row.taxExempt, balance: row.balance, currency: row.currency, default_payment_method: row.defaultPaymentMethod, tax_ids: row.taxIds }
      }
      /**
       * Runs one operation and checks its non-GET requests (bodies and idempotency keys), the mirrored
       * fields and its one audit row. POSTs carry keys scoped to the local row as it was before the
       * call (`row`); the DELETE carries none.
       */
      const step = async (
        action: string,
        run: () => Promise<Customer>,
        expected: { calls: string[]; bodies: () => unknown[]; keys: (row: Customer) => Array<string | null>; after: () => Record<string, unknown> }
      ) => {
        const row = await Customer.findOrFail(customerId)
        const before = await mirrored()
        const from = world.mark()
        const audit = await auditMark()
        const returned = await run()
        assert.deepEqual(world.calls(from), expected.calls, action)
        assert.deepEqual(world.since(from).map((request) => request.body), expected.bodies(), action)
        assert.deepEqual(world.since(from).map((request) => request.idempotencyKey), expected.keys(row), action)
        const after = await mirrored()
        assert.deepEqual(after, { ...before, ...expected.after() }, action)
        assert.equal(returned.id, customerId)
        assert.deepEqual(await auditSince(audit), [
          { action, actorType: 'system', customerId, subjectType: 'customer', subjectId: String(customerId), before, after, metadata: null },
        ])
        return after
      }

      const address = { line1: '1 rue de Rivoli', city: 'Paris', postal_code: '75001', country: 'FR' }
      const details = { email: 'ada@king.test', name: 'Ada King', phone: '+33100000000', address, preferred_locales: ['fr'], metadata: { crm_id: '42' } }
      await step(
        'customer.updated',
        () => scope.updateStripeCustomer({ email: 'ada@king.test', name: 'Ada King', phone: '+33100000000', address, preferredLocales: ['fr'], metadata: { crm_id: '42' } }),
        {
          calls: [`POST /v1/customers/${stripeCustomerId}`],
          bodies: () => [details],
          keys: (row) => [customerKey('customer.update', row, details)],
          after: () => ({ email: 'ada@king.test', name: 'Ada King', tax_exempt: 'none', tax_ids: [] }),
        }
      )
      assert.deepInclude(fake.store.get(stripeCustomerId) as any, { email: 'ada@king.test', name: 'Ada King', phone: '+33100000000', preferred_locales: ['fr'] })
      assert.deepInclude((fake.store.get(stripeCustomerId) as any).address, address)
      assert.deepInclude((fake.store.get(stripeCustomerId) as any).metadata, { crm_id: '42', adonis_billing_customer_id: String(customerId) })

      await step('customer.tax_exempt_changed', () => scope.setTaxExempt('reverse'), {
        calls: [`POST /v1/customers/${stripeCustomerId}`],
        bodies: () => [{ tax_exempt: 'reverse' }],
        keys: (row) => [customerKey('customer.tax_exempt', row, 'reverse')],
        after: () => ({ tax_exempt: 'reverse' }),
      })

      await step('customer.tax_id_added', () => scope.taxIds.add('eu_vat', 'FR40303265045'), {
        calls: [`POST /v1/customers/${stripeCustomerId}/tax_ids`],
        bodies: () => [{ type: 'eu_vat', value: 'FR40303265045' }],
        keys: (row) => [customerKey('customer.tax_id_added', row, { type: 'eu_vat', value: 'FR40303265045' })],
        after: () => ({ tax_ids: [{ id: (fake.store.list('tax_id') as any[])[0].id, type: 'eu_vat', value: 'FR40303265045' }] }),
      })
      const [taxId] = await scope.taxIds.list()
      assert.match(taxId.id, /^txi_/)
      await step('customer.tax_id_removed', () => scope.taxIds.remove(taxId.id), {
        calls: [`DELETE /v1/customers/${stripeCustomerId}/tax_ids/${taxId.id}`],
        bodies: () => [{}],
        keys: () => [null],
        after: () => ({ tax_ids: [] }),
      })

      /**
       * `pm_card_visa` is attached as a new `pm_...`: that id becomes the default, on Stripe and locally.
       */
      const attached = () => (fake.store.paymentMethods() as any[]).find((method) => method.customer === stripeCustomerId).id as string
      await step('customer.default_payment_method_changed', () => scope.setDefaultPaymentMethod('pm_card_visa'), {
        calls: ['POST /v1/payment_methods/pm_card_visa/attach', `POST /v1/customers/${stripeCustomerId}`],
        bodies: () => [{ customer: stripeCustomerId }, { invoice_settings: { default_payment_method: attached() } }],
        keys: (row) => [
          customerKey('payment_method.attach', row, 'pm_card_visa'),
          customerKey('customer.default_payment_method', row, { invoice_settings: { default_payment_method: attached() } }),
        ],
        after: () => ({ default_payment_method: attached() }),
      })
      assert.match(attached(), /^pm_/)
      assert.notEqual(attached(), 'pm_card_visa')
      assert.equal((fake.store.get(stripeCustomerId) as any).invoice_settings.default_payment_method, attached())

      await step('customer.balance_adjusted', () => scope.adjustBalance(-500, 'Goodwill credit'), {
        calls: [`POST /v1/customers/${stripeCustomerId}/balance_transactions`],
        bodies: () => [{ amount: '-500', currency: 'usd', description: 'Goodwill credit' }],
        keys: (row) => [customerKey('customer.balance_adjusted', row, { amount: -500, currency: 'usd', description: 'Goodwill credit' })],
        after: () => ({ balance: -500 }),
      })
      assert.strictEqual((fake.store.get(stripeCustomerId) as any).balance, -500)

      const quiet = world.mark()
      const audit = await auditMark()
      for (const amount of [0, 1.5, Number.NaN]) {
        const error = await scope.adjustBalance(amount, 'x').catch((reason) => reason)
        assert.equal(error.code, 'E_BILLING_INVALID_ARGUMENT')
        assert.equal(error.status, 422)
      }
      assert.lengthOf(fake.requests.slice(quiet), 0)
      assert.deepEqual(await auditSince(audit), [])
    })

    test('adjustBalance keys are scoped to the local row: a retry after a failure replays, the same adjustment made again is new', async ({ assert }) => {
      const world = await billingWorld(dialect)
      const { billing, user, fake } = world
      const scope = billing.for(user)
      const stripeCustomerId = await scope.stripeCustomerId()
      const customerId = (await scope.customer()).id
      const path = `/v1/customers/${stripeCustomerId}/balance_transactions`
      const params = { amount: -500, currency: 'usd', description: 'Goodwill credit' }
      const stripeBalance = () => (fake.store.get(stripeCustomerId) as any).balance

      /**
       * The balance transaction is created, then reading the customer back fails: the local row has not
       * moved, so the retry sends the same key and Stripe replays the first answer instead of crediting
       * the customer twice.
       */
      const first = await Customer.findOrFail(customerId)
      const firstKey = customerKey('customer.balance_adjusted', first, params)
      fake.serverErrorNext({ method: 'GET', path: `/v1/customers/${stripeCustomerId}` })
      let audit = await auditMark()
      const failed = await scope.adjustBalance(-500, 'Goodwill credit').catch((reason) => reason)
      assert.equal(failed.code, 'E_BILLING_STRIPE_UNAVAILABLE')
      assert.strictEqual(stripeBalance(), -500)
      assert.deepEqual((await Customer.findOrFail(customerId)).toJSON(), first.toJSON())
      assert.deepEqual(await auditSince(audit), [])

      const retried = await scope.adjustBalance(-500, 'Goodwill credit')
      assert.deepEqual(
        fake.requestsTo('POST', path).map((request) => [request.body, request.idempotencyKey, request.replayed]),
        [
          [form(params), firstKey, false],
          [form(params), firstKey, true],
        ]
      )
      assert.strictEqual(stripeBalance(), -500)
      assert.strictEqual(retried.balance, -500)
      assert.deepEqual((await auditSince(audit)).map((row) => [row.action, row.before?.balance, row.after?.balance]), [['customer.balance_adjusted', 0, -500]])

      /**
       * The same adjustment made again once the row moved on (updated_at, balance) is a new request.
       */
      const second = await Customer.findOrFail(customerId)
      audit = await auditMark()
      await scope.adjustBalance(-500, 'Goodwill credit')
      const secondKey = customerKey('customer.balance_adjusted', second, params)
      assert.notEqual(secondKey, firstKey)
      assert.deepEqual(
        fake.requestsTo('POST', path).slice(2).map((request) => [request.body, request.idempotencyKey, request.replayed]),
        [[form(params), secondKey, false]]
      )
      assert.strictEqual(stripeBalance(), -1000)
      assert.strictEqual((await Customer.findOrFail(customerId)).balance, -1000)
      assert.deepEqual((await auditSince(audit)).map((row) => [row.action, row.before?.balance, row.after?.balance]), [['customer.balance_adjusted', -500, -1000]])
    })

    test('invoices() and invoice(): local copies equal Stripe\'s amounts, with automatic tax on every line', async ({ assert }) => {
      const world = await billingWorld(dialect, { billing: testCatalog({ tax: { automatic: true } }) })
      const { billing, user, fake } = world
      fake.setNow(fake.now())
      const { subscription } = await billing.for(user).subscribe('pro', { paymentMethod: 'pm_card_visa', trialDays: 0, quantity: 3 })
      fake.advance(86400)
      fake.advanceToPeriodEnd(subscription.stripeSubscriptionId!)
      await Invoice.query().delete()

      const from = world.mark()
      const invoices = await billing.for(user).invoices()
      assert.deepEqual(world.calls(from), [])
      const customer = await billing.for(user).customer()
      assert.deepEqual(fake.lastRequest('GET', '/v1/invoices')!.query, { customer: customer.stripeCustomerId, limit: '24' })

      /**
       * 3 seats × 29.00 = 87.00, plus the fake's 10 % exclusive tax per line, on both invoices.
       */
      const stripeInvoices = (fake.store.invoices() as any[]).sort((a, b) => b.created - a.created)
      assert.lengthOf(stripeInvoices, 2)
      assert.deepEqual(invoices.map((invoice) => invoice.stripeInvoiceId), stripeInvoices.map((invoice) => invoice.id))
      for (const [index, stripeInvoice] of stripeInvoices.entries()) {
        const local = invoices[index]
        const tax = stripeInvoice.total_taxes.reduce((sum: number, entry: any) => sum + entry.amount, 0)
        assert.deepInclude(local.toJSON(), {
          customerId: customer.id,
          subscriptionId: subscription.id,
          stripeInvoiceId: stripeInvoice.id,
          number: stripeInvoice.number,
          status: 'paid',
          currency: 'usd',
          subtotal: stripeInvoice.subtotal,
          tax,
          total: stripeInvoice.total,
          amountDue: stripeInvoice.amount_due,
          amountPaid: stripeInvoice.amount_paid,
          amountRemaining: stripeInvoice.amount_remaining,
          hostedInvoiceUrl: stripeInvoice.hosted_invoice_url,
          invoicePdf: stripeInvoice.invoice_pdf,
          periodStart: utcSeconds(stripeInvoice.period_start),
          periodEnd: utcSeconds(stripeInvoice.period_end),
          stripeCreatedAt: utcSeconds(stripeInvoice.created),
        })
        assert.deepEqual([local.subtotal, local.tax, local.total, local.amountDue, local.amountPaid, local.amountRemaining], [8700, 870, 9570, 9570, 9570, 0])
        assert.deepEqual(
          local.lines,
          stripeInvoice.lines.data.map((line: any) => ({
            id: line.id,
            description: line.description,
            amount: line.amount,
            currency: 'usd',
            quantity: line.quantity,
            taxes: line.taxes.map((entry: any) => ({ amount: entry.amount, taxable_amount: entry.taxable_amount })),
            period: { start: line.period.start, end: line.period.end },
            proration: false,
          }))
        )
        assert.deepEqual((local.lines as any[])[0].taxes, [{ amount: 870, taxable_amount: 8700 }])
        assert.equal((local.lines as any[])[0].amount, 8700)
        assert.equal((local.lines as any[])[0].quantity, 3)
      }

      /**
       * Fetching again, or one by id, updates the same rows.
       */
      const again = await billing.for(user).invoices()
      assert.deepEqual(again.map((invoice) => invoice.id), invoices.map((invoice) => invoice.id))
      const one = await billing.for(user).invoice(stripeInvoices[1].id)
      assert.equal(one!.id, invoices[1].id)
      assert.strictEqual(one!.total, 9570)
      assert.lengthOf(await Invoice.all(), 2)
      assert.deepEqual(world.calls(from), [])
    })
  })

  test.group(`Stripe failures on lifecycle operations [${dialect}]`, () => {
    test('429, 500, timeout and a declined card during swap, cancel and updateQuantity change nothing locally or on Stripe', async ({ assert }) => {
      const world = await proWorld(dialect, { stripe: { timeout: 800 } })
      const { billing, user, fake, stripeSubscriptionId } = world
      const scope = billing.for(user).subscription()
      const path = `/v1/subscriptions/${stripeSubscriptionId}`
      const operations = {
        swap: () => scope.swap('business', { alwaysInvoice: true }),
        cancel: () => scope.cancel(),
        updateQuantity: () => scope.updateQuantity(3),
      }
      const faults = [
        { fault: 'rate_limit', inject: () => fake.rateLimitNext({ method: 'POST', path }), code: 'E_BILLING_STRIPE_RATE_LIMITED', status: 503, stripeCode: 'rate_limit' },
        { fault: 'server_error', inject: () => fake.serverErrorNext({ method: 'POST', path }), code: 'E_BILLING_STRIPE_UNAVAILABLE', status: 503, stripeCode: null },
        { fault: 'timeout', inject: () => fake.timeoutNext({ method: 'POST', path, holdMs: 5000 }), code: 'E_BILLING_STRIPE_UNAVAILABLE', status: 503, stripeCode: null },
        { fault: 'error', inject: () => fake.failNext({ method: 'POST', path, declineCode: 'insufficient_funds' }), code: 'E_BILLING_CARD_DECLINED', status: 402, stripeCode: 'card_declined' },
      ]

      for (const [name, operation] of Object.entries(operations)) {
        for (const { fault, inject, code, status, stripeCode } of faults) {
          const label = `${name} / ${fault}`
          const local = await localSnapshot()
          const stripeBefore = world.stripeSubscription()
          const from = world.mark()
          inject()

          const error = await operation().catch((reason) => reason)
          assert.equal(error.code, code, label)
          assert.equal(error.status, status, label)
          assert.equal(error.stripeCode, stripeCode, label)
          const writes = world.since(from)
          assert.deepEqual(writes.map((request) => `${request.method} ${request.path} ${request.fault}`), [`POST ${path} ${fault}`], label)
          if (fault === 'timeout') {
            /**
             * No answer, so no Stripe request id to carry.
             */
            assert.equal(writes[0].status, 0, label)
            assert.isNull(error.stripeRequestId, label)
          } else {
            assert.match(error.stripeRequestId, /^req_/, label)
            assert.equal(error.stripeRequestId, writes[0].id, label)
            assert.equal(error.details.stripe_request_id, writes[0].id, label)
          }
          if (fault === 'error') assert.equal(error.declineCode, 'insufficient_funds', label)

          assert.deepEqual(await localSnapshot(), local, label)
          assert.deepEqual(world.stripeSubscription(), stripeBefore, label)
        }
      }
      assert.lengthOf(fake.store.invoices(), 1)

      /**
       * Once Stripe answers again, the same calls go through.
       */
      await operations.updateQuantity()
      await operations.swap()
      await operations.cancel()
      assert.deepInclude((await world.row()).toJSON(), { plan: 'business', quantity: 3, cancelAtPeriodEnd: true, status: 'active' })
      assert.deepEqual(
        (await AuditLog.query().where('action', 'like', 'subscription.%').orderBy('id')).map((row) => row.action),
        ['subscription.created', 'subscription.quantity_updated', 'subscription.swapped', 'subscription.canceled']
      )
    })

    test('resume() off the grace period, updateQuantity(0) and an unknown subscription refuse without any Stripe request', async ({ assert }) => {
      const world = await proWorld(dialect)
      const { billing, user, fake } = world
      const local = await localSnapshot()
      const from = world.mark()

      const notOnGrace = await billing.for(user).subscription().resume().catch((error) => error)
      assert.equal(notOnGrace.code, 'E_BILLING_INVALID_SUBSCRIPTION_STATE')
      assert.equal(notOnGrace.status, 409)
      for (const quantity of [0, -1, 1.5]) {
        const error = await billing.for(user).subscription().updateQuantity(quantity).catch((reason) => reason)
        assert.equal(error.code, 'E_BILLING_INVALID_ARGUMENT', String(quantity))
        assert.equal(error.status, 422)
      }
      const missing = await billing.for(user).subscription('addons').cancel().catch((error) => error)
      assert.equal(missing.code, 'E_BILLING_SUBSCRIPTION_NOT_FOUND')
      assert.equal(missing.status, 404)

      assert.lengthOf(fake.requests.slice(from), 0)
      assert.deepEqual(await localSnapshot(), local)

      /**
       * After an immediate cancellation, resume() is refused locally too.
       */
      await billing.for(user).subscription().cancelNow()
      const ended = world.mark()
      assert.equal((await billing.for(user).subscription().resume().catch((error) => error)).code, 'E_BILLING_INVALID_SUBSCRIPTION_STATE')
      assert.lengthOf(fake.requests.slice(ended), 0)
    })
  })
}
