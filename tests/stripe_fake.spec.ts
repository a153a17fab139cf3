/**
 * The loopback Stripe fake (`adonis-billing/testing`), driven end to end with the official `stripe`
 * SDK on loopback: protocol and validation, CRUD and lists, idempotency, fault injection, inspection
 * and clock, subscriptions / invoices / prorations, checkout and portal, meters and entitlements,
 * events and signed webhooks. Every amount is in minor units and computed by hand in the comments.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from '@japa/runner'
import Stripe from 'stripe'
import { StripeFake } from '../src/testing/main.ts'
import { parseForm } from '../src/testing/stripe_fake/form.ts'

const DAY = 86_400
const JAN_1_2025 = 1_735_689_600
/** January 2025 has 31 days: the first monthly period is Jan 1 → Feb 1. */
const FEB_1_2025 = JAN_1_2025 + 31 * DAY
const MAR_1_2025 = FEB_1_2025 + 28 * DAY
const SECRET = 'whsec_test_secret'

function client(fake: StripeFake, options: Partial<Stripe.StripeConfig> = {}) {
  return new Stripe('sk_test_fake', { ...fake.clientOptions, maxNetworkRetries: 0, timeout: 5_000, ...options })
}

async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the call to fail')
}

async function monthlyPrice(stripe: Stripe, name: string, unitAmount: number, extra: Partial<Stripe.PriceCreateParams> = {}) {
  const product = await stripe.products.create({ name })
  return stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: unitAmount, recurring: { interval: 'month' }, ...extra })
}

async function customerWithCard(stripe: Stripe, card = 'pm_card_visa') {
  const customer = await stripe.customers.create({ email: 'ada@example.com', name: 'Ada' })
  const pm = await stripe.paymentMethods.attach(card, { customer: customer.id })
  await stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: pm.id } })
  return { customer, pm }
}

interface Received {
  body: string
  headers: Record<string, string | string[] | undefined>
  verified: Stripe.Event | null
  error: string | null
}

/**
 * A webhook receiver on loopback that verifies signatures with the SDK, like a host app would.
 */
async function receiver(options: { secret?: string; fail?: (event: any) => boolean } = {}) {
  const received: Received[] = []
  const verifier = new Stripe('sk_test_verifier')
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const entry: Received = { body, headers: req.headers, verified: null, error: null }
      received.push(entry)
      try {
        entry.verified = verifier.webhooks.constructEvent(body, String(req.headers['stripe-signature']), options.secret ?? SECRET)
      } catch (error) {
        entry.error = (error as Error).message
        res.writeHead(400, { 'content-type': 'text/plain' })
        res.end('bad signature')
        return
      }
      if (options.fail?.(entry.verified)) {
        res.writeHead(500, { 'content-type': 'text/plain' })
        res.end('handler failed')
        return
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-handled': entry.verified.id })
      res.end(JSON.stringify({ received: true }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/stripe/webhook`
  return { url, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

test.group('StripeFake | protocol', (group) => {
  let fake: StripeFake
  let stripe: Stripe
  group.each.setup(async () => {
    fake = await StripeFake.start()
    stripe = client(fake)
    return () => fake.close()
  })

  test('listens on loopback and exposes client options', async ({ assert }) => {
    assert.equal(fake.clientOptions.host, '127.0.0.1')
    assert.equal(fake.clientOptions.protocol, 'http')
    assert.isAbove(fake.port, 0)
    assert.equal(fake.url, `http://127.0.0.1:${fake.port}`)
    const customer = await stripe.customers.create({ email: 'ada@example.com' })
    assert.match(customer.id, /^cus_/)
    assert.match(customer.lastResponse.requestId, /^req_/)
    assert.equal(fake.lastRequest()!.stripeVersion, Stripe.API_VERSION)
    assert.equal(fake.lastRequest()!.id, customer.lastResponse.requestId)
  })

  test('requires a test secret or restricted key', async ({ assert }) => {
    const response = await fetch(`${fake.url}/v1/customers`)
    assert.equal(response.status, 401)
    assert.match(response.headers.get('request-id')!, /^req_/)
    const body = (await response.json()) as any
    assert.equal(body.error.type, 'invalid_request_error')
    assert.match(body.error.message, /You did not provide an API key/)

    const live = new Stripe('sk_live_abcdefghijklmnop', { ...fake.clientOptions, maxNetworkRetries: 0 })
    const error = await rejection(live.customers.list())
    assert.instanceOf(error, Stripe.errors.StripeAuthenticationError)
    assert.equal(error.statusCode, 401)

    const restricted = new Stripe('rk_test_abc', { ...fake.clientOptions, maxNetworkRetries: 0 })
    const list = await restricted.customers.list()
    assert.equal(list.object, 'list')
  })

  test('parses bracket notation into nested objects and arrays', ({ assert }) => {
    const parsed = parseForm(
      'metadata[k]=v&items[0][price]=p1&items[0][quantity]=2&items[1][price]=p2&expand[]=latest_invoice&expand[]=customer&lookup_keys[0]=a&name=Ada+L%C3%B6ve'
    )
    assert.deepEqual(parsed, {
      metadata: { k: 'v' },
      items: [{ price: 'p1', quantity: '2' }, { price: 'p2' }],
      expand: ['latest_invoice', 'customer'],
      lookup_keys: ['a'],
      name: 'Ada Löve',
    })
  })

  test('rejects unknown parameters at the top level and nested, like Stripe', async ({ assert }) => {
    const top = await rejection(stripe.customers.create({ emial: 'x@example.com' } as any))
    assert.instanceOf(top, Stripe.errors.StripeInvalidRequestError)
    assert.equal(top.statusCode, 400)
    assert.equal(top.type, 'StripeInvalidRequestError')
    assert.equal(top.code, 'parameter_unknown')
    assert.equal(top.param, 'emial')
    assert.equal(top.message, 'Received unknown parameter: emial')
    assert.match(top.requestId, /^req_/)

    const customer = await stripe.customers.create()
    const product = await stripe.products.create({ name: 'Pro' })
    const price = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 1000, recurring: { interval: 'month' } })
    const nested = await rejection(
      stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id, qty: 2 } as any] })
    )
    assert.equal(nested.code, 'parameter_unknown')
    assert.equal(nested.param, 'items[0][qty]')
    assert.equal(nested.message, 'Received unknown parameter: items[0][qty]')

    const deep = await rejection(stripe.customers.create({ address: { line1: 'x', street: 'y' } as any }))
    assert.equal(deep.param, 'address[street]')

    // The removed upcoming-invoice parameters are unknown on create_preview.
    const preview = await rejection(stripe.invoices.createPreview({ customer: customer.id, subscription_items: [{ price: 'price_x' }] } as any))
    assert.equal(preview.param, 'subscription_items')
    assert.equal(fake.lastRequest()!.path, '/v1/invoices/create_preview')
    assert.lengthOf(fake.store.subscriptions(), 0)
  })

  test('reports missing parameters, bad enums and malformed values', async ({ assert }) => {
    const missing = await rejection(stripe.products.create({} as any))
    assert.equal(missing.code, 'parameter_missing')
    assert.equal(missing.param, 'name')
    assert.equal(missing.message, 'Missing required param: name.')

    const customer = await stripe.customers.create()
    const noItems = await rejection(stripe.subscriptions.create({ customer: customer.id }))
    assert.equal(noItems.code, 'parameter_missing')
    assert.equal(noItems.param, 'items')

    const badEnum = await rejection(stripe.customers.create({ tax_exempt: 'sometimes' as any }))
    assert.instanceOf(badEnum, Stripe.errors.StripeInvalidRequestError)
    assert.equal(badEnum.param, 'tax_exempt')
    assert.match(badEnum.message, /must be one of exempt, none or reverse/)

    const badInt = await rejection(stripe.customers.create({ balance: 'lots' as any }))
    assert.equal(badInt.code, 'parameter_invalid_integer')
    assert.equal(badInt.param, 'balance')
  })

  test('unknown ids are resource_missing (404 in the URL, 400 in parameters)', async ({ assert }) => {
    const notFound = await rejection(stripe.customers.retrieve('cus_missing'))
    assert.instanceOf(notFound, Stripe.errors.StripeInvalidRequestError)
    assert.equal(notFound.statusCode, 404)
    assert.equal(notFound.code, 'resource_missing')
    assert.equal(notFound.param, 'id')
    assert.equal(notFound.message, "No such customer: 'cus_missing'")
    assert.match(notFound.raw.request_log_url, /^https:\/\/dashboard\.stripe\.com\/test\/logs\/req_/)

    const ref = await rejection(stripe.subscriptions.create({ customer: 'cus_nope', items: [{ price: 'price_x' }] }))
    assert.equal(ref.statusCode, 400)
    assert.equal(ref.code, 'resource_missing')
    assert.equal(ref.param, 'customer')

    const url = await rejection(stripe.rawRequest('GET', '/v1/nothing_here'))
    assert.equal(url.statusCode, 404)
    assert.match(url.message, /^Unrecognized request URL \(GET: \/v1\/nothing_here\)/)

    const upcoming = await rejection(stripe.rawRequest('GET', '/v1/invoices/upcoming?customer=cus_x'))
    assert.equal(upcoming.statusCode, 404)
    assert.match(upcoming.message, /create_preview/)
  })
})

