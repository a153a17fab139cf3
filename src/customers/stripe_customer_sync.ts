/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { STRIPE_MAX_LENGTH, assertStripeLength } from '../stripe/stripe_limits.ts'
import type { Stripe } from 'stripe'
import { DateTime } from 'luxon'
import Customer from '../models/customer.ts'
import { toDbDateTime } from '../models/columns.ts'
import { StripeGateway } from '../stripe/stripe_gateway.ts'
import type { BillingManager } from '../billing_manager.ts'
import debug from '../debug.ts'

/**
 * Metadata written on every Stripe customer so a webhook can always find its way back.
 */
export function customerMetadata(customer: Customer): Record<string, string> {
  return {
    adonis_billing_customer_id: String(customer.id),
    ...(customer.billableType ? { billable_type: customer.billableType } : {}),
    ...(customer.billableId ? { billable_id: customer.billableId } : {}),
  }
}

/**
 * Details a host may pass when creating or updating the Stripe customer.
 */
export interface StripeCustomerDetails {
  email?: string | null
  name?: string | null
  phone?: string | null
  address?: Stripe.AddressParam
  preferredLocales?: string[]
  metadata?: Record<string, string>
}

/**
 * Customer details longer than Stripe accepts are refused before any request
 */
function assertDetailLengths(details: StripeCustomerDetails) {
  assertStripeLength(details.phone, STRIPE_MAX_LENGTH.customerPhone, 'phone')
  assertStripeLength(details.name, STRIPE_MAX_LENGTH.customerName, 'name')
  assertStripeLength(details.email, STRIPE_MAX_LENGTH.customerEmail, 'email')
}

function customerParams(customer: Customer, details: StripeCustomerDetails): Stripe.CustomerCreateParams {
  assertDetailLengths(details)
  return {
    email: details.email ?? customer.email ?? undefined,
    name: details.name ?? customer.name ?? undefined,
    ...(details.phone ? { phone: details.phone } : {}),
    ...(details.address ? { address: details.address } : {}),
    ...(details.preferredLocales ? { preferred_locales: details.preferredLocales } : {}),
    metadata: { ...details.metadata, ...customerMetadata(customer) },
  }
}

/**
 * Links the local customer to a Stripe customer, creating it when needed. Safe under concurrency
 * and crashes: the create carries an idempotency key derived from the local id (concurrent callers get
 * the same Stripe customer back), an existing Stripe customer carrying our metadata is reused, and
 * the local row is only linked when still unlinked.
 */
export async function ensureStripeCustomer(manager: BillingManager, customer: Customer, details: StripeCustomerDetails = {}) {
  if (customer.stripeCustomerId) return customer.stripeCustomerId
  const params = customerParams(customer, details)

  const stripeCustomer = await manager.stripe.call(async (stripe) => {
    const found = await stripe.customers.search({ query: `metadata['adonis_billing_customer_id']:'${customer.id}'`, limit: 1 })
    if (found.data[0]) return found.data[0]
    return stripe.customers.create(params, { idempotencyKey: StripeGateway.idempotencyKey('customer.create', customer.id, params) })
  })

  await manager.db().transaction(async (trx) => {
    const updated = await trx
      .from(Customer.table)
      .where('id', customer.id)
      .whereNull('stripe_customer_id')
      .update({ stripe_customer_id: stripeCustomer.id, updated_at: DateTime.utc().toISO() })
    if (Number(Array.isArray(updated) ? updated[0] : updated) === 0) return
    await manager.audit.record(
      {
        action: 'customer.stripe_linked',
        subject: { type: 'customer', id: customer.id },
        customerId: customer.id,
        after: { stripe_customer_id: stripeCustomer.id },
      },
      { client: trx }
    )
  })
  await customer.refresh()
  debug('customer #%d linked to %s', customer.id, customer.stripeCustomerId)
  return customer.stripeCustomerId!
}

/**
 * The local customer fields mirrored from a Stripe customer (`currency` falls back to the given one).
 */
function mirroredAttributes(object: Stripe.Customer, fallbackCurrency: string | null, taxIds?: Stripe.TaxId[]) {
  const defaultPaymentMethod = object.invoice_settings?.default_payment_method
  return {
    email: object.email ?? null,
    name: object.name ?? null,
    taxExempt: object.tax_exempt ?? null,
    balance: object.balance ?? 0,
    currency: object.currency ?? fallbackCurrency,
    defaultPaymentMethod: typeof defaultPaymentMethod === 'string' ? defaultPaymentMethod : (defaultPaymentMethod?.id ?? null),
    ...(taxIds ? { taxIds: taxIds.map((taxId) => ({ id: taxId.id, type: taxId.type, value: taxId.value })) } : {}),
  }
}

/**
 * What the audit row of a mirrored change shows.
 */
function auditedFields(customer: Customer) {
  return { email: customer.email, name: customer.name, tax_exempt: customer.taxExempt, balance: customer.balance, currency: customer.currency, default_payment_method: customer.defaultPaymentMethod, tax_ids: customer.taxIds }
}

/**
 * Writes a Stripe customer's details onto the local row (email, name, currency, tax exemption, tax
 * ids, balance, default payment method) inside `trx`, auditing what changed.
 */
