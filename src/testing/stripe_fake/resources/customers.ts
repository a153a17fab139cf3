/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Billing } from '../billing.ts'
import {
  attachPaymentMethod,
  createCardPaymentMethod,
  customerPaymentMethod,
  declineError,
  resolvePaymentMethod,
  testCardFor,
} from '../cards.ts'
import { invalidRequest, missingParameter } from '../errors.ts'
import type { Engine, Route } from '../engine.ts'
import { search } from '../search.ts'
import { applyMetadata, arr, int, matchesRange, nullableStr, oneOf, randomToken, str, type Obj } from '../util.ts'

const EMPTY_ADDRESS = { city: null, country: null, line1: null, line2: null, postal_code: null, state: null }

function address(value: unknown, current: Obj | null, param: string): Obj | null {
  if (value === undefined) return current
  if (value === '' || value === null) return null
  const v = value as Obj
  const out: Obj = { ...EMPTY_ADDRESS, ...(current ?? {}) }
  for (const key of Object.keys(EMPTY_ADDRESS)) {
    if (v[key] !== undefined) out[key] = nullableStr(v[key], `${param}[${key}]`) ?? null
  }
  return out
}

function shipping(value: unknown, current: Obj | null): Obj | null {
  if (value === undefined) return current
  if (value === '' || value === null) return null
  const v = value as Obj
  if (!v.name) throw missingParameter('shipping[name]')
  if (!v.address) throw missingParameter('shipping[address]')
  return { address: address(v.address, null, 'shipping[address]'), name: String(v.name), phone: v.phone ? String(v.phone) : null }
}

/**
 * The country Stripe derives for a tax id.
 */
function taxIdCountry(type: string, value: string): string | null {
  if (type === 'eu_vat') {
    const prefix = value.slice(0, 2).toUpperCase()
    return prefix === 'EL' ? 'GR' : prefix
  }
  const [country] = type.split('_')
  return country && country.length === 2 ? country.toUpperCase() : null
}

/**
 * Creates and stores a customer tax id (test-mode verification: `...111111111` unverified,
 * `...000000000` unavailable, otherwise verified).
 */
export function createTaxId(engine: Engine, customer: Obj, params: Obj, prefix = ''): Obj {
  const p = (name: string) => (prefix ? `${prefix}[${name}]` : name)
  const type = str(params.type, p('type'))
  const value = str(params.value, p('value'))
  if (!type) throw missingParameter(p('type'))
  if (!value) throw missingParameter(p('value'))
  const taxId = engine.fixture('tax_id')
  const status = value.endsWith('111111111') ? 'unverified' : value.endsWith('000000000') ? 'unavailable' : 'verified'
  Object.assign(taxId, {
    id: engine.id('txi_'),
    object: 'tax_id',
    country: taxIdCountry(type, value),
    created: engine.now(),
    customer: customer.id,
    livemode: false,
    owner: { customer: customer.id, type: 'customer', customer_account: null },
    type,
    value,
    verification: ['eu_vat', 'gb_vat', 'au_abn', 'ch_vat', 'no_vat'].includes(type)
      ? { status, verified_address: status === 'verified' ? '123 TEST STREET' : null, verified_name: status === 'verified' ? 'TEST' : null }
      : null,
    customer_account: null,
  })
  engine.save(taxId)
  engine.emit('customer.tax_id.created', taxId)
  return taxId
}

/**
 * Creates and stores a customer (`POST /v1/customers`, checkout completion).
 */