test.group('StripeFake | customers and catalog', (group) => {
  let fake: StripeFake
  let stripe: Stripe
  group.each.setup(async () => {
    fake = await StripeFake.start()
    stripe = client(fake)
    return () => fake.close()
  })

  test('customers: create, retrieve, update, delete and list with pagination', async ({ assert }) => {
    fake.setNow(JAN_1_2025)
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      const c = await stripe.customers.create({ email: i === 2 ? 'grace@example.com' : `c${i}@example.com`, name: `C${i}` })
      ids.push(c.id)
    }
    const retrieved = (await stripe.customers.retrieve(ids[0])) as Stripe.Customer
    assert.equal(retrieved.email, 'c0@example.com')
    assert.equal(retrieved.created, JAN_1_2025)
    assert.equal(retrieved.object, 'customer')
    assert.equal(retrieved.invoice_settings.default_payment_method, null)

    const page1 = await stripe.customers.list({ limit: 2 })
    assert.equal(page1.object, 'list')
    assert.equal(page1.url, '/v1/customers')
    assert.deepEqual(page1.data.map((c) => c.id), [ids[4], ids[3]])
    assert.isTrue(page1.has_more)
    const page2 = await stripe.customers.list({ limit: 2, starting_after: ids[3] })
    assert.deepEqual(page2.data.map((c) => c.id), [ids[2], ids[1]])
    assert.isTrue(page2.has_more)
    const page3 = await stripe.customers.list({ limit: 2, starting_after: ids[1] })
    assert.deepEqual(page3.data.map((c) => c.id), [ids[0]])
    assert.isFalse(page3.has_more)
    const before = await stripe.customers.list({ limit: 2, ending_before: ids[1] })
    assert.deepEqual(before.data.map((c) => c.id), [ids[3], ids[2]])
    assert.isTrue(before.has_more)
    const all = await stripe.customers.list({ limit: 2 }).autoPagingToArray({ limit: 100 })
    assert.deepEqual(all.map((c) => c.id), [...ids].reverse())

    const byEmail = await stripe.customers.list({ email: 'grace@example.com' })
    assert.deepEqual(byEmail.data.map((c) => c.id), [ids[2]])

    const updated = await stripe.customers.update(ids[0], { name: 'Ada', metadata: { team: 't1' }, balance: -500 })
    assert.equal(updated.name, 'Ada')
    assert.equal(updated.balance, -500)
    assert.deepEqual(updated.metadata, { team: 't1' })
    const unset = await stripe.customers.update(ids[0], { metadata: { team: '' }, description: '' })
    assert.deepEqual(unset.metadata, {})
    assert.isNull(unset.description)

    const deleted = await stripe.customers.del(ids[1])
    assert.deepEqual({ ...deleted }, { id: ids[1], object: 'customer', deleted: true })
    const again = await stripe.customers.retrieve(ids[1])
    assert.isTrue((again as Stripe.DeletedCustomer).deleted)
    assert.notInclude((await stripe.customers.list({ limit: 100 })).data.map((c) => c.id), ids[1])
    assert.equal((await rejection(stripe.customers.update(ids[1], { name: 'x' }))).statusCode, 404)
    assert.deepEqual(
      fake.store.events('customer.*').map((e) => e.type),
      ['customer.created', 'customer.created', 'customer.created', 'customer.created', 'customer.created', 'customer.updated', 'customer.updated', 'customer.deleted']
    )
  })

  test('customers: search by metadata and email', async ({ assert }) => {
    const a = await stripe.customers.create({ email: 'ada@example.com', metadata: { billable_id: '42', kind: 'user' } })
    const b = await stripe.customers.create({ email: 'bob@example.com', metadata: { billable_id: '43', kind: 'user' } })
    await stripe.customers.create({ email: 'carl@example.com', metadata: { kind: 'team' } })

    const byMeta = await stripe.customers.search({ query: "metadata['billable_id']:'42'" })
    assert.equal(byMeta.object, 'search_result')
    assert.deepEqual(byMeta.data.map((c) => c.id), [a.id])
    const byEmail = await stripe.customers.search({ query: "email:'bob@example.com'" })
    assert.deepEqual(byEmail.data.map((c) => c.id), [b.id])
    const both = await stripe.customers.search({ query: "metadata['kind']:'user' AND -email:'ada@example.com'" })
    assert.deepEqual(both.data.map((c) => c.id), [b.id])
    const paged = await stripe.customers.search({ query: "metadata['kind']:'user'", limit: 1 })
    assert.isTrue(paged.has_more)
    const next = await stripe.customers.search({ query: "metadata['kind']:'user'", limit: 1, page: paged.next_page! })
    assert.deepEqual([...paged.data, ...next.data].map((c) => c.id).sort(), [a.id, b.id].sort())
    const bad = await rejection(stripe.customers.search({ query: "plan:'x'" }))
    assert.equal(bad.param, 'query')
  })

  test('customers: tax ids and payment methods', async ({ assert }) => {
    const customer = await stripe.customers.create({ name: 'ACME GmbH' })
    const taxId = await stripe.customers.createTaxId(customer.id, { type: 'eu_vat', value: 'DE123456789' })
    assert.match(taxId.id, /^txi_/)
    assert.equal(taxId.country, 'DE')
    assert.equal(taxId.customer, customer.id)
    assert.equal(taxId.verification!.status, 'verified')
    const list = await stripe.customers.listTaxIds(customer.id)
    assert.deepEqual(list.data.map((t) => t.id), [taxId.id])
    const removed = await stripe.customers.deleteTaxId(customer.id, taxId.id)
    assert.isTrue(removed.deleted)
    assert.lengthOf((await stripe.customers.listTaxIds(customer.id)).data, 0)

    const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })
    assert.match(pm.id, /^pm_/)
    assert.notEqual(pm.id, 'pm_card_visa')
    assert.equal(pm.card!.last4, '4242')
    assert.equal(pm.customer, customer.id)
    const updated = await stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: pm.id } })
    assert.equal(updated.invoice_settings.default_payment_method, pm.id)
    const pms = await stripe.paymentMethods.list({ customer: customer.id, type: 'card' })
    assert.deepEqual(pms.data.map((p) => p.id), [pm.id])

    const declined = await rejection(stripe.paymentMethods.attach('pm_card_chargeDeclined', { customer: customer.id }))
    assert.instanceOf(declined, Stripe.errors.StripeCardError)
    assert.equal(declined.code, 'card_declined')
    assert.equal(declined.decline_code, 'generic_decline')
    assert.lengthOf((await stripe.paymentMethods.list({ customer: customer.id })).data, 1)

    const created = await stripe.paymentMethods.create({ type: 'card', card: { token: 'tok_mastercard' } })
    assert.equal(created.card!.brand, 'mastercard')
    assert.isNull(created.customer)

    const detached = await stripe.paymentMethods.detach(pm.id)
    assert.isNull(detached.customer)
    const after = (await stripe.customers.retrieve(customer.id)) as Stripe.Customer
    assert.isNull(after.invoice_settings.default_payment_method)
    assert.includeMembers(
      fake.store.events().map((e) => e.type),
      ['customer.tax_id.created', 'customer.tax_id.deleted', 'payment_method.attached', 'payment_method.detached']
    )
  })

  test('products and prices: filters, immutability and lookup key transfer', async ({ assert }) => {
    const basic = await stripe.products.create({ name: 'Basic', metadata: { tier: '1' } })
    const pro = await stripe.products.create({ name: 'Pro' })
    const archived = await stripe.products.create({ name: 'Old', active: false })
    assert.deepEqual((await stripe.products.list({ active: true })).data.map((p) => p.id), [pro.id, basic.id])
    assert.deepEqual((await stripe.products.list({ ids: [archived.id, basic.id] })).data.map((p) => p.id), [archived.id, basic.id])
    const renamed = await stripe.products.update(basic.id, { name: 'Basic plan' })
    assert.equal(renamed.name, 'Basic plan')

    const monthly = await stripe.prices.create({
      product: basic.id,
      currency: 'usd',
      unit_amount: 1000,
      recurring: { interval: 'month' },
      lookup_key: 'basic_monthly',
    })
    const yearly = await stripe.prices.create({ product: basic.id, currency: 'usd', unit_amount: 10000, recurring: { interval: 'year' } })
    const once = await stripe.prices.create({ product: pro.id, currency: 'usd', unit_amount: 500 })
    assert.equal(monthly.type, 'recurring')
    assert.equal(monthly.recurring!.interval, 'month')
    assert.equal(monthly.unit_amount, 1000)
    assert.equal(once.type, 'one_time')
    assert.isNull(once.recurring)

    assert.deepEqual((await stripe.prices.list({ lookup_keys: ['basic_monthly'] })).data.map((p) => p.id), [monthly.id])
    assert.deepEqual((await stripe.prices.list({ product: basic.id })).data.map((p) => p.id), [yearly.id, monthly.id])
    assert.deepEqual((await stripe.prices.list({ type: 'one_time' })).data.map((p) => p.id), [once.id])

    const immutable = await rejection(stripe.prices.update(monthly.id, { unit_amount: 2000 } as any))
    assert.equal(immutable.code, 'parameter_unknown')
    assert.equal(immutable.param, 'unit_amount')

    const duplicate = await rejection(
      stripe.prices.create({ product: basic.id, currency: 'usd', unit_amount: 1200, recurring: { interval: 'month' }, lookup_key: 'basic_monthly' })
    )
    assert.instanceOf(duplicate, Stripe.errors.StripeInvalidRequestError)
    assert.equal(duplicate.param, 'lookup_key')
    assert.include(duplicate.message, monthly.id)
    assert.lengthOf((await stripe.prices.list({ product: basic.id })).data, 2)

    const moved = await stripe.prices.create({
      product: basic.id,
      currency: 'usd',
      unit_amount: 1200,
      recurring: { interval: 'month' },
      lookup_key: 'basic_monthly',
      transfer_lookup_key: true,
    })
    assert.equal(moved.lookup_key, 'basic_monthly')
    assert.isNull((await stripe.prices.retrieve(monthly.id)).lookup_key)
    assert.deepEqual((await stripe.prices.list({ lookup_keys: ['basic_monthly'] })).data.map((p) => p.id), [moved.id])
    const priceUpdated = fake.store.events('price.updated')
    assert.lengthOf(priceUpdated, 1)
    assert.equal((priceUpdated[0].data.object as Stripe.Price).id, monthly.id)
    assert.deepEqual(priceUpdated[0].data.previous_attributes, { lookup_key: 'basic_monthly' })

    const deactivated = await stripe.prices.update(yearly.id, { active: false, metadata: { legacy: 'yes' } })
    assert.isFalse(deactivated.active)
    assert.deepEqual((await stripe.prices.list({ product: basic.id, active: true })).data.map((p) => p.id), [moved.id, monthly.id])
  })

  test('coupons and promotion codes', async ({ assert }) => {
    const coupon = await stripe.coupons.create({ percent_off: 25.5, duration: 'forever', name: 'Launch' })
    assert.equal(coupon.percent_off, 25.5)
    assert.equal(coupon.duration, 'forever')
    const fixed = await stripe.coupons.create({ id: 'FIVE', amount_off: 500, currency: 'usd' })
    assert.equal(fixed.id, 'FIVE')
    assert.equal(fixed.duration, 'once')
    const promo = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: 'LAUNCH' })
    assert.match(promo.id, /^promo_/)
    assert.equal(promo.promotion.coupon, coupon.id)
    assert.deepEqual((await stripe.promotionCodes.list({ code: 'launch' })).data.map((p) => p.id), [promo.id])
    assert.equal((await stripe.coupons.retrieve('FIVE')).amount_off, 500)
    const bad = await rejection(stripe.coupons.create({ amount_off: 100 }))
    assert.equal(bad.param, 'currency')
  })
})

test.group('StripeFake | idempotency', (group) => {
  let fake: StripeFake
  let stripe: Stripe
  group.each.setup(async () => {
    fake = await StripeFake.start()
    stripe = client(fake)
    return () => fake.close()
  })

  test('replays the first response for the same key and parameters', async ({ assert }) => {
    const first = await stripe.customers.create({ email: 'ada@example.com' }, { idempotencyKey: 'key-1' })
    const second = await stripe.customers.create({ email: 'ada@example.com' }, { idempotencyKey: 'key-1' })
    assert.equal(second.id, first.id)
    assert.equal(second.lastResponse.headers['idempotent-replayed'], 'true')
    assert.isUndefined(first.lastResponse.headers['idempotent-replayed'])
    assert.lengthOf(fake.store.customers(), 1)
    assert.lengthOf(fake.store.events('customer.created'), 1)
    const requests = fake.requestsTo('POST', '/v1/customers')
    assert.deepEqual(requests.map((r) => [r.idempotencyKey, r.replayed]), [['key-1', false], ['key-1', true]])
  })

  test('rejects a reused key with different parameters', async ({ assert }) => {
    await stripe.customers.create({ email: 'ada@example.com' }, { idempotencyKey: 'key-2' })
    const error = await rejection(stripe.customers.create({ email: 'bob@example.com' }, { idempotencyKey: 'key-2' }))
    assert.instanceOf(error, Stripe.errors.StripeIdempotencyError)
    assert.equal(error.statusCode, 400)
    assert.equal(error.rawType, 'idempotency_error')
    assert.match(error.message, /same parameters/)
    assert.lengthOf(fake.store.customers(), 1)
  })

  test('replays card errors but not validation errors', async ({ assert }) => {
    const customer = await stripe.customers.create()
    const first = await rejection(stripe.paymentMethods.attach('pm_card_chargeDeclined', { customer: customer.id }, { idempotencyKey: 'k3' }))
    const second = await rejection(stripe.paymentMethods.attach('pm_card_chargeDeclined', { customer: customer.id }, { idempotencyKey: 'k3' }))
    assert.instanceOf(second, Stripe.errors.StripeCardError)
    assert.equal(second.headers['idempotent-replayed'], 'true')
    assert.equal(second.raw.request_log_url, first.raw.request_log_url)
    await rejection(stripe.customers.create({ nope: 1 } as any, { idempotencyKey: 'k4' }))
    const valid = await rejection(stripe.customers.create({ nope: 1 } as any, { idempotencyKey: 'k4' }))
    assert.isUndefined(valid.headers['idempotent-replayed'])
    assert.equal(valid.code, 'parameter_unknown')
  })
})

