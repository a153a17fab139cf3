import { test } from '@japa/runner'
import { DIALECTS, setupStripeApp } from './helpers.ts'
import { User } from './fixtures/user.ts'
import AuditLog from '../src/models/audit_log.ts'
import Subscription from '../src/models/subscription.ts'
import SubscriptionItem from '../src/models/subscription_item.ts'
import Invoice from '../src/models/invoice.ts'
import Customer from '../src/models/customer.ts'
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
  return { ...world, user, priceId, mark, since }
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
        metadata,
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
        default_payment_method: customer.defaultPaymentMethod ?? (fake.store.paymentMethods() as any[])[0].id,
      })
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
    test('429, 500 and timeouts surface as typed errors with the request id and change nothing locally', async ({ assert }) => {
      const { billing, user, fake } = await billingWorld(dialect)
      await billing.for(user).stripeCustomerId()
      const before = { subscriptions: (await Subscription.all()).length, audit: (await AuditLog.all()).length }

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

      assert.equal((await Subscription.all()).length, before.subscriptions)
      assert.equal((await AuditLog.all()).length, before.audit)
      assert.lengthOf(fake.store.subscriptions(), 0)
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
}
