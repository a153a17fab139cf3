/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { cardError, invalidRequest, resourceMissing } from './errors.ts'
import type { Engine } from './engine.ts'
import type { Obj } from './util.ts'

/**
 * What happens when the fake charges a card.
 * - `ok`: charges succeed;
 * - `decline`: attaching and charging fail with `card_declined` (Stripe's 4000000000000002 family);
 * - `decline_on_charge`: attaching succeeds, charges fail (4000000000000341);
 * - `sca`: every charge needs 3-D Secure (4000002760003184, 4000000000003220).
 */
export type CardBehavior = 'ok' | 'decline' | 'decline_on_charge' | 'sca'

/**
 * One of Stripe's test cards.
 */
export interface TestCard {
  name: string
  number: string
  brand: string
  funding: 'credit' | 'debit'
  country: string
  behavior: CardBehavior
  declineCode?: string
}

/**
 * Stripe's test cards the fake knows, by the suffix of their `pm_card_*` / `tok_*` test ids.
 */
export const TEST_CARDS: readonly TestCard[] = [
  { name: 'visa', number: '4242424242424242', brand: 'visa', funding: 'credit', country: 'US', behavior: 'ok' },
  { name: 'visa_debit', number: '4000056655665556', brand: 'visa', funding: 'debit', country: 'US', behavior: 'ok' },
  { name: 'mastercard', number: '5555555555554444', brand: 'mastercard', funding: 'credit', country: 'US', behavior: 'ok' },
  { name: 'amex', number: '378282246310005', brand: 'amex', funding: 'credit', country: 'US', behavior: 'ok' },
  { name: 'fr', number: '4000002500000003', brand: 'visa', funding: 'credit', country: 'FR', behavior: 'ok' },
  { name: 'de', number: '4000002760000016', brand: 'visa', funding: 'credit', country: 'DE', behavior: 'ok' },
  { name: 'chargeDeclined', number: '4000000000000002', brand: 'visa', funding: 'credit', country: 'US', behavior: 'decline', declineCode: 'generic_decline' },
  { name: 'visa_chargeDeclined', number: '4000000000000002', brand: 'visa', funding: 'credit', country: 'US', behavior: 'decline', declineCode: 'generic_decline' },
  { name: 'chargeDeclinedInsufficientFunds', number: '4000000000009995', brand: 'visa', funding: 'credit', country: 'US', behavior: 'decline', declineCode: 'insufficient_funds' },
  { name: 'chargeDeclinedExpiredCard', number: '4000000000000069', brand: 'visa', funding: 'credit', country: 'US', behavior: 'decline', declineCode: 'expired_card' },
  { name: 'chargeCustomerFail', number: '4000000000000341', brand: 'visa', funding: 'credit', country: 'US', behavior: 'decline_on_charge', declineCode: 'generic_decline' },
  { name: 'authenticationRequired', number: '4000002760003184', brand: 'visa', funding: 'credit', country: 'DE', behavior: 'sca' },
  { name: 'threeDSecure2Required', number: '4000000000003220', brand: 'visa', funding: 'credit', country: 'US', behavior: 'sca' },
]

const DECLINE_MESSAGES: Record<string, string> = {
  generic_decline: 'Your card was declined.',
  insufficient_funds: 'Your card has insufficient funds.',
  expired_card: 'Your card has expired.',
}

/**
 * The test card behind `pm_card_<name>`, `tok_<name>` or a test card number.
 */
export function testCardFor(reference: string): TestCard | undefined {
  const name = reference.replace(/^(pm_card_|tok_)/, '')
  if (name !== reference) return TEST_CARDS.find((card) => card.name === name)
  const digits = reference.replace(/\s+/g, '')
  return TEST_CARDS.find((card) => card.number === digits)
}

/**
 * The 402 Stripe answers when a card is declined.
 */
export function declineError(card: { declineCode?: string }, extra?: Obj) {
  const declineCode = card.declineCode ?? 'generic_decline'
  const code = declineCode === 'expired_card' ? 'expired_card' : 'card_declined'
  return cardError(DECLINE_MESSAGES[declineCode] ?? DECLINE_MESSAGES.generic_decline, code, declineCode, extra)
}