test.group('StripeFake | fault injection', (group) => {
  let fake: StripeFake
  group.each.setup(async () => {
    fake = await StripeFake.start()
    return () => fake.close()
  })

  test('failNext answers with a card error, with a request id, without mutating state', async ({ assert }) => {
    const stripe = client(fake)
    fake.failNext({ method: 'POST', path: '/v1/customers', declineCode: 'insufficient_funds', message: 'Your card has insufficient funds.' })
    const error = await rejection(stripe.customers.create({ email: 'ada@example.com' }))
    assert.instanceOf(error, Stripe.errors.StripeCardError)
    assert.equal(error.statusCode, 402)
    assert.equal(error.code, 'card_declined')
    assert.equal(error.decline_code, 'insufficient_funds')
    assert.equal(error.message, 'Your card has insufficient funds.')
    assert.match(error.requestId, /^req_/)
    assert.equal(fake.lastRequest()!.fault, 'error')
    assert.equal(fake.lastRequest()!.status, 402)
    assert.lengthOf(fake.store.customers(), 0)
    assert.lengthOf(fake.store.events(), 0)
    // Consumed: the next call goes through.
    const customer = await stripe.customers.create({ email: 'ada@example.com' })
    assert.match(customer.id, /^cus_/)
  })

  test('faults are matched by method and path, consumed in order, with a times count', async ({ assert }) => {
    const stripe = client(fake)
    fake
      .failNext({ method: 'GET', path: /^\/v1\/customers\/cus_/, status: 404, code: 'resource_missing', message: 'gone', times: 2 })
      .failNext({ method: 'POST', status: 400, type: 'invalid_request_error', code: 'parameter_invalid_empty', message: 'first POST' })
      .failNext({ method: 'POST', status: 400, type: 'invalid_request_error', message: 'second POST' })
    const first = await rejection(stripe.customers.create())
    assert.equal(first.message, 'first POST')
    const second = await rejection(stripe.customers.create())
    assert.equal(second.message, 'second POST')
    const customer = await stripe.customers.create()
    for (let i = 0; i < 2; i++) {
      const gone = await rejection(stripe.customers.retrieve(customer.id))
      assert.equal(gone.statusCode, 404)
      assert.equal(gone.message, 'gone')
    }
    const found = (await stripe.customers.retrieve(customer.id)) as Stripe.Customer
    assert.equal(found.id, customer.id)
    assert.deepEqual(
      fake.requests.map((r) => [r.method, r.status, r.fault]),
      [
        ['POST', 400, 'error'],
        ['POST', 400, 'error'],
        ['POST', 200, null],
        ['GET', 404, 'error'],
        ['GET', 404, 'error'],
        ['GET', 200, null],
      ]
    )
  })

  test('rate limits surface as StripeRateLimitError and are retried by the SDK', async ({ assert }) => {
    fake.rateLimitNext({ path: '/v1/customers' })
    const noRetry = client(fake)
    const error = await rejection(noRetry.customers.list())
    assert.instanceOf(error, Stripe.errors.StripeRateLimitError)
    assert.equal(error.statusCode, 429)
    assert.equal(error.code, 'rate_limit')
    assert.match(error.requestId, /^req_/)

    fake.rateLimitNext({ path: '/v1/customers', times: 2 })
    const retrying = client(fake, { maxNetworkRetries: 2 })
    const before = fake.requests.length
    const customer = await retrying.customers.create({ email: 'ada@example.com' })
    assert.match(customer.id, /^cus_/)
    const attempts = fake.requests.slice(before)
    assert.deepEqual(attempts.map((r) => r.status), [429, 429, 200])
    assert.equal(new Set(attempts.map((r) => r.idempotencyKey)).size, 1)
    assert.lengthOf(fake.store.customers(), 1)
  })

  test('server errors surface as StripeAPIError and are retried by the SDK', async ({ assert }) => {
    fake.serverErrorNext({ method: 'POST', path: '/v1/customers' })
    const error = await rejection(client(fake).customers.create())
    assert.instanceOf(error, Stripe.errors.StripeAPIError)
    assert.equal(error.statusCode, 500)
    assert.equal(error.rawType, 'api_error')
    assert.match(error.requestId, /^req_/)
    assert.lengthOf(fake.store.customers(), 0)

    fake.serverErrorNext({ method: 'POST', path: '/v1/customers', times: 2 })
    const before = fake.requests.length
    const customer = await client(fake, { maxNetworkRetries: 2 }).customers.create({ name: 'Ada' })
    assert.equal(customer.name, 'Ada')
    assert.deepEqual(fake.requests.slice(before).map((r) => r.status), [500, 500, 200])
    assert.lengthOf(fake.store.customers(), 1)
  })

  test('timeouts surface as StripeConnectionError after the client timeout', async ({ assert }) => {
    fake.timeoutNext({ path: '/v1/customers' })
    const stripe = client(fake, { timeout: 250 })
    const started = Date.now()
    const error = await rejection(stripe.customers.create({ email: 'ada@example.com' }))
    assert.instanceOf(error, Stripe.errors.StripeConnectionError)
    assert.match(error.message, /timeout/)
    assert.isAtLeast(Date.now() - started, 240)
    assert.equal(fake.lastRequest()!.fault, 'timeout')
    assert.equal(fake.lastRequest()!.status, 0)
    assert.lengthOf(fake.store.customers(), 0)
    // Retried attempts get through once the fault is consumed.
    fake.timeoutNext({ path: '/v1/customers' })
    const retrying = client(fake, { timeout: 250, maxNetworkRetries: 1 })
    const customer = await retrying.customers.create({ email: 'ada@example.com' })
    assert.match(customer.id, /^cus_/)
    assert.lengthOf(fake.store.customers(), 1)
  })
})

test.group('StripeFake | inspection and clock', (group) => {
  let fake: StripeFake
  let stripe: Stripe
  group.each.setup(async () => {
    fake = await StripeFake.start()
    stripe = client(fake)
    return () => fake.close()
  })

  test('records requests with parsed params, keys and versions', async ({ assert }) => {
    await stripe.customers.create({ email: 'ada@example.com', metadata: { id: '1' } }, { idempotencyKey: 'abc' })
    await stripe.customers.list({ limit: 3, email: 'ada@example.com' })
    const post = fake.lastRequest('POST', '/v1/customers')!
    assert.deepEqual(post.params, { email: 'ada@example.com', metadata: { id: '1' } })
    assert.deepEqual(post.body, post.params)
    assert.equal(post.idempotencyKey, 'abc')
    assert.equal(post.apiKey, 'sk_test_fake')
    assert.equal(post.status, 200)
    assert.isAbove(post.time, 0)
    const get = fake.lastRequest('GET', /customers/)!
    assert.deepEqual(get.query, { limit: '3', email: 'ada@example.com' })
    assert.lengthOf(fake.requestsTo('*', /\/v1\/customers/), 2)
    assert.equal(fake.store.customers()[0].email, 'ada@example.com')

    fake.failNext()
    fake.reset()
    assert.lengthOf(fake.requests, 0)
    assert.lengthOf(fake.store.customers(), 0)
    assert.lengthOf(fake.store.events(), 0)
    const after = await stripe.customers.create()
    assert.match(after.id, /^cus_/)
  })

  test('the clock drives created, and events of one object are strictly ordered', async ({ assert }) => {
    fake.setNow(JAN_1_2025)
    const customer = await stripe.customers.create({ name: 'A' })
    await stripe.customers.update(customer.id, { name: 'B' })
    await stripe.customers.update(customer.id, { name: 'C' })
    fake.advance(3600)
    const later = await stripe.customers.create()
    assert.equal(customer.created, JAN_1_2025)
    assert.equal(later.created, JAN_1_2025 + 3600)
    assert.equal(fake.now(), JAN_1_2025 + 3600)
    const events = fake.store.events('customer.created', 'customer.updated')
    const own = events.filter((e) => (e.data.object as Stripe.Customer).id === customer.id)
    assert.deepEqual(own.map((e) => e.created), [JAN_1_2025, JAN_1_2025 + 1, JAN_1_2025 + 2])
    assert.deepEqual(own.map((e) => (e.data.object as Stripe.Customer).name), ['A', 'B', 'C'])
    assert.deepEqual(own[2].data.previous_attributes, { name: 'B' })
  })
})