export function createCustomer(engine: Engine, params: Obj): Obj {
  // A declining card fails the whole request before anything is created.
  if (params.payment_method) {
    const card = testCardFor(String(params.payment_method))
    const stored = engine.find(params.payment_method, 'payment_method')
    if (!stored && !card) resolvePaymentMethod(engine, params.payment_method, 'payment_method')
    if (card?.behavior === 'decline' && !stored) throw declineError(card)
  }
  const customer = engine.fixture('customer')
  const id = engine.id('cus_', 14)
  Object.assign(customer, {
    id,
    object: 'customer',
    address: address(params.address, null, 'address'),
    balance: int(params.balance, 'balance') ?? 0,
    created: engine.now(),
    currency: null,
    default_source: null,
    delinquent: false,
    description: nullableStr(params.description, 'description') ?? null,
    discount: null,
    email: nullableStr(params.email, 'email') ?? null,
    invoice_prefix: str(params.invoice_prefix, 'invoice_prefix') ?? randomToken(8).toUpperCase().replace(/[^A-Z0-9]/g, 'X'),
    invoice_settings: {
      custom_fields: null,
      default_payment_method: null,
      footer: params.invoice_settings?.footer ? String(params.invoice_settings.footer) : null,
      rendering_options: null,
    },
    livemode: false,
    metadata: applyMetadata({}, params.metadata),
    name: nullableStr(params.name, 'name') ?? null,
    next_invoice_sequence: int(params.next_invoice_sequence, 'next_invoice_sequence') ?? 1,
    phone: nullableStr(params.phone, 'phone') ?? null,
    preferred_locales: (arr(params.preferred_locales) ?? []).map(String),
    shipping: shipping(params.shipping, null),
    tax_exempt: oneOf(params.tax_exempt, 'tax_exempt', ['exempt', 'none', 'reverse']) ?? 'none',
    test_clock: null,
    customer_account: null,
  })
  engine.save(customer)
  engine.emit('customer.created', customer)
  let attached: Obj | null = null
  if (params.payment_method) attached = attachPaymentMethod(engine, params.payment_method, customer, 'payment_method')
  const defaultPm = params.invoice_settings?.default_payment_method
  if (defaultPm) {
    const pm = attached && defaultPm === params.payment_method ? attached : customerPaymentMethod(engine, defaultPm, customer)
    if (!pm) {
      throw invalidRequest(`No such PaymentMethod: '${defaultPm}'`, {
        param: 'invoice_settings[default_payment_method]',
        code: 'resource_missing',
      })
    }
    customer.invoice_settings.default_payment_method = pm.id
  }
  for (const [i, data] of ((arr(params.tax_id_data) ?? []) as Obj[]).entries()) {
    createTaxId(engine, customer, data ?? {}, `tax_id_data[${i}]`)
  }
  return customer
}

/**
 * Routes of `/v1/customers` (with tax ids and payment methods) and `/v1/payment_methods`.
 */