/**
 * How a stored payment method behaves when charged.
 */
export function behaviorOf(engine: Engine, paymentMethod: Obj): TestCard {
  return (engine.meta(paymentMethod.id).card as TestCard | undefined) ?? TEST_CARDS[0]
}

/**
 * Builds and stores a card payment method for a test card.
 */
export function createCardPaymentMethod(engine: Engine, card: TestCard, extra: Obj = {}): Obj {
  const pm = engine.fixture('payment_method')
  const id = engine.id('pm_')
  Object.assign(pm, {
    id,
    object: 'payment_method',
    allow_redisplay: 'unspecified',
    billing_details: {
      address: { city: null, country: null, line1: null, line2: null, postal_code: null, state: null },
      email: null,
      name: null,
      phone: null,
      tax_id: null,
    },
    card: {
      ...pm.card,
      brand: card.brand,
      checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: 'pass' },
      country: card.country,
      display_brand: card.brand,
      exp_month: 12,
      exp_year: new Date(engine.now() * 1000).getUTCFullYear() + 3,
      fingerprint: `fp${card.number.slice(-8)}${card.name.length}`.slice(0, 16),
      funding: card.funding,
      generated_from: null,
      last4: card.number.slice(-4),
      networks: { available: [card.brand], preferred: null },
      three_d_secure_usage: { supported: true },
      wallet: null,
      regulated_status: 'unregulated',
    },
    created: engine.now(),
    customer: null,
    livemode: false,
    metadata: {},
    type: 'card',
    customer_account: null,
  })
  Object.assign(pm, extra)
  engine.meta(id).card = card
  return engine.save(pm)
}

/**
 * Resolves a payment method reference: a stored `pm_...` or one of Stripe's magic test ids
 * (`pm_card_visa`), which materialises a new payment method like Stripe does.
 */
export function resolvePaymentMethod(engine: Engine, reference: unknown, param = 'id'): Obj {
  const id = String(reference ?? '')
  const stored = engine.find(id, 'payment_method')
  if (stored) return stored
  if (id.startsWith('pm_card_')) {
    const card = testCardFor(id)
    if (card) return createCardPaymentMethod(engine, card)
  }
  throw resourceMissing('PaymentMethod', id, param, param === 'id' ? 404 : 400)
}

/**
 * The customer's payment method behind a reference: its id, or a magic test id (`pm_card_visa`)
 * the customer attached before (the fake remembers which payment method each magic id became, so
 * code that attaches `pm_card_visa` and then sets it as default keeps working).
 */
export function customerPaymentMethod(engine: Engine, reference: unknown, customer: Obj): Obj | undefined {
  const id = String(reference ?? '')
  const mapped = (engine.meta(customer.id).magicPaymentMethods ?? {})[id]
  const pm = engine.find(mapped ?? id, 'payment_method')
  return pm && pm.customer === customer.id ? pm : undefined
}

/**
 * Attaches a payment method to a customer, failing like Stripe for cards that decline on attach.
 */
export function attachPaymentMethod(engine: Engine, reference: unknown, customer: Obj, param = 'id'): Obj {
  const id = String(reference ?? '')
  let pm = engine.find(id, 'payment_method')
  if (!pm && id.startsWith('pm_card_')) {
    const card = testCardFor(id)
    if (!card) throw resourceMissing('PaymentMethod', id, param, param === 'id' ? 404 : 400)
    if (card.behavior === 'decline') throw declineError(card)
    pm = createCardPaymentMethod(engine, card)
    const meta = engine.meta(customer.id)
    meta.magicPaymentMethods = { ...(meta.magicPaymentMethods ?? {}), [id]: pm.id }
  }
  if (!pm) throw resourceMissing('PaymentMethod', id, param, param === 'id' ? 404 : 400)
  if (pm.customer && pm.customer !== customer.id) {
    throw invalidRequest(
      'The payment method you provided has already been attached to a customer.',
      { param, code: 'payment_method_unexpected_state' }
    )
  }
  if (pm.customer === customer.id) return pm
  const card = behaviorOf(engine, pm)
  if (card.behavior === 'decline') throw declineError(card)
  pm.customer = customer.id
  engine.emit('payment_method.attached', pm)
  return pm
}