test.group('StripeFake | subscriptions', (group) => {
  let fake: StripeFake
  let stripe: Stripe
  group.each.setup(async () => {
    fake = await StripeFake.start({ now: JAN_1_2025 })
    stripe = client(fake)
    return () => fake.close()
  })

  test('a trial needs no card, starts trialing with a paid $0 invoice', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const customer = await stripe.customers.create({ email: 'ada@example.com' })
    const sub = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: price.id }],
      trial_period_days: 14,
      metadata: { team: '7' },
      expand: ['latest_invoice', 'customer'],
    })
    assert.match(sub.id, /^sub_/)
    assert.equal(sub.status, 'trialing')
    assert.equal(sub.trial_start, JAN_1_2025)
    assert.equal(sub.trial_end, JAN_1_2025 + 14 * DAY)
    assert.deepEqual(sub.metadata, { team: '7' })
    assert.equal((sub.customer as Stripe.Customer).email, 'ada@example.com')
    const [item] = sub.items.data
    assert.match(item.id, /^si_/)
    assert.equal(item.price.id, price.id)
    assert.equal(item.quantity, 1)
    assert.equal(item.current_period_start, JAN_1_2025)
    assert.equal(item.current_period_end, JAN_1_2025 + 14 * DAY)
    assert.notProperty(sub, 'current_period_end')
    const invoice = sub.latest_invoice as Stripe.Invoice
    assert.match(invoice.id, /^in_/)
    assert.equal(invoice.status, 'paid')
    assert.equal(invoice.billing_reason, 'subscription_create')
    assert.equal(invoice.amount_due, 0)
    assert.equal(invoice.total, 0)
    assert.equal(invoice.lines.data[0].description, 'Trial period for Pro')
    assert.equal(invoice.parent!.subscription_details!.subscription, sub.id)

    // The trial ends without a payment method: Stripe invoices anyway and the subscription goes past_due.
    const { subscription, invoice: renewal } = fake.advanceToPeriodEnd(sub.id)
    assert.equal(fake.now(), JAN_1_2025 + 14 * DAY)
    assert.equal(subscription.status, 'past_due')
    assert.equal(renewal!.status, 'open')
    assert.equal(renewal!.amount_due, 2000)
    assert.equal(subscription.items.data[0].current_period_start, JAN_1_2025 + 14 * DAY)

    // Paying the open invoice with a card brings it back to active.
    const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })
    const paid = await stripe.invoices.pay(renewal!.id, { payment_method: pm.id })
    assert.equal(paid.status, 'paid')
    assert.equal(paid.amount_paid, 2000)
    assert.equal((await stripe.subscriptions.retrieve(sub.id)).status, 'active')
  })

  test('with a working card: active, quantity and a paid invoice with the 10 % automatic tax', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const { customer, pm } = await customerWithCard(stripe)
    const before = fake.store.events().length
    const sub = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: price.id, quantity: 3 }],
      automatic_tax: { enabled: true },
      expand: ['latest_invoice'],
    })
    assert.equal(sub.status, 'active')
    assert.equal(sub.items.data[0].quantity, 3)
    assert.equal(sub.items.data[0].current_period_start, JAN_1_2025)
    assert.equal(sub.items.data[0].current_period_end, FEB_1_2025)
    const invoice = sub.latest_invoice as Stripe.Invoice
    // 3 × 2000 = 6000; 10 % tax = 600; total 6600.
    assert.equal(invoice.subtotal, 6000)
    assert.equal(invoice.total_excluding_tax, 6000)
    assert.equal(invoice.total_taxes![0].amount, 600)
    assert.equal(invoice.total_taxes![0].tax_behavior, 'exclusive')
    assert.equal(invoice.total, 6600)
    assert.equal(invoice.amount_due, 6600)
    assert.equal(invoice.amount_paid, 6600)
    assert.equal(invoice.amount_remaining, 0)
    assert.equal(invoice.status, 'paid')
    assert.isTrue(invoice.automatic_tax.enabled)
    assert.match(invoice.number!, /^[A-Z0-9]+-0001$/)
    const [line] = invoice.lines.data
    assert.equal(line.amount, 6000)
    assert.equal(line.quantity, 3)
    assert.equal(line.taxes![0].amount, 600)
    assert.equal(line.period.start, JAN_1_2025)
    assert.equal(line.period.end, FEB_1_2025)
    assert.equal(line.pricing!.price_details!.price, price.id)

    const listed = await stripe.invoices.list({ subscription: sub.id })
    assert.deepEqual(listed.data.map((i) => i.id), [invoice.id])
    assert.deepEqual((await stripe.invoices.list({ customer: customer.id, status: 'paid' })).data.map((i) => i.id), [invoice.id])
    const payments = invoice.payments!.data
    const intent = await stripe.paymentIntents.retrieve(payments[0].payment.payment_intent as string)
    assert.equal(intent.status, 'succeeded')
    assert.equal(intent.amount, 6600)
    assert.equal(intent.payment_method, pm.id)
    assert.deepEqual(
      fake.store.events().slice(before).map((e) => e.type),
      [
        'customer.subscription.created',
        'invoice.created',
        'invoice.finalized',
        'payment_intent.succeeded',
        'invoice_payment.paid',
        'invoice.paid',
        'invoice.payment_succeeded',
      ]
    )
    const created = fake.store.events('customer.subscription.created')[0]
    assert.equal((created.data.object as Stripe.Subscription).status, 'active')
    assert.equal(created.api_version, fake.apiVersion)
    assert.equal(created.request!.id, sub.lastResponse.requestId)
  })

  test('declined cards: 402 only with error_if_incomplete; otherwise the subscription is created incomplete', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    // 4000000000000341 attaches fine but every charge fails.
    const { customer } = await customerWithCard(stripe, 'pm_card_chargeCustomerFail')

    const strict = await rejection(
      stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }], payment_behavior: 'error_if_incomplete' })
    )
    assert.instanceOf(strict, Stripe.errors.StripeCardError)
    assert.equal(strict.statusCode, 402)
    assert.equal(strict.code, 'card_declined')
    assert.equal(strict.decline_code, 'generic_decline')
    assert.lengthOf(fake.store.subscriptions(), 0)
    assert.lengthOf(fake.store.invoices(), 0)

    // Since API 2019-03-14 the default (allow_incomplete) creates the subscription even when the first payment fails.
    const allowed = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }], expand: ['latest_invoice'] })
    assert.equal(allowed.status, 'incomplete')
    assert.equal((allowed.latest_invoice as Stripe.Invoice).status, 'open')
    assert.lengthOf(fake.store.subscriptions(), 1)

    const sub = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: price.id }],
      payment_behavior: 'default_incomplete',
      expand: ['latest_invoice'],
    })
    assert.equal(sub.status, 'incomplete')
    const invoice = sub.latest_invoice as Stripe.Invoice
    assert.equal(invoice.status, 'open')
    assert.equal(invoice.amount_remaining, 2000)
    assert.equal(invoice.confirmation_secret!.type, 'payment_intent')
    const intent = await stripe.paymentIntents.retrieve(invoice.payments!.data[0].payment.payment_intent as string)
    assert.equal(intent.status, 'requires_confirmation')
    assert.isTrue(invoice.confirmation_secret!.client_secret.startsWith(`${intent.id}_secret_`))

    // The pending invoice expires with the subscription after 23 hours.
    const { subscription } = fake.advanceToPeriodEnd(sub.id)
    assert.equal(subscription.status, 'incomplete_expired')
    assert.equal((await stripe.invoices.retrieve(invoice.id)).status, 'void')
  })

  test('SCA cards leave the subscription incomplete until the payment is authenticated', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const { customer } = await customerWithCard(stripe, 'pm_card_authenticationRequired')
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }], expand: ['latest_invoice'] })
    assert.equal(sub.status, 'incomplete')
    const invoice = sub.latest_invoice as Stripe.Invoice
    assert.equal(invoice.status, 'open')
    assert.isTrue(invoice.attempted)
    const intent = await stripe.paymentIntents.retrieve(invoice.payments!.data[0].payment.payment_intent as string)
    assert.equal(intent.status, 'requires_action')
    assert.equal(intent.next_action!.type, 'use_stripe_sdk')
    assert.equal(invoice.confirmation_secret!.client_secret, intent.client_secret)
    assert.lengthOf(fake.store.events('invoice.payment_action_required'), 1)

    const strict = await rejection(
      stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }], payment_behavior: 'error_if_incomplete' })
    )
    assert.instanceOf(strict, Stripe.errors.StripeCardError)
    assert.equal(strict.decline_code, 'authentication_required')

    // The customer passes 3-D Secure.
    const paid = fake.completeInvoicePayment(invoice.id)
    assert.equal(paid.status, 'paid')
    assert.equal(paid.amount_paid, 2000)
    const active = await stripe.subscriptions.retrieve(sub.id)
    assert.equal(active.status, 'active')
    const updated = fake.store.events('customer.subscription.updated').at(-1)!
    assert.equal((updated.data.object as Stripe.Subscription).status, 'active')
    assert.equal((updated.data.previous_attributes as any).status, 'incomplete')
  })

  test('swap price, change quantity, cancel at period end and undo, cancel now', async ({ assert }) => {
    const basic = await monthlyPrice(stripe, 'Basic', 1000)
    const pro = await monthlyPrice(stripe, 'Pro', 3000)
    const { customer } = await customerWithCard(stripe)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: basic.id }] })
    const itemId = sub.items.data[0].id

    // Ten days in (21 of 31 days left), swap to Pro and invoice now:
    // credit -round(1000 × 21/31) = -round(677.42) = -677; charge round(3000 × 21/31) = round(2032.26) = 2032.
    fake.advance(10 * DAY)
    const swapped = await stripe.subscriptions.update(sub.id, {
      items: [{ id: itemId, price: pro.id }],
      proration_behavior: 'always_invoice',
      expand: ['latest_invoice'],
    })
    assert.equal(swapped.items.data[0].id, itemId)
    assert.equal(swapped.items.data[0].price.id, pro.id)
    assert.equal(swapped.items.data[0].current_period_start, JAN_1_2025)
    assert.equal(swapped.items.data[0].current_period_end, FEB_1_2025)
    const prorated = swapped.latest_invoice as Stripe.Invoice
    assert.equal(prorated.billing_reason, 'subscription_update')
    assert.deepEqual(prorated.lines.data.map((l) => l.amount), [-677, 2032])
    assert.deepEqual(prorated.lines.data.map((l) => l.parent!.subscription_item_details!.proration), [true, true])
    assert.equal(prorated.lines.data[0].description, 'Unused time on Basic after 11 Jan 2025')
    assert.equal(prorated.lines.data[1].description, 'Remaining time on Pro after 11 Jan 2025')
    assert.equal(prorated.total, 1355)
    assert.equal(prorated.status, 'paid')
    const updated = fake.store.events('customer.subscription.updated').at(-1)!
    assert.equal((updated.data.previous_attributes as any).items.data[0].price.id, basic.id)

    // Quantity 1 → 2 with the default create_prorations: nothing invoiced now, pending until renewal:
    // credit -round(3000 × 21/31) = -2032; charge round(6000 × 21/31) = round(4064.52) = 4065.
    const more = await stripe.subscriptions.update(sub.id, { items: [{ id: itemId, quantity: 2 }] })
    assert.equal(more.items.data[0].quantity, 2)
    assert.equal(more.latest_invoice, prorated.id)
    const preview = await stripe.invoices.createPreview({ subscription: sub.id })
    // Next invoice: pending prorations (-2032 + 4065) + Feb 1 → Mar 1 at 2 × 3000 = 6000 → 8033.
    assert.deepEqual(preview.lines.data.map((l) => l.amount), [-2032, 4065, 6000])
    assert.equal(preview.total, 8033)

    // Cancel at period end, then change our mind (what "resume" means for most apps).
    const cancelling = await stripe.subscriptions.update(sub.id, { cancel_at_period_end: true })
    assert.isTrue(cancelling.cancel_at_period_end)
    assert.equal(cancelling.cancel_at, FEB_1_2025)
    assert.equal(cancelling.status, 'active')
    const kept = await stripe.subscriptions.update(sub.id, { cancel_at_period_end: false })
    assert.isFalse(kept.cancel_at_period_end)
    assert.isNull(kept.cancel_at)
    assert.isNull(kept.canceled_at)

    await stripe.subscriptions.update(sub.id, { cancel_at_period_end: true })
    const { subscription: ended, invoice } = fake.advanceToPeriodEnd(sub.id)
    assert.isNull(invoice)
    assert.equal(ended.status, 'canceled')
    assert.equal(ended.ended_at, FEB_1_2025)
    assert.equal(fake.store.events('customer.subscription.deleted').length, 1)
    assert.lengthOf((await stripe.subscriptions.list({ customer: customer.id })).data, 0)
    assert.lengthOf((await stripe.subscriptions.list({ customer: customer.id, status: 'canceled' })).data, 1)

    // Immediate cancellation.
    const second = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: basic.id }] })
    assert.deepEqual((await stripe.subscriptions.list({ price: basic.id })).data.map((s) => s.id), [second.id])
    const canceled = await stripe.subscriptions.cancel(second.id, { cancellation_details: { comment: 'too expensive' } })
    assert.equal(canceled.status, 'canceled')
    assert.equal(canceled.canceled_at, FEB_1_2025)
    assert.equal(canceled.ended_at, FEB_1_2025)
    assert.equal(canceled.cancellation_details!.comment, 'too expensive')
    assert.equal(canceled.cancellation_details!.reason, 'cancellation_requested')
    const again = await rejection(stripe.subscriptions.update(second.id, { items: [{ price: pro.id }] }))
    assert.equal(again.statusCode, 400)
  })

  test('a paused subscription resumes with a new period and a paid invoice', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 1500)
    const customer = await stripe.customers.create()
    const sub = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: price.id }],
      trial_period_days: 7,
      trial_settings: { end_behavior: { missing_payment_method: 'pause' } },
    })
    const notPaused = await rejection(stripe.subscriptions.resume(sub.id))
    assert.equal(notPaused.statusCode, 400)
    const { subscription: paused } = fake.advanceToPeriodEnd(sub.id)
    assert.equal(paused.status, 'paused')
    assert.lengthOf(fake.store.events('customer.subscription.paused'), 1)

    fake.advance(3 * DAY)
    const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })
    await stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: pm.id } })
    const resumed = await stripe.subscriptions.resume(sub.id, { expand: ['latest_invoice'] })
    const now = JAN_1_2025 + 10 * DAY
    assert.equal(resumed.status, 'active')
    assert.equal(resumed.items.data[0].current_period_start, now)
    assert.equal(resumed.items.data[0].current_period_end, FEB_1_2025 + 10 * DAY)
    assert.equal((resumed.latest_invoice as Stripe.Invoice).amount_paid, 1500)
    assert.lengthOf(fake.store.events('customer.subscription.resumed'), 1)
  })

  test('renewals roll the period, invoice it and charge; a failing card makes it past_due', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2500)
    const { customer } = await customerWithCard(stripe)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }] })
    const before = fake.store.events().length

    const { subscription, invoice } = fake.advanceToPeriodEnd(sub.id)
    assert.equal(fake.now(), FEB_1_2025)
    assert.equal(subscription.status, 'active')
    assert.equal(subscription.items.data[0].current_period_start, FEB_1_2025)
    assert.equal(subscription.items.data[0].current_period_end, MAR_1_2025)
    assert.equal(subscription.latest_invoice, invoice!.id)
    assert.equal(invoice!.billing_reason, 'subscription_cycle')
    assert.equal(invoice!.amount_paid, 2500)
    assert.equal(invoice!.period_start, JAN_1_2025)
    assert.equal(invoice!.period_end, FEB_1_2025)
    assert.deepEqual(invoice!.lines.data[0].period, { start: FEB_1_2025, end: MAR_1_2025 })
    assert.match(invoice!.number!, /-0002$/)
    const types = fake.store.events().slice(before).map((e) => e.type)
    assert.deepEqual(types.filter((t) => t.startsWith('invoice.') || t.startsWith('customer.subscription')), [
      'customer.subscription.updated',
      'invoice.created',
      'invoice.finalized',
      'invoice.paid',
      'invoice.payment_succeeded',
    ])
    const rolled = fake.store.events('customer.subscription.updated').at(-1)!
    assert.equal((rolled.data.previous_attributes as any).items.data[0].current_period_end, FEB_1_2025)

    // The next charge fails.
    const failing = await stripe.paymentMethods.attach('pm_card_chargeCustomerFail', { customer: customer.id })
    await stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: failing.id } })
    const { subscription: pastDue, invoice: unpaid } = fake.advanceToPeriodEnd(sub.id)
    assert.equal(pastDue.status, 'past_due')
    assert.equal(unpaid!.status, 'open')
    assert.equal(unpaid!.attempt_count, 1)
    assert.isNotNull(unpaid!.next_payment_attempt)
    assert.lengthOf(fake.store.events('invoice.payment_failed'), 1)
    const retry = await rejection(stripe.invoices.pay(unpaid!.id))
    assert.instanceOf(retry, Stripe.errors.StripeCardError)
    const visa = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })
    const paid = await stripe.invoices.pay(unpaid!.id, { payment_method: visa.id })
    assert.equal(paid.status, 'paid')
    assert.equal((await stripe.subscriptions.retrieve(sub.id)).status, 'active')
  })

  test('create_preview computes the proration of a swap, rounding half up, without changing anything', async ({ assert }) => {
    // Prices chosen so the proration lands on a half: 3100 × remaining / 2678400 = remaining / 864.
    const small = await monthlyPrice(stripe, 'Small', 3100)
    const large = await monthlyPrice(stripe, 'Large', 6200)
    const { customer } = await customerWithCard(stripe)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: small.id }] })
    const invoicesBefore = fake.store.invoices().length
    // 864 × 1000 + 432 = 864432 seconds remain of the 2678400-second January period.
    const prorationDate = FEB_1_2025 - 864_432
    const preview = await stripe.invoices.createPreview({
      customer: customer.id,
      subscription: sub.id,
      subscription_details: { items: [{ id: sub.items.data[0].id, price: large.id }], proration_date: prorationDate },
    })
    // Credit: 3100 × 864432 / 2678400 = 1000.5 → -1001 (half up). Charge: 6200 × 864432 / 2678400 = 2001.
    // Then the February period of Large: 6200. Total: -1001 + 2001 + 6200 = 7200.
    assert.deepEqual(preview.lines.data.map((l) => l.amount), [-1001, 2001, 6200])
    assert.deepEqual(preview.lines.data.map((l) => l.parent!.subscription_item_details!.proration), [true, true, false])
    assert.deepEqual(preview.lines.data[0].period, { start: prorationDate, end: FEB_1_2025 })
    assert.equal(preview.subtotal, 7200)
    assert.equal(preview.total, 7200)
    assert.equal(preview.amount_due, 7200)
    assert.equal(preview.parent!.subscription_details!.subscription_proration_date, prorationDate)
    assert.equal(preview.customer, customer.id)

    const immediate = await stripe.invoices.createPreview({
      subscription: sub.id,
      subscription_details: {
        items: [{ id: sub.items.data[0].id, price: large.id }],
        proration_date: prorationDate,
        proration_behavior: 'always_invoice',
      },
    })
    assert.deepEqual(immediate.lines.data.map((l) => l.amount), [-1001, 2001])
    assert.equal(immediate.total, 1000)

    assert.equal((await stripe.subscriptions.retrieve(sub.id)).items.data[0].price.id, small.id)
    assert.lengthOf(fake.store.invoices(), invoicesBefore)
    const missing = await rejection(stripe.invoices.createPreview({ customer: customer.id, subscription: 'sub_nope' }))
    assert.equal(missing.code, 'resource_missing')
  })

  test('coupons discount invoices before tax; once-coupons apply to the first invoice only', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 1999)
    const { customer } = await customerWithCard(stripe)
    const coupon = await stripe.coupons.create({ percent_off: 25.5, duration: 'forever' })
    const sub = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: price.id }],
      discounts: [{ coupon: coupon.id }],
      automatic_tax: { enabled: true },
      expand: ['latest_invoice'],
    })
    const invoice = sub.latest_invoice as Stripe.Invoice
    // 25.5 % of 1999 = 509.745 → 510; taxable 1489; tax 148.9 → 149; total 1638.
    assert.equal(invoice.subtotal, 1999)
    assert.equal(invoice.total_discount_amounts![0].amount, 510)
    assert.equal(invoice.total_excluding_tax, 1489)
    assert.equal(invoice.total_taxes![0].amount, 149)
    assert.equal(invoice.total, 1638)
    assert.equal(invoice.amount_paid, 1638)
    assert.lengthOf(sub.discounts, 1)
    const discount = fake.store.get<Stripe.Discount>(sub.discounts[0] as string)!
    assert.equal(discount.source.coupon, coupon.id)
    assert.equal((await stripe.coupons.retrieve(coupon.id)).times_redeemed, 1)

    const fiveOff = await stripe.coupons.create({ amount_off: 500, currency: 'usd', duration: 'once' })
    const promo = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: fiveOff.id }, code: 'FIVE' })
    const other = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: price.id }],
      discounts: [{ promotion_code: promo.id }],
      expand: ['latest_invoice'],
    })
    assert.equal((other.latest_invoice as Stripe.Invoice).total, 1499)
    const { invoice: renewal } = fake.advanceToPeriodEnd(other.id)
    assert.equal(renewal!.total, 1999)
    assert.equal((await stripe.promotionCodes.retrieve(promo.id)).times_redeemed, 1)
  })

  test('trial_end=now ends a trial: new period, invoice charged now', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const { customer } = await customerWithCard(stripe)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }], trial_period_days: 30 })
    assert.equal(sub.status, 'trialing')
    fake.advance(5 * DAY)
    const now = JAN_1_2025 + 5 * DAY
    const ended = await stripe.subscriptions.update(sub.id, { trial_end: 'now', expand: ['latest_invoice'] })
    assert.equal(ended.status, 'active')
    assert.equal(ended.trial_end, now)
    assert.equal(ended.items.data[0].current_period_start, now)
    assert.equal(ended.items.data[0].current_period_end, FEB_1_2025 + 5 * DAY)
    const invoice = ended.latest_invoice as Stripe.Invoice
    assert.equal(invoice.billing_reason, 'subscription_update')
    assert.equal(invoice.amount_paid, 2000)
    const updated = fake.store.events('customer.subscription.updated').at(-1)!
    assert.equal((updated.data.previous_attributes as any).status, 'trialing')
  })

  test('pause_collection keeps renewal invoices as drafts; finalize, pay and void', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const { customer } = await customerWithCard(stripe)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }] })
    const paused = await stripe.subscriptions.update(sub.id, { pause_collection: { behavior: 'keep_as_draft' } })
    assert.deepEqual(paused.pause_collection, { behavior: 'keep_as_draft', resumes_at: null })
    const { invoice } = fake.advanceToPeriodEnd(sub.id)
    assert.equal(invoice!.status, 'draft')
    assert.equal(invoice!.amount_due, 2000)
    assert.isNull(invoice!.number)
    const finalized = await stripe.invoices.finalizeInvoice(invoice!.id)
    assert.equal(finalized.status, 'open')
    assert.match(finalized.number!, /-0002$/)
    const refinalize = await rejection(stripe.invoices.finalizeInvoice(invoice!.id))
    assert.equal(refinalize.statusCode, 400)
    const paid = await stripe.invoices.pay(invoice!.id)
    assert.equal(paid.status, 'paid')
    assert.equal(paid.amount_paid, 2000)
    const alreadyPaid = await rejection(stripe.invoices.pay(invoice!.id))
    assert.equal(alreadyPaid.statusCode, 400)
    const resumed = await stripe.subscriptions.update(sub.id, { pause_collection: '' })
    assert.isNull(resumed.pause_collection)

    const pending = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: price.id }],
      payment_behavior: 'default_incomplete',
    })
    const voided = await stripe.invoices.voidInvoice(pending.latest_invoice as string)
    assert.equal(voided.status, 'void')
    assert.equal(voided.status_transitions.voided_at, FEB_1_2025)
    assert.equal((await rejection(stripe.invoices.voidInvoice(voided.id))).statusCode, 400)
    assert.lengthOf(fake.store.events('invoice.voided'), 1)
  })

  test('decimal and tiered prices: tiers only when expanded, exact amounts rounded once per line', async ({ assert }) => {
    const product = await stripe.products.create({ name: 'API' })
    const decimalPrice = await stripe.prices.create({
      product: product.id,
      currency: 'usd',
      unit_amount_decimal: Stripe.Decimal.from('0.050'),
      recurring: { interval: 'month' },
    })
    assert.isNull(decimalPrice.unit_amount)
    assert.equal(String(decimalPrice.unit_amount_decimal), '0.05')
    const graduated = await stripe.prices.create({
      product: product.id,
      currency: 'usd',
      billing_scheme: 'tiered',
      tiers_mode: 'graduated',
      tiers: [
        { up_to: 10, unit_amount: 100 },
        { up_to: 'inf', unit_amount_decimal: Stripe.Decimal.from('50.5'), flat_amount: 200 },
      ],
      recurring: { interval: 'month' },
      lookup_key: 'api_graduated',
    })
    assert.notProperty(graduated, 'tiers')
    const listed = await stripe.prices.list({ lookup_keys: ['api_graduated'], expand: ['data.tiers'] })
    assert.deepEqual(
      listed.data[0].tiers!.map((t) => [t.up_to, t.unit_amount, String(t.unit_amount_decimal), t.flat_amount]),
      [[10, 100, '100', null], [null, null, '50.5', 200]]
    )
    assert.lengthOf((await stripe.prices.list({ product: product.id, expand: ['data.tiers'] })).data, 2)

    const { customer } = await customerWithCard(stripe)
    // 10 × 100 + 5 × 50.5 + 200 flat = 1452.5 → 1453.
    const tiered = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: graduated.id, quantity: 15 }],
      expand: ['latest_invoice'],
    })
    assert.equal((tiered.latest_invoice as Stripe.Invoice).total, 1453)
    // 37 × 0.05 = 1.85 → 2.
    const cents = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: decimalPrice.id, quantity: 37 }],
      expand: ['latest_invoice'],
    })
    assert.equal((cents.latest_invoice as Stripe.Invoice).total, 2)
  })

  test('magic test payment methods resolve to the card the customer attached', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const customer = await stripe.customers.create()
    const attached = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })
    const updated = await stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: 'pm_card_visa' } })
    assert.equal(updated.invoice_settings.default_payment_method, attached.id)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }], default_payment_method: 'pm_card_visa' })
    assert.equal(sub.status, 'active')
    assert.equal(sub.default_payment_method, attached.id)
    const never = await rejection(
      stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }], default_payment_method: 'pm_card_mastercard' })
    )
    assert.equal(never.statusCode, 400)
    assert.equal(never.param, 'default_payment_method')
  })

  test('customer balance transactions are applied to the next invoice', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const { customer } = await customerWithCard(stripe)
    const credit = await stripe.customers.createBalanceTransaction(customer.id, { amount: -500, currency: 'usd', description: 'Goodwill' })
    assert.match(credit.id, /^cbtxn_/)
    assert.equal(credit.ending_balance, -500)
    assert.equal(((await stripe.customers.retrieve(customer.id)) as Stripe.Customer).balance, -500)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }], expand: ['latest_invoice'] })
    const invoice = sub.latest_invoice as Stripe.Invoice
    // 2000 total - 500 credit = 1500 due.
    assert.equal(invoice.total, 2000)
    assert.equal(invoice.starting_balance, -500)
    assert.equal(invoice.ending_balance, 0)
    assert.equal(invoice.amount_due, 1500)
    assert.equal(invoice.amount_paid, 1500)
    const transactions = await stripe.customers.listBalanceTransactions(customer.id)
    assert.deepEqual(transactions.data.map((t) => [t.type, t.amount, t.ending_balance]), [
      ['applied_to_invoice', 500, 0],
      ['adjustment', -500, -500],
    ])
  })

  test('cancel with invoice_now and prorate credits the unused time on a final invoice', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 3100)
    const { customer } = await customerWithCard(stripe)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }] })
    fake.advance(10 * DAY)
    // 21 of 31 days unused: 3100 × 21/31 = 2100 credited.
    const canceled = await stripe.subscriptions.cancel(sub.id, { invoice_now: true, prorate: true, expand: ['latest_invoice'] })
    assert.equal(canceled.status, 'canceled')
    const final = canceled.latest_invoice as Stripe.Invoice
    assert.deepEqual(final.lines.data.map((l) => l.amount), [-2100])
    assert.equal(final.total, -2100)
    assert.equal(final.amount_due, 0)
    assert.equal(final.ending_balance, -2100)
    assert.equal(((await stripe.customers.retrieve(customer.id)) as Stripe.Customer).balance, -2100)
  })
})

