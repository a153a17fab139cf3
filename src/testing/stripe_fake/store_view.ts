/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type Stripe from 'stripe'
import type { Engine } from './engine.ts'

/**
 * Read-only access to what the fake stores. Every method returns copies (oldest first), so tests can
 * inspect state without going through the API and without being able to corrupt it.
 */
export class StripeFakeStore {
  #engine: Engine

  constructor(engine: Engine) {
    this.#engine = engine
  }

  /**
   * One object by id (`{ id, object, deleted: true }` for deleted ones), or undefined.
   */
  get<T = Record<string, any>>(id: string): T | undefined {
    const stored = this.#engine.store.get(id)
    if (!stored) return undefined
    if (this.#engine.isDeleted(id)) return { id, object: stored.object, deleted: true } as T
    return this.#engine.render(stored) as T
  }

  /**
   * Every live object whose `object` field is `objectType` (`customer`, `billing.meter`, ...), oldest first.
   */
  list<T = Record<string, any>>(objectType: string): T[] {
    return this.#engine
      .all(objectType)
      .reverse()
      .map((o) => this.#engine.render(o) as T)
  }

  /**
   * Customers, oldest first.
   */
  customers(): Stripe.Customer[] {
    return this.list('customer')
  }

  /**
   * Products, oldest first.
   */
  products(): Stripe.Product[] {
    return this.list('product')
  }

  /**
   * Prices, oldest first.
   */
  prices(): Stripe.Price[] {
    return this.list('price')
  }

  /**
   * Subscriptions (any status), oldest first.
   */
  subscriptions(): Stripe.Subscription[] {
    return this.list('subscription')
  }

  /**
   * Invoices, oldest first.
   */
  invoices(): Stripe.Invoice[] {
    return this.list('invoice')
  }

  /**
   * Payment methods, oldest first.
   */
  paymentMethods(): Stripe.PaymentMethod[] {
    return this.list('payment_method')
  }

  /**
   * Checkout sessions, oldest first.
   */
  checkoutSessions(): Stripe.Checkout.Session[] {
    return this.list('checkout.session')
  }

  /**
   * Billing meters, oldest first.
   */
  meters(): Stripe.Billing.Meter[] {
    return this.list('billing.meter')
  }

  /**
   * Accepted meter events (canceled ones included), in the order received.
   */
  meterEvents(): Stripe.Billing.MeterEvent[] {
    return this.#engine.meterEvents.map((r) => structuredClone(r.event) as Stripe.Billing.MeterEvent)
  }

  /**
   * Recorded events in the order they happened, optionally of some types (`customer.*` allowed).
   */
  events(...types: string[]): Stripe.Event[] {
    const all = this.list<Stripe.Event>('event')
    if (!types.length) return all
    return all.filter((e) => types.some((t) => (t.endsWith('*') ? e.type.startsWith(t.slice(0, -1)) : e.type === t)))
  }
}
