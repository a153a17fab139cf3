/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Billing } from '../billing.ts'
import { customerPaymentMethod, resolvePaymentMethod } from '../cards.ts'
import { invalidRequest } from '../errors.ts'
import type { Engine, Route } from '../engine.ts'
import { search } from '../search.ts'
import { bool, matchesRange, oneOf, type Obj } from '../util.ts'
import { createPrice } from './catalog.ts'

const SUBSCRIPTION_STATUSES = [
  'active',
  'all',
  'canceled',
  'ended',
  'incomplete',
  'incomplete_expired',
  'past_due',
  'paused',
  'trialing',
  'unpaid',
] as const

/**
 * Routes of `/v1/subscriptions`, `/v1/invoices` and `/v1/payment_intents/:id`.
 */
export function subscriptionRoutes(engine: Engine, billing: Billing): Route[] {
  const inlinePrice = (data: Obj, param: string) => createPrice(engine, data, param, true)
  const requireInvoice = (id: unknown) => engine.require(id, 'invoice', 'invoice')
  const invoiceSubscription = (invoice: Obj) => invoice.parent?.subscription_details?.subscription ?? null

  return [
    {
      method: 'POST',
      path: '/v1/subscriptions',
      schema: 'SubscriptionCreateParams',
      handler: (r) => engine.render(billing.createSubscription(r.params, inlinePrice)),
    },
    {
      method: 'GET',
      path: '/v1/subscriptions',
      schema: 'SubscriptionListParams',
      handler: (r) => {
        const status = oneOf(r.params.status, 'status', SUBSCRIPTION_STATUSES)
        const items = engine.all('subscription').filter((s) => {
          if (r.params.customer && s.customer !== r.params.customer) return false
          if (r.params.price && !s.items.data.some((item: Obj) => item.price.id === r.params.price)) return false
          if (r.params.collection_method && s.collection_method !== r.params.collection_method) return false
          if (!matchesRange(s.created, r.params.created, 'created')) return false
          if (status === 'all') return true
          if (status === 'ended') return ['canceled', 'incomplete_expired'].includes(s.status)
          if (status) return s.status === status
          return !['canceled', 'incomplete_expired'].includes(s.status)
        })
        return engine.list(items, r.params, '/v1/subscriptions')
      },
    },
    {
      method: 'GET',
      path: '/v1/subscriptions/search',
      schema: 'SubscriptionSearchParams',
      handler: (r) => search(engine, engine.all('subscription'), r.params, 'subscriptions', ['created', 'metadata', 'status']),
    },
    {
      method: 'GET',
      path: '/v1/subscriptions/:id',
      schema: 'SubscriptionRetrieveParams',
      handler: (r) => engine.render(billing.requireSubscription(r.ids.id)),
    },
    {
      method: 'POST',
      path: '/v1/subscriptions/:id',
      schema: 'SubscriptionUpdateParams',
      handler: (r) => engine.render(billing.updateSubscription(billing.requireSubscription(r.ids.id), r.params, inlinePrice)),
    },
    {
      method: 'DELETE',
      path: '/v1/subscriptions/:id',
      schema: 'SubscriptionCancelParams',
      handler: (r) => {
        const sub = billing.requireSubscription(r.ids.id)
        const details = (r.params.cancellation_details ?? {}) as Obj
        return engine.render(
          billing.cancel(sub, {
            reason: 'cancellation_requested',
            invoiceNow: bool(r.params.invoice_now, 'invoice_now') ?? false,
            prorate: bool(r.params.prorate, 'prorate') ?? false,
            comment: details.comment || null,
            feedback: details.feedback || null,
          })
        )
      },
    },
    {
      method: 'POST',
      path: '/v1/subscriptions/:id/resume',
      schema: 'SubscriptionResumeParams',
      handler: (r) => engine.render(billing.resume(billing.requireSubscription(r.ids.id), r.params)),
    },

    // Invoices
    {
      method: 'GET',
      path: '/v1/invoices',
      schema: 'InvoiceListParams',
      handler: (r) => {
        const status = oneOf(r.params.status, 'status', ['draft', 'open', 'paid', 'uncollectible', 'void'])
        const items = engine
          .all('invoice')
          .filter(
            (i) =>
              (!r.params.customer || i.customer === r.params.customer) &&
              (!r.params.subscription || invoiceSubscription(i) === r.params.subscription) &&
              (!status || i.status === status) &&
              (!r.params.collection_method || i.collection_method === r.params.collection_method) &&
              matchesRange(i.created, r.params.created, 'created')
          )
        return engine.list(items, r.params, '/v1/invoices')
      },
    },
    {
      method: 'GET',
      path: '/v1/invoices/search',
      schema: 'InvoiceSearchParams',
      handler: (r) =>
        search(
          engine,
          engine.all('invoice'),
          r.params,
          'invoices',
          ['created', 'currency', 'customer', 'metadata', 'number', 'receipt_number', 'status', 'subscription', 'total'],
          { subscription: invoiceSubscription }
        ),
    },
    {
      method: 'GET',
      path: '/v1/invoices/upcoming',
      schema: null,
      handler: () => {
        throw invalidRequest(
          'The `/v1/invoices/upcoming` endpoint was removed in API version 2025-03-31.basil. Use `POST /v1/invoices/create_preview` instead.',
          { status: 404 }
        )
      },
    },
    {
      method: 'POST',
      path: '/v1/invoices/create_preview',
      schema: 'InvoiceCreatePreviewParams',
      handler: (r) => billing.preview(r.params, inlinePrice),
    },
    { method: 'GET', path: '/v1/invoices/:id', schema: 'InvoiceRetrieveParams', handler: (r) => engine.render(requireInvoice(r.ids.id)) },
    {
      method: 'GET',
      path: '/v1/invoices/:id/lines',
      schema: 'InvoiceListLineItemsParams',
      handler: (r) => {
        const invoice = requireInvoice(r.ids.id)
        return engine.list(invoice.lines.data, r.params, `/v1/invoices/${invoice.id}/lines`, false)
      },
    },
    {
      method: 'POST',
      path: '/v1/invoices/:id/finalize',
      schema: 'InvoiceFinalizeInvoiceParams',
      handler: (r) => {
        const invoice = requireInvoice(r.ids.id)
        if (invoice.status !== 'draft') {
          throw invalidRequest(`This invoice is already finalized, you can't re-finalize a non-draft invoice.`, {
            code: 'invoice_not_editable',
          })
        }
        billing.finalize(invoice)
        if (invoice.amount_due === 0) billing.pay(invoice, { outOfBand: false })
        engine.save(invoice)
        return engine.render(invoice)
      },
    },
    {
      method: 'POST',
      path: '/v1/invoices/:id/pay',
      schema: 'InvoicePayParams',
      handler: (r) => {
        const invoice = requireInvoice(r.ids.id)
        const customer = engine.store.get(invoice.customer)!
        const pm = r.params.payment_method
          ? customerPaymentMethod(engine, r.params.payment_method, customer) ?? resolvePaymentMethod(engine, r.params.payment_method, 'payment_method')
          : undefined
        billing.pay(invoice, {
          paymentMethod: pm,
          outOfBand: bool(r.params.paid_out_of_band, 'paid_out_of_band') ?? false,
        })
        return engine.render(invoice)
      },
    },
    {
      method: 'POST',
      path: '/v1/invoices/:id/void',
      schema: 'InvoiceVoidInvoiceParams',
      handler: (r) => engine.render(billing.void(requireInvoice(r.ids.id))),
    },
    {
      method: 'GET',
      path: '/v1/payment_intents/:id',
      schema: 'PaymentIntentRetrieveParams',
      handler: (r) => engine.render(engine.require(r.ids.id, 'payment_intent', 'payment_intent')),
    },
  ]
}