test.group('StripeFake | checkout and portal', (group) => {
  let fake: StripeFake
  let stripe: Stripe
  group.each.setup(async () => {
    fake = await StripeFake.start({ now: JAN_1_2025 })
    stripe = client(fake)
    return () => fake.close()
  })

  test('completeCheckout creates the customer, the subscription and the events', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const session = await stripe.checkout.sessions.create({
      mode: 'subscription',
      line_items: [{ price: price.id, quantity: 2 }],
      customer_email: 'ada@example.com',
      client_reference_id: 'user_42',
      success_url: 'https://app.test/billing/success?session_id={CHECKOUT_SESSION_ID}',
      cancel_url: 'https://app.test/billing',
      automatic_tax: { enabled: true },
      tax_id_collection: { enabled: true },
      billing_address_collection: 'required',
      allow_promotion_codes: true,
      subscription_data: { metadata: { plan: 'pro' } },
      metadata: { user: '42' },
    })
    assert.match(session.id, /^cs_test_/)
    assert.isTrue(session.url!.startsWith(`https://checkout.stripe.com/c/pay/${session.id}`))
    assert.equal(session.status, 'open')
    assert.equal(session.payment_status, 'unpaid')
    assert.equal(session.client_reference_id, 'user_42')
    // 2 × 2000 = 4000 + 10 % tax = 4400.
    assert.equal(session.amount_subtotal, 4000)
    assert.equal(session.amount_total, 4400)
    assert.isNull(session.customer)

    const before = fake.store.events().length
    const completed = fake.completeCheckout(session.id, {
      name: 'ACME GmbH',
      address: { country: 'DE', line1: 'Hauptstr. 1', city: 'Berlin', postal_code: '10115' },
      taxIds: [{ type: 'eu_vat', value: 'DE123456789' }],
    })
    assert.equal(completed.status, 'complete')
    assert.equal(completed.payment_status, 'paid')
    assert.match(completed.customer as string, /^cus_/)
    assert.match(completed.subscription as string, /^sub_/)
    assert.equal(completed.amount_total, 4400)

    const retrieved = await stripe.checkout.sessions.retrieve(session.id, { expand: ['subscription', 'customer', 'line_items'] })
    const sub = retrieved.subscription as Stripe.Subscription
    assert.equal(sub.status, 'active')
    assert.equal(sub.items.data[0].quantity, 2)
    assert.deepEqual(sub.metadata, { plan: 'pro' })
    assert.isTrue(sub.automatic_tax.enabled)
    assert.match(sub.default_payment_method as string, /^pm_/)
    const customer = retrieved.customer as Stripe.Customer
    assert.equal(customer.email, 'ada@example.com')
    assert.equal(customer.address!.country, 'DE')
    assert.equal(retrieved.line_items!.data[0].quantity, 2)
    assert.equal(retrieved.line_items!.data[0].amount_subtotal, 4000)
    assert.deepEqual((await stripe.customers.listTaxIds(customer.id)).data.map((t) => t.value), ['DE123456789'])

    const types = fake.store.events().slice(before).map((e) => e.type)
    assert.equal(types[0], 'customer.created')
    assert.equal(types.at(-1), 'checkout.session.completed')
    assert.includeMembers(types, ['customer.subscription.created', 'invoice.paid', 'payment_method.attached', 'customer.tax_id.created'])
    const event = fake.store.events('checkout.session.completed')[0]
    const object = event.data.object as Stripe.Checkout.Session
    assert.equal(object.client_reference_id, 'user_42')
    assert.equal(object.subscription, sub.id)
    assert.isNull(event.request!.id)

    assert.throws(() => fake.completeCheckout(session.id), /complete/)
  })

  test('checkout validates like Stripe', async ({ assert }) => {
    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const product = await stripe.products.create({ name: 'Sticker' })
    const once = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 300 })
    const customer = await stripe.customers.create({ email: 'ada@example.com' })

    const both = await rejection(
      stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: price.id, quantity: 1 }], customer: customer.id, customer_email: 'x@example.com' })
    )
    assert.equal(both.statusCode, 400)
    assert.match(both.message, /only specify one of these parameters: customer, customer_email/)
    const taxIds = await rejection(
      stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: price.id, quantity: 1 }], customer: customer.id, tax_id_collection: { enabled: true } })
    )
    assert.match(taxIds.message, /customer_update\[name\]/)
    const address = await rejection(
      stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: price.id, quantity: 1 }], customer: customer.id, automatic_tax: { enabled: true } })
    )
    assert.match(address.message, /requires a valid address/)
    const recurring = await rejection(
      stripe.checkout.sessions.create({ mode: 'payment', line_items: [{ price: price.id, quantity: 1 }] })
    )
    assert.match(recurring.message, /`payment` mode but passed a recurring price/)
    const oneTime = await rejection(stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: once.id, quantity: 1 }] }))
    assert.match(oneTime.message, /at least one recurring price/)
    const unknown = await rejection(
      stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ prise: price.id, quantity: 1 } as any] })
    )
    assert.equal(unknown.code, 'parameter_unknown')
    assert.equal(unknown.param, 'line_items[0][prise]')
    const quantity = await rejection(stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: price.id }] }))
    assert.equal(quantity.code, 'parameter_missing')
    assert.equal(quantity.param, 'line_items[0][quantity]')
    assert.lengthOf(fake.store.checkoutSessions(), 0)

    const ok = await stripe.checkout.sessions.create({
      mode: 'subscription',
      line_items: [{ price: price.id, quantity: 1 }],
      customer: customer.id,
      customer_update: { name: 'auto', address: 'auto' },
      tax_id_collection: { enabled: true },
      automatic_tax: { enabled: true },
      subscription_data: { trial_period_days: 14 },
    })
    assert.equal(ok.customer, customer.id)
    assert.equal(ok.amount_total, 0)
    const expired = await stripe.checkout.sessions.expire(ok.id)
    assert.equal(expired.status, 'expired')
    assert.lengthOf(fake.store.events('checkout.session.expired'), 1)
    assert.throws(() => fake.completeCheckout(ok.id), /expired/)
  })

  test('payment-mode checkout and trials through checkout', async ({ assert }) => {
    const product = await stripe.products.create({ name: 'Credits' })
    const credits = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 999 })
    const payment = await stripe.checkout.sessions.create({ mode: 'payment', line_items: [{ price: credits.id, quantity: 3 }] })
    assert.equal(payment.amount_total, 2997)
    const paid = fake.completeCheckout(payment.id, { email: 'bob@example.com' })
    assert.equal(paid.payment_status, 'paid')
    assert.isNull(paid.customer)
    const intent = await stripe.paymentIntents.retrieve(paid.payment_intent as string)
    assert.equal(intent.status, 'succeeded')
    assert.equal(intent.amount, 2997)
    assert.lengthOf(fake.store.customers(), 0)

    const price = await monthlyPrice(stripe, 'Pro', 2000)
    const trial = await stripe.checkout.sessions.create({
      mode: 'subscription',
      line_items: [{ price: price.id, quantity: 1 }],
      subscription_data: { trial_period_days: 7 },
    })
    const done = fake.completeCheckout(trial.id, { email: 'carol@example.com', paymentMethod: 'pm_card_threeDSecure2Required' })
    assert.equal(done.payment_status, 'no_payment_required')
    const sub = await stripe.subscriptions.retrieve(done.subscription as string)
    assert.equal(sub.status, 'trialing')
    assert.equal(sub.trial_end, JAN_1_2025 + 7 * DAY)
    const other = await stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: price.id, quantity: 1 }] })
    assert.throws(() => fake.completeCheckout(other.id, { paymentMethod: 'pm_card_chargeDeclined' }), /declined/)
    assert.equal((await stripe.checkout.sessions.retrieve(other.id)).status, 'open')
  })

  test('payment-mode checkout with invoice_creation charges an invoice for the customer', async ({ assert }) => {
    const customer = await stripe.customers.create({ email: 'ada@example.com' })
    const session = await stripe.checkout.sessions.create({
      mode: 'payment',
      customer: customer.id,
      line_items: [{ quantity: 2, price_data: { currency: 'usd', unit_amount: 750, product_data: { name: 'Setup fee' } } }],
      invoice_creation: { enabled: true },
      success_url: 'https://app.test/ok',
    })
    assert.equal(session.amount_total, 1500)
    const done = fake.completeCheckout(session.id)
    assert.equal(done.payment_status, 'paid')
    const invoice = await stripe.invoices.retrieve(done.invoice as string)
    assert.equal(invoice.status, 'paid')
    assert.equal(invoice.customer, customer.id)
    assert.equal(invoice.amount_paid, 1500)
    assert.equal(invoice.lines.data[0].description, 'Setup fee')
    assert.equal((await stripe.paymentIntents.retrieve(done.payment_intent as string)).amount, 1500)
    assert.lengthOf((await stripe.paymentMethods.list({ customer: customer.id })).data, 0)
  })

  test('billing portal sessions', async ({ assert }) => {
    const customer = await stripe.customers.create()
    const portal = await stripe.billingPortal.sessions.create({ customer: customer.id, return_url: 'https://app.test/billing' })
    assert.match(portal.id, /^bps_/)
    assert.equal(portal.customer, customer.id)
    assert.equal(portal.return_url, 'https://app.test/billing')
    assert.match(portal.url, /^https:\/\/billing\.stripe\.com\/p\/session\/test_/)
    const missing = await rejection(stripe.billingPortal.sessions.create({ customer: 'cus_nope' }))
    assert.equal(missing.code, 'resource_missing')
    assert.equal(missing.param, 'customer')
  })
})