export function customerRoutes(engine: Engine, billing: Billing): Route[] {
  const requireCustomer = (id: unknown) => engine.require(id, 'customer', 'customer')

  engine.virtuals.set('customer.subscriptions', (c) =>
    engine.list(engine.all('subscription').filter((s) => s.customer === c.id && s.status !== 'canceled'), {}, `/v1/customers/${c.id}/subscriptions`)
  )
  engine.virtuals.set('customer.tax_ids', (c) =>
    engine.list(engine.all('tax_id').filter((t) => t.customer === c.id), {}, `/v1/customers/${c.id}/tax_ids`)
  )

  const updateCustomer = (customer: Obj, params: Obj) => {
    const defaultPm = params.invoice_settings?.default_payment_method
    let resolvedDefault: string | null = null
    if (defaultPm) {
      const attached = customerPaymentMethod(engine, defaultPm, customer)
      resolvedDefault = attached?.id ?? null
      if (!attached) {
        throw invalidRequest(`No such PaymentMethod: '${defaultPm}'`, {
          param: 'invoice_settings[default_payment_method]',
          code: 'resource_missing',
        })
      }
    }
    engine.change(
      customer,
      (c) => {
        if (params.address !== undefined) c.address = address(params.address, c.address, 'address')
        if (params.balance !== undefined) c.balance = int(params.balance, 'balance')
        for (const key of ['description', 'email', 'name', 'phone']) {
          if (params[key] !== undefined) c[key] = nullableStr(params[key], key)
        }
        if (params.invoice_prefix !== undefined) c.invoice_prefix = str(params.invoice_prefix, 'invoice_prefix')
        if (params.metadata !== undefined) c.metadata = applyMetadata(c.metadata, params.metadata)
        if (params.preferred_locales !== undefined) c.preferred_locales = (arr(params.preferred_locales) ?? []).map(String)
        if (params.shipping !== undefined) c.shipping = shipping(params.shipping, c.shipping)
        if (params.tax_exempt !== undefined) c.tax_exempt = oneOf(params.tax_exempt, 'tax_exempt', ['exempt', 'none', 'reverse'])
        if (params.next_invoice_sequence !== undefined) c.next_invoice_sequence = int(params.next_invoice_sequence, 'next_invoice_sequence')
        if (params.invoice_settings !== undefined) {
          const s = params.invoice_settings as Obj | ''
          if (s === '') {
            c.invoice_settings.default_payment_method = null
          } else {
            if (s.default_payment_method !== undefined) c.invoice_settings.default_payment_method = resolvedDefault
            if (s.footer !== undefined) c.invoice_settings.footer = s.footer || null
          }
        }
      },
      'customer.updated'
    )
    return engine.render(customer)
  }

  const deleteCustomer = (customer: Obj) => {
    for (const sub of engine.all('subscription')) {
      if (sub.customer === customer.id && !['canceled', 'incomplete_expired'].includes(sub.status)) {
        billing.cancel(sub, { reason: 'cancellation_requested' })
      }
    }
    engine.markDeleted(customer.id)
    engine.emit('customer.deleted', customer)
    return Object.assign(engine.fixture('deleted_customer'), { id: customer.id, object: 'customer', deleted: true })
  }

  const createPaymentMethod = (params: Obj) => {
    if (params.type !== 'card') {
      throw invalidRequest('StripeFake only simulates `type=card` payment methods.', { param: 'type' })
    }
    if (params.customer !== undefined || params.payment_method !== undefined) {
      throw invalidRequest('StripeFake does not simulate cloning payment methods (Connect).', { param: 'customer' })
    }
    const card = (params.card ?? {}) as Obj
    const reference = card.token ?? card.number
    if (!reference) throw missingParameter('card')
    const testCard = testCardFor(String(reference))
    if (!testCard) {
      throw invalidRequest(`No such token: '${reference}'`, { param: card.token ? 'card[token]' : 'card[number]', code: 'resource_missing' })
    }
    const pm = createCardPaymentMethod(engine, testCard, {
      metadata: applyMetadata({}, params.metadata),
      allow_redisplay: params.allow_redisplay ?? 'unspecified',
    })
    if (params.billing_details) {
      const b = params.billing_details as Obj
      pm.billing_details = {
        address: address(b.address, null, 'billing_details[address]') ?? { ...EMPTY_ADDRESS },
        email: b.email || null,
        name: b.name || null,
        phone: b.phone || null,
        tax_id: b.tax_id || null,
      }
    }
    if (card.exp_month !== undefined) pm.card.exp_month = int(card.exp_month, 'card[exp_month]')
    if (card.exp_year !== undefined) pm.card.exp_year = int(card.exp_year, 'card[exp_year]')
    return engine.render(pm)
  }

  return [
    { method: 'POST', path: '/v1/customers', schema: 'CustomerCreateParams', handler: (r) => engine.render(createCustomer(engine, r.params)) },
    {
      method: 'GET',
      path: '/v1/customers',
      schema: 'CustomerListParams',
      handler: (r) => {
        const email = str(r.params.email, 'email')
        const items = engine
          .all('customer')
          .filter((c) => (email === undefined || c.email === email) && matchesRange(c.created, r.params.created, 'created'))
        return engine.list(items, r.params, '/v1/customers')
      },
    },
    {
      method: 'GET',
      path: '/v1/customers/search',
      schema: 'CustomerSearchParams',
      handler: (r) => search(engine, engine.all('customer'), r.params, 'customers', ['created', 'email', 'metadata', 'name', 'phone']),
    },
    {
      method: 'GET',
      path: '/v1/customers/:id',
      schema: 'CustomerRetrieveParams',
      handler: (r) => {
        const stored = engine.store.get(r.ids.id)
        if (stored?.object === 'customer' && engine.isDeleted(stored.id)) return { id: stored.id, object: 'customer', deleted: true }
        return engine.render(requireCustomer(r.ids.id))
      },
    },
    {
      method: 'POST',
      path: '/v1/customers/:id',
      schema: 'CustomerUpdateParams',
      handler: (r) => updateCustomer(requireCustomer(r.ids.id), r.params),
    },
    {
      method: 'DELETE',
      path: '/v1/customers/:id',
      schema: 'CustomerDeleteParams',
      handler: (r) => deleteCustomer(requireCustomer(r.ids.id)),
    },
    {
      method: 'POST',
      path: '/v1/customers/:id/tax_ids',
      schema: 'CustomerCreateTaxIdParams',
      handler: (r) => engine.render(createTaxId(engine, requireCustomer(r.ids.id), r.params)),
    },
    {
      method: 'GET',
      path: '/v1/customers/:id/tax_ids',
      schema: 'CustomerListTaxIdsParams',
      handler: (r) => {
        const customer = requireCustomer(r.ids.id)
        return engine.list(engine.all('tax_id').filter((t) => t.customer === customer.id), r.params, `/v1/customers/${customer.id}/tax_ids`)
      },
    },
    {
      method: 'GET',
      path: '/v1/customers/:customer/tax_ids/:id',
      schema: 'CustomerRetrieveTaxIdParams',
      handler: (r) => {
        const taxId = engine.require(r.ids.id, 'tax_id', 'tax_id')
        if (taxId.customer !== r.ids.customer) throw invalidRequest(`No such tax_id: '${r.ids.id}'`, { code: 'resource_missing', param: 'id', status: 404 })
        return engine.render(taxId)
      },
    },
    {
      method: 'DELETE',
      path: '/v1/customers/:customer/tax_ids/:id',
      schema: 'CustomerDeleteTaxIdParams',
      handler: (r) => {
        const taxId = engine.require(r.ids.id, 'tax_id', 'tax_id')
        if (taxId.customer !== r.ids.customer) throw invalidRequest(`No such tax_id: '${r.ids.id}'`, { code: 'resource_missing', param: 'id', status: 404 })
        engine.markDeleted(taxId.id)
        engine.emit('customer.tax_id.deleted', taxId)
        return Object.assign(engine.fixture('deleted_tax_id'), { id: taxId.id, object: 'tax_id', deleted: true })
      },
    },
    {
      method: 'POST',
      path: '/v1/customers/:id/balance_transactions',
      schema: 'CustomerCreateBalanceTransactionParams',
      handler: (r) => {
        const customer = requireCustomer(r.ids.id)
        const amount = int(r.params.amount, 'amount')!
        const currency = str(r.params.currency, 'currency')!.toLowerCase()
        if (customer.currency && customer.currency !== currency) {
          throw invalidRequest(`The customer's currency is ${customer.currency}; balance transactions must use it.`, { param: 'currency' })
        }
        const transaction = billing.balanceTransaction(customer, amount, {
          type: 'adjustment',
          currency,
          description: str(r.params.description, 'description') ?? null,
          metadata: r.params.metadata !== undefined ? applyMetadata({}, r.params.metadata) : null,
        })
        return engine.render(transaction)
      },
    },
    {
      method: 'GET',
      path: '/v1/customers/:id/balance_transactions',
      schema: 'CustomerListBalanceTransactionsParams',
      handler: (r) => {
        const customer = requireCustomer(r.ids.id)
        const items = engine
          .all('customer_balance_transaction')
          .filter((t) => t.customer === customer.id && (!r.params.invoice || t.invoice === r.params.invoice))
        return engine.list(items, r.params, `/v1/customers/${customer.id}/balance_transactions`)
      },
    },
    {
      method: 'GET',
      path: '/v1/customers/:id/payment_methods',
      schema: 'CustomerListPaymentMethodsParams',
      handler: (r) => {
        const customer = requireCustomer(r.ids.id)
        const items = engine
          .all('payment_method')
          .filter((pm) => pm.customer === customer.id && (!r.params.type || pm.type === r.params.type))
        return engine.list(items, r.params, `/v1/customers/${customer.id}/payment_methods`)
      },
    },

    // Payment methods
    { method: 'POST', path: '/v1/payment_methods', schema: 'PaymentMethodCreateParams', handler: (r) => createPaymentMethod(r.params) },
    {
      method: 'GET',
      path: '/v1/payment_methods',
      schema: 'PaymentMethodListParams',
      handler: (r) => {
        const customer = r.params.customer ? engine.require(r.params.customer, 'customer', 'customer', 'customer', 400) : null
        const items = engine
          .all('payment_method')
          .filter((pm) => (!customer || pm.customer === customer.id) && (!r.params.type || pm.type === r.params.type))
        return engine.list(customer ? items : [], r.params, '/v1/payment_methods')
      },
    },
    {
      method: 'GET',
      path: '/v1/payment_methods/:id',
      schema: 'PaymentMethodRetrieveParams',
      handler: (r) => engine.render(resolvePaymentMethod(engine, r.ids.id)),
    },
    {
      method: 'POST',
      path: '/v1/payment_methods/:id/attach',
      schema: 'PaymentMethodAttachParams',
      handler: (r) => {
        if (!r.params.customer) throw missingParameter('customer')
        const customer = engine.require(r.params.customer, 'customer', 'customer', 'customer', 400)
        return engine.render(attachPaymentMethod(engine, r.ids.id, customer))
      },
    },
    {
      method: 'POST',
      path: '/v1/payment_methods/:id/detach',
      schema: 'PaymentMethodDetachParams',
      handler: (r) => {
        const pm = engine.require(r.ids.id, 'payment_method', 'PaymentMethod')
        if (!pm.customer) {
          throw invalidRequest('The payment method you provided is not attached to a customer so detachment is impossible.', {
            code: 'payment_method_unexpected_state',
          })
        }
        const customer = engine.store.get(pm.customer)
        const previous = engine.render(pm)
        pm.customer = null
        engine.emit('payment_method.detached', pm, { customer: previous.customer })
        if (customer && customer.invoice_settings?.default_payment_method === pm.id) {
          engine.change(customer, (c) => (c.invoice_settings.default_payment_method = null), 'customer.updated')
        }
        return engine.render(pm)
      },
    },
  ]
}