export async function applyStripeCustomer(
  manager: BillingManager,
  trx: import('@adonisjs/lucid/types/database').TransactionClientContract,
  customer: Customer,
  object: Stripe.Customer,
  options: { action?: string; taxIds?: Stripe.TaxId[]; observedAt?: DateTime; actor?: import('../types.ts').AuditActor } = {}
) {
  if (customer.stripeUpdatedAt && options.observedAt && customer.stripeUpdatedAt > options.observedAt) return customer
  const before = auditedFields(customer)
  customer.useTransaction(trx)
  customer.merge({ ...mirroredAttributes(object, customer.currency, options.taxIds), stripeUpdatedAt: options.observedAt ?? DateTime.utc() })
  const after = auditedFields(customer)
  await customer.save()
  if (JSON.stringify(before) === JSON.stringify(after)) return customer
  await manager.audit.record(
    { action: options.action ?? 'customer.updated', actor: options.actor, subject: { type: 'customer', id: customer.id }, customerId: customer.id, before, after },
    { client: trx }
  )
  return customer
}

/**
 * PostgreSQL fast path of a webhook's `customer.created`/`customer.updated` for a customer already
 * linked to a billable: the row is locked, compared with the watermark and updated in ONE statement
 * (the old values come back for the audit row). Returns null when the general path must run instead
 * (no local row yet, or an unlinked one that the event may link).
 */
export async function mirrorLinkedStripeCustomer(
  manager: BillingManager,
  trx: import('@adonisjs/lucid/types/database').TransactionClientContract,
  object: Stripe.Customer,
  options: { observedAt: DateTime; actor: import('../types.ts').AuditActor; action: string }
): Promise<Customer | null> {
  const next = mirroredAttributes(object, null)
  const observedAt = toDbDateTime(options.observedAt)
  const result = await trx.rawQuery(
    `with old as (select * from ${Customer.table} where stripe_customer_id = ? for update), ` +
      `updated as (update ${Customer.table} c set email = ?, name = ?, tax_exempt = ?, balance = ?, currency = coalesce(?, c.currency), ` +
      `default_payment_method = ?, stripe_updated_at = ?, updated_at = ? from old where c.id = old.id and old.billable_type is not null ` +
      `and (old.stripe_updated_at is null or old.stripe_updated_at <= ?) returning c.id) ` +
      `select old.*, (select count(*) from updated) as mirrored from old`,
    [object.id, next.email, next.name, next.taxExempt, next.balance, next.currency, next.defaultPaymentMethod, observedAt, toDbDateTime(DateTime.utc()), observedAt] as any[]
  )
  const row = result.rows[0]
  if (!row || row.billable_type === null) return null
  const mirrored = Number(row.mirrored) > 0
  delete row.mirrored
  const customer = Customer.$createFromAdapterResult(row, undefined, { client: trx })!
  if (!mirrored) return customer
  const before = auditedFields(customer)
  customer.merge({ ...next, currency: next.currency ?? customer.currency, stripeUpdatedAt: options.observedAt })
  customer.$hydrateOriginals()
  const after = auditedFields(customer)
  if (JSON.stringify(before) !== JSON.stringify(after)) {
    await manager.audit.record(
      { action: options.action, actor: options.actor, subject: { type: 'customer', id: customer.id }, customerId: customer.id, before, after },
      { client: trx }
    )
  }
  return customer
}

/**
 * Runs a Stripe customer mutation and mirrors the result locally.
 */
export async function updateStripeCustomer(
  manager: BillingManager,
  customer: Customer,
  action: string,
  mutate: (stripe: Stripe, stripeCustomerId: string, key: (operation: string, params: unknown) => { idempotencyKey: string }) => Promise<unknown>
) {
  const stripeCustomerId = await ensureStripeCustomer(manager, customer)
  /**
   * Keys are scoped to the local row's version: a retry of the same call replays, while the same
   * change made again later (after the row moved on) is a new request.
   */
  const version = `${customer.id}:${customer.updatedAt.toMillis()}:${customer.balance}`
  const key = (operation: string, params: unknown) => ({ idempotencyKey: StripeGateway.idempotencyKey(operation, version, params) })
  const { object, taxIds } = await manager.stripe.call(async (stripe) => {
    await mutate(stripe, stripeCustomerId, key)
    const [fresh, ids] = await Promise.all([
      stripe.customers.retrieve(stripeCustomerId),
      stripe.customers.listTaxIds(stripeCustomerId, { limit: 100 }),
    ])
    return { object: fresh as Stripe.Customer, taxIds: ids.data }
  })
  return manager.db().transaction((trx) => applyStripeCustomer(manager, trx, customer, object, { action, taxIds }))
}

/**
 * Customer detail parameters for Stripe.
 */
export function detailParams(details: StripeCustomerDetails): Stripe.CustomerUpdateParams {
  assertDetailLengths(details)
  return {
    ...(details.email !== undefined ? { email: details.email ?? '' } : {}),
    ...(details.name !== undefined ? { name: details.name ?? '' } : {}),
    ...(details.phone !== undefined ? { phone: details.phone ?? '' } : {}),
    ...(details.address ? { address: details.address } : {}),
    ...(details.preferredLocales ? { preferred_locales: details.preferredLocales } : {}),
    ...(details.metadata ? { metadata: details.metadata } : {}),
  }
}

/**
 * Attaches a payment method (test tokens such as `pm_card_visa` become a new id) and makes it the
 * customer's default for invoices, mirrored on the local row with its audit row.
 */
export async function setDefaultPaymentMethod(manager: BillingManager, customer: Customer, paymentMethod: string) {
  return updateStripeCustomer(manager, customer, 'customer.default_payment_method_changed', async (stripe, id, key) => {
    const attached = await stripe.paymentMethods.attach(paymentMethod, { customer: id }, key('payment_method.attach', paymentMethod))
    const params = { invoice_settings: { default_payment_method: attached.id } }
    return stripe.customers.update(id, params, key('customer.default_payment_method', params))
  })
}