test.group('StripeFake | meters and entitlements', (group) => {
  let fake: StripeFake
  let stripe: Stripe
  const NOW = JAN_1_2025 + 10 * DAY // hour aligned
  group.each.setup(async () => {
    fake = await StripeFake.start({ now: NOW })
    stripe = client(fake)
    return () => fake.close()
  })

  test('meter events are validated and deduplicated like Stripe', async ({ assert }) => {
    const meter = await stripe.billing.meters.create({
      display_name: 'API requests',
      event_name: 'api_requests',
      default_aggregation: { formula: 'sum' },
    })
    assert.match(meter.id, /^mtr_/)
    assert.equal(meter.status, 'active')
    assert.equal(meter.customer_mapping.event_payload_key, 'stripe_customer_id')
    const customer = await stripe.customers.create()
    const ok = await stripe.billing.meterEvents.create({
      event_name: 'api_requests',
      payload: { stripe_customer_id: customer.id, value: '5' },
      identifier: 'req-1',
    })
    assert.equal(ok.identifier, 'req-1')
    assert.equal(ok.timestamp, NOW)
    assert.deepEqual(ok.payload, { stripe_customer_id: customer.id, value: '5' })

    const cases: Array<[Stripe.Billing.MeterEventCreateParams, string]> = [
      [{ event_name: 'nope', payload: { stripe_customer_id: customer.id, value: '1' } }, 'event_name'],
      [{ event_name: 'api_requests', payload: { stripe_customer_id: 'cus_nope', value: '1' } }, 'payload[stripe_customer_id]'],
      [{ event_name: 'api_requests', payload: { value: '1' } }, 'payload[stripe_customer_id]'],
      [{ event_name: 'api_requests', payload: { stripe_customer_id: customer.id, value: '1.5' } }, 'payload[value]'],
      [{ event_name: 'api_requests', payload: { stripe_customer_id: customer.id, value: '1' }, timestamp: NOW - 36 * DAY }, 'timestamp'],
      [{ event_name: 'api_requests', payload: { stripe_customer_id: customer.id, value: '1' }, timestamp: NOW + 301 }, 'timestamp'],
      [{ event_name: 'api_requests', payload: { stripe_customer_id: customer.id, value: '1' }, identifier: 'req-1' }, 'identifier'],
    ]
    for (const [params, param] of cases) {
      const error = await rejection(stripe.billing.meterEvents.create(params))
      assert.instanceOf(error, Stripe.errors.StripeInvalidRequestError, param)
      assert.equal(error.statusCode, 400)
      assert.equal(error.param, param)
    }
    await stripe.billing.meterEvents.create({
      event_name: 'api_requests',
      payload: { stripe_customer_id: customer.id, value: '1' },
      timestamp: NOW + 299,
    })
    await stripe.billing.meterEvents.create({
      event_name: 'api_requests',
      payload: { stripe_customer_id: customer.id, value: '1' },
      timestamp: NOW - 35 * DAY + 60,
    })
    // The identifier can be reused once the 24 h window is over.
    fake.advance(DAY + 1)
    await stripe.billing.meterEvents.create({ event_name: 'api_requests', payload: { stripe_customer_id: customer.id, value: '2' }, identifier: 'req-1' })
    assert.lengthOf(fake.store.meterEvents(), 4)

    await stripe.billing.meters.deactivate(meter.id)
    const inactive = await rejection(
      stripe.billing.meterEvents.create({ event_name: 'api_requests', payload: { stripe_customer_id: customer.id, value: '1' } })
    )
    assert.equal(inactive.param, 'event_name')
    const reactivated = await stripe.billing.meters.reactivate(meter.id)
    assert.equal(reactivated.status, 'active')
    assert.deepEqual(
      fake.store.events('billing.meter.*').map((e) => e.type),
      ['billing.meter.created', 'billing.meter.deactivated', 'billing.meter.reactivated']
    )
  })

  test('event summaries aggregate stored events with sum, count and last', async ({ assert }) => {
    const customer = await stripe.customers.create()
    const other = await stripe.customers.create()
    const sum = await stripe.billing.meters.create({ display_name: 'Sum', event_name: 'tokens', default_aggregation: { formula: 'sum' } })
    const count = await stripe.billing.meters.create({ display_name: 'Count', event_name: 'calls', default_aggregation: { formula: 'count' } })
    const last = await stripe.billing.meters.create({ display_name: 'Seats', event_name: 'seats', default_aggregation: { formula: 'last' } })
    const send = (event: string, value: string, at: number, who = customer.id) =>
      stripe.billing.meterEvents.create({ event_name: event, payload: { stripe_customer_id: who, value }, timestamp: at })
    for (const [value, at] of [['5', NOW - 7200 + 10], ['7', NOW - 3600 + 20], ['3', NOW - 3600 + 30]] as const) {
      await send('tokens', value, at)
      await send('calls', value, at)
      await send('seats', value, at)
    }
    await send('tokens', '100', NOW - 60, other.id)
    await send('tokens', '1000', NOW - 7200 - 1)

    const total = await stripe.billing.meters.listEventSummaries(sum.id, { customer: customer.id, start_time: NOW - 7200, end_time: NOW })
    assert.lengthOf(total.data, 1)
    assert.equal(total.data[0].aggregated_value, 15)
    assert.equal(total.data[0].start_time, NOW - 7200)
    assert.equal(total.data[0].end_time, NOW)
    assert.equal(total.data[0].meter, sum.id)
    const hourly = await stripe.billing.meters.listEventSummaries(sum.id, {
      customer: customer.id,
      start_time: NOW - 7200,
      end_time: NOW,
      value_grouping_window: 'hour',
    })
    assert.deepEqual(hourly.data.map((s) => [s.start_time, s.aggregated_value]), [[NOW - 3600, 10], [NOW - 7200, 5]])
    const counted = await stripe.billing.meters.listEventSummaries(count.id, { customer: customer.id, start_time: NOW - 7200, end_time: NOW })
    assert.equal(counted.data[0].aggregated_value, 3)
    const latest = await stripe.billing.meters.listEventSummaries(last.id, { customer: customer.id, start_time: NOW - 7200, end_time: NOW })
    assert.equal(latest.data[0].aggregated_value, 3)
    const misaligned = await rejection(
      stripe.billing.meters.listEventSummaries(sum.id, { customer: customer.id, start_time: NOW - 7199, end_time: NOW })
    )
    assert.equal(misaligned.param, 'start_time')
  })

  test('metered prices bill the period usage at renewal', async ({ assert }) => {
    const meter = await stripe.billing.meters.create({ display_name: 'Tokens', event_name: 'tokens', default_aggregation: { formula: 'sum' } })
    const product = await stripe.products.create({ name: 'Tokens' })
    const price = await stripe.prices.create({
      product: product.id,
      currency: 'usd',
      unit_amount: 3,
      recurring: { interval: 'month', usage_type: 'metered', meter: meter.id },
    })
    const { customer } = await customerWithCard(stripe)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }], expand: ['latest_invoice'] })
    assert.equal(sub.status, 'active')
    assert.equal((sub.latest_invoice as Stripe.Invoice).total, 0)
    assert.notProperty(sub.items.data[0], 'quantity')
    for (const value of ['40', '60']) {
      fake.advance(DAY)
      await stripe.billing.meterEvents.create({ event_name: 'tokens', payload: { stripe_customer_id: customer.id, value } })
    }
    const { invoice } = fake.advanceToPeriodEnd(sub.id)
    // 100 tokens × 3 = 300, for the period that just ended.
    assert.equal(invoice!.lines.data[0].quantity, 100)
    assert.equal(invoice!.lines.data[0].amount, 300)
    assert.deepEqual(invoice!.lines.data[0].period, { start: NOW, end: NOW + 31 * DAY })
    assert.equal(invoice!.amount_paid, 300)
  })

  test('active entitlements follow live subscriptions', async ({ assert }) => {
    const seats = await stripe.entitlements.features.create({ name: 'Seats', lookup_key: 'seats' })
    const sso = await stripe.entitlements.features.create({ name: 'SSO', lookup_key: 'sso' })
    assert.match(seats.id, /^feat_/)
    const duplicate = await rejection(stripe.entitlements.features.create({ name: 'Again', lookup_key: 'seats' }))
    assert.equal(duplicate.param, 'lookup_key')
    const price = await monthlyPrice(stripe, 'Team', 5000)
    const attached = await stripe.products.createFeature(price.product as string, { entitlement_feature: seats.id })
    await stripe.products.createFeature(price.product as string, { entitlement_feature: sso.id })
    assert.match(attached.id, /^prodft_/)
    assert.equal(attached.entitlement_feature.lookup_key, 'seats')
    assert.lengthOf((await stripe.products.listFeatures(price.product as string)).data, 2)

    const { customer } = await customerWithCard(stripe)
    assert.lengthOf((await stripe.entitlements.activeEntitlements.list({ customer: customer.id })).data, 0)
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: price.id }] })
    const active = await stripe.entitlements.activeEntitlements.list({ customer: customer.id })
    assert.deepEqual(active.data.map((e) => e.lookup_key).sort(), ['seats', 'sso'])
    assert.match(active.data[0].id, /^ent_/)
    const summaries = fake.store.events('entitlements.active_entitlement_summary.updated')
    assert.lengthOf(summaries, 1)
    assert.equal((summaries[0].data.object as any).customer, customer.id)

    await stripe.products.deleteFeature(price.product as string, attached.id)
    assert.deepEqual((await stripe.entitlements.activeEntitlements.list({ customer: customer.id })).data.map((e) => e.lookup_key), ['sso'])
    await stripe.subscriptions.cancel(sub.id)
    assert.lengthOf((await stripe.entitlements.activeEntitlements.list({ customer: customer.id })).data, 0)
    assert.lengthOf(fake.store.events('entitlements.active_entitlement_summary.updated'), 3)
  })
})

test.group('StripeFake | events API', (group) => {
  let fake: StripeFake
  let stripe: Stripe
  group.each.setup(async () => {
    fake = await StripeFake.start({ now: JAN_1_2025 })
    stripe = client(fake)
    return () => fake.close()
  })

  test('lists events newest first with type, types[] and created filters', async ({ assert }) => {
    const customer = await stripe.customers.create({ email: 'ada@example.com' }, { idempotencyKey: 'create-ada' })
    fake.advance(60)
    await stripe.customers.update(customer.id, { name: 'Ada' })
    fake.advance(60)
    const product = await stripe.products.create({ name: 'Pro' })
    await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 100 })

    const all = await stripe.events.list()
    assert.deepEqual(all.data.map((e) => e.type), ['price.created', 'product.created', 'customer.updated', 'customer.created'])
    assert.equal(all.url, '/v1/events')
    const created = all.data[3]
    assert.match(created.id, /^evt_/)
    assert.equal(created.object, 'event')
    assert.equal(created.api_version, Stripe.API_VERSION)
    assert.equal(created.created, JAN_1_2025)
    assert.isFalse(created.livemode)
    assert.equal(created.request!.id, customer.lastResponse.requestId)
    assert.equal(created.request!.idempotency_key, 'create-ada')
    assert.equal((created.data.object as Stripe.Customer).id, customer.id)
    assert.notProperty(created.data, 'previous_attributes')
    const updated = all.data[2]
    assert.deepEqual(updated.data.previous_attributes, { name: null })

    assert.deepEqual((await stripe.events.list({ type: 'customer.updated' })).data.map((e) => e.id), [updated.id])
    assert.deepEqual((await stripe.events.list({ type: 'customer.*' })).data.map((e) => e.type), ['customer.updated', 'customer.created'])
    assert.deepEqual(
      (await stripe.events.list({ types: ['product.created', 'price.created'] })).data.map((e) => e.type),
      ['price.created', 'product.created']
    )
    assert.deepEqual(
      (await stripe.events.list({ created: { gte: JAN_1_2025 + 60 } })).data.map((e) => e.type),
      ['price.created', 'product.created', 'customer.updated']
    )
    assert.deepEqual((await stripe.events.list({ created: { lt: JAN_1_2025 + 60 } })).data.map((e) => e.id), [created.id])
    const page = await stripe.events.list({ limit: 1, starting_after: updated.id })
    assert.deepEqual(page.data.map((e) => e.id), [created.id])

    const retrieved = await stripe.events.retrieve(updated.id)
    assert.equal(retrieved.type, 'customer.updated')
    const missing = await stripe.events.retrieve('evt_nope').catch((e) => e)
    assert.equal(missing.code, 'resource_missing')
  })
})

test.group('StripeFake | webhook signatures and delivery', (group) => {
  let fake: StripeFake
  let stripe: Stripe
  group.each.setup(async () => {
    fake = await StripeFake.start()
    stripe = client(fake)
    return () => fake.close()
  })

  test('signPayload produces a header constructEvent accepts; tampering or a wrong secret fails', async ({ assert }) => {
    await stripe.customers.create({ email: 'ada@example.com' })
    const event = fake.store.events('customer.created')[0]
    const body = JSON.stringify(event, null, 2)
    const header = await StripeFake.signPayload(body, SECRET)
    assert.match(header, /^t=\d+,v1=[0-9a-f]{64}$/)
    const verified = stripe.webhooks.constructEvent(body, header, SECRET)
    assert.equal(verified.id, event.id)
    assert.equal(verified.type, 'customer.created')

    assert.throws(
      () => stripe.webhooks.constructEvent(body.replace('ada@example.com', 'eve@example.com'), header, SECRET),
      /No signatures found matching the expected signature/
    )
    assert.throws(() => stripe.webhooks.constructEvent(body, header, 'whsec_other'), /No signatures found/)
    try {
      stripe.webhooks.constructEvent(`${body} `, header, SECRET)
      assert.fail('tampered body verified')
    } catch (error) {
      assert.instanceOf(error, Stripe.errors.StripeSignatureVerificationError)
    }

    // Too old for the default 300 s tolerance.
    const old = await StripeFake.signPayload(body, SECRET, { timestamp: Math.floor(Date.now() / 1000) - 301 })
    assert.throws(() => stripe.webhooks.constructEvent(body, old, SECRET), /Timestamp outside the tolerance zone/)

    // Secret rotation: one v1 per secret, either verifies.
    const rotated = await StripeFake.signPayload(body, ['whsec_old', 'whsec_new'])
    assert.lengthOf(rotated.split(',').filter((p) => p.startsWith('v1=')), 2)
    assert.equal(stripe.webhooks.constructEvent(body, rotated, 'whsec_old').id, event.id)
    assert.equal(stripe.webhooks.constructEvent(body, rotated, 'whsec_new').id, event.id)
  })

  test('deliver POSTs the raw event JSON with a Stripe-Signature header', async ({ assert }) => {
    const server = await receiver()
    try {
      const customer = await stripe.customers.create({ email: 'ada@example.com' })
      const event = fake.store.events('customer.created')[0]
      const result = await fake.deliver(server.url, event.id, { secret: SECRET })
      assert.equal(result.status, 200)
      assert.isTrue(result.ok)
      assert.equal(result.eventId, event.id)
      assert.equal(result.headers['x-handled'], event.id)
      assert.deepEqual(JSON.parse(result.body), { received: true })
      const [got] = server.received
      assert.equal(got.body, JSON.stringify(event, null, 2))
      assert.equal(got.headers['stripe-signature'], result.signature)
      assert.match(String(got.headers['content-type']), /^application\/json/)
      assert.equal(got.verified!.id, event.id)
      assert.equal((got.verified!.data.object as Stripe.Customer).id, customer.id)

      const tampered = await fake.deliver(server.url, event, { secret: SECRET, tamper: true })
      assert.equal(tampered.status, 400)
      assert.match(server.received[1].error!, /No signatures found/)
      const custom = await fake.deliver(server.url, event, { secret: SECRET, tamper: (b) => b.replace(customer.id, 'cus_evil') })
      assert.equal(custom.status, 400)
      const wrongSecret = await fake.deliver(server.url, event, { secret: 'whsec_wrong' })
      assert.equal(wrongSecret.status, 400)
      const rotated = await fake.deliver(server.url, event, { secrets: ['whsec_old', SECRET] })
      assert.equal(rotated.status, 200)
    } finally {
      await server.close()
    }
  })

  test('deliverAll sends every recorded event (or some types) in order', async ({ assert }) => {
    const server = await receiver()
    try {
      const customer = await stripe.customers.create()
      await stripe.customers.update(customer.id, { name: 'Ada' })
      await stripe.products.create({ name: 'Pro' })
      const results = await fake.deliverAll(server.url, { secret: SECRET })
      assert.deepEqual(results.map((r) => r.status), [200, 200, 200])
      assert.deepEqual(server.received.map((r) => r.verified!.type), ['customer.created', 'customer.updated', 'product.created'])
      const only = await fake.deliverAll(server.url, { secret: SECRET, types: ['customer.*'] })
      assert.lengthOf(only, 2)
      assert.deepEqual(server.received.slice(3).map((r) => r.verified!.type), ['customer.created', 'customer.updated'])
    } finally {
      await server.close()
    }
  })

  test('webhook endpoints receive new events automatically and record delivery success', async ({ assert }) => {
    let failing = true
    const server = await receiver({ fail: (event) => failing && event.type === 'customer.updated' })
    try {
      const endpoint = fake.addWebhookEndpoint(server.url, SECRET)
      assert.match(endpoint.id, /^we_/)
      const customer = await stripe.customers.create({ email: 'ada@example.com' })
      await stripe.customers.update(customer.id, { name: 'Ada' })
      await fake.flushWebhooks()
      assert.deepEqual(server.received.map((r) => r.verified!.type), ['customer.created', 'customer.updated'])
      assert.deepEqual(fake.webhookDeliveries.map((d) => [d.eventType, d.status, d.ok]), [
        ['customer.created', 200, true],
        ['customer.updated', 500, false],
      ])

      const failed = await stripe.events.list({ delivery_success: false })
      assert.deepEqual(failed.data.map((e) => e.type), ['customer.updated'])
      assert.equal(failed.data[0].pending_webhooks, 1)
      const delivered = await stripe.events.list({ delivery_success: true })
      assert.deepEqual(delivered.data.map((e) => e.type), ['customer.created'])
      assert.equal(delivered.data[0].pending_webhooks, 0)

      failing = false
      fake.retryFailedWebhooks()
      await fake.flushWebhooks()
      assert.lengthOf((await stripe.events.list({ delivery_success: false })).data, 0)
      assert.equal(server.received.at(-1)!.verified!.type, 'customer.updated')

      fake.removeWebhookEndpoint(endpoint.id)
      await stripe.customers.create()
      await fake.flushWebhooks()
      assert.lengthOf(server.received, 3)
    } finally {
      await server.close()
    }
  })

  test('endpoints can subscribe to some event types only', async ({ assert }) => {
    const server = await receiver()
    try {
      fake.addWebhookEndpoint(server.url, SECRET, { types: ['checkout.session.completed', 'customer.subscription.*'] })
      const product = await stripe.products.create({ name: 'Pro' })
      const price = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 900, recurring: { interval: 'month' } })
      const session = await stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: price.id, quantity: 1 }] })
      fake.completeCheckout(session.id, { email: 'ada@example.com' })
      await fake.flushWebhooks()
      assert.deepEqual(server.received.map((r) => r.verified!.type), ['customer.subscription.created', 'checkout.session.completed'])
      const completed = server.received[1].verified!.data.object as Stripe.Checkout.Session
      assert.equal(completed.id, session.id)
      assert.equal(completed.status, 'complete')
    } finally {
      await server.close()
    }
  })
})

test.group('StripeFake | as strict as Stripe (#10.21)', (group) => {
  let fake: StripeFake
  group.each.setup(async () => {
    fake = await StripeFake.start()
    return () => fake.close()
  })

  test('refuses what Stripe refuses: the wrong shape, unknown enum values, nested metadata, missing nested parameters, "" where nothing can be unset', async ({ assert }) => {
    const stripe = client(fake)
    const product = await stripe.products.create({ name: 'P' })
    const customer = await stripe.customers.create({ email: 'a@example.com' })
    const refused = async (call: Promise<unknown>, pattern: RegExp, param?: string) => {
      const error = await rejection(call)
      assert.equal(error.type, 'StripeInvalidRequestError', String(error.message))
      assert.match(error.message, pattern)
      if (param) assert.equal(error.param, param)
    }
    await refused(stripe.prices.list({ lookup_keys: 'pro_month' as any }), /Invalid array/, 'lookup_keys')
    await refused(
      stripe.checkout.sessions.create({ mode: 'setup', customer: customer.id, currency: 'usd', success_url: 'https://x.test', excluded_payment_method_types: ['card', 'teleport' as any] }),
      /must be one of/,
      'excluded_payment_method_types[1]'
    )
    await refused(stripe.customers.create({ metadata: { plan: { nested: 'x' } as any } }), /metadata values must be strings/, 'metadata[plan]')
    await refused(stripe.customers.create({ metadata: { ['k'.repeat(41)]: 'v' } }), /keys must be at most 40/)
    await refused(stripe.customers.create({ metadata: { k: 'v'.repeat(501) } }), /values must be at most 500/)
    await refused(
      stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 100, transform_quantity: { divide_by: 10 } as any }),
      /Missing required param: transform_quantity\[round\]/,
      'transform_quantity[round]'
    )
    await refused(
      stripe.subscriptions.create({ customer: customer.id, items: [{ price_data: { currency: 'usd', product: product.id } as any }] }),
      /Missing required param: items\[0\]\[price_data\]\[recurring\]/
    )
    await refused(stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_x' }], payment_behavior: '' as any }), /cannot be unset/, 'payment_behavior')
    /**
     * Emptyable parameters and plain strings take ''
     */
    await stripe.customers.update(customer.id, { tax_exempt: '', description: '', metadata: '' })
  })

  test('refuses more than 10 lookup keys, strings over Stripe\'s lengths and idempotency keys over 255 characters', async ({ assert }) => {
    const stripe = client(fake)
    const keys = Array.from({ length: 11 }, (_, index) => `key_${index}`)
    assert.match((await rejection(stripe.prices.list({ lookup_keys: keys }))).message, /at most 10 items/)
    await stripe.prices.list({ lookup_keys: keys.slice(0, 10) })
    assert.match((await rejection(stripe.customers.create({ phone: '5'.repeat(21) }))).message, /phone: must be at most 20 characters/)
    assert.match((await rejection(stripe.customers.create({ description: 'd'.repeat(5001) }))).message, /must be at most 5000 characters/)
    const customer = await stripe.customers.create({ phone: '5'.repeat(20) })
    assert.match(
      (await rejection(stripe.customers.createBalanceTransaction(customer.id, { amount: -100, currency: 'usd', description: 'x'.repeat(351) }))).message,
      /description: must be at most 350/
    )
    assert.match(
      (await rejection(stripe.billing.meters.create({ display_name: 'm'.repeat(251), event_name: 'm', default_aggregation: { formula: 'sum' } }))).message,
      /display_name: must be at most 250/
    )
    const tooLong = await rejection(stripe.customers.create({ email: 'k@example.com' }, { idempotencyKey: 'k'.repeat(256) }))
    assert.match(tooLong.message, /idempotency key: it must be at most 255 characters/)
    await stripe.customers.create({ email: 'k@example.com' }, { idempotencyKey: 'k'.repeat(255) })
  })
})
