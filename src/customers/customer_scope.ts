/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import Customer from '../models/customer.ts'
import Subscription from '../models/subscription.ts'
import { combinePlanFeatures, isGranted, subscriptionGrants } from '../entitlements/plan_entitlements.ts'
import type { FeatureValue } from '../types.ts'
import { toDbDateTime } from '../models/columns.ts'
import { billableIdentity, type BillableRow } from '../mixins/billable.ts'
import { NotBillableException } from '../errors.ts'
import type { BillingManager } from '../billing_manager.ts'
import debug from '../debug.ts'

/**
 * The customer-scoped billing API returned by `billing.for(billable)`. Later capabilities
 * (subscriptions, usage, entitlements) hang off this object.
 */
export class CustomerScope {
  #manager: BillingManager
  #billable: BillableRow
  #customer?: Customer

  constructor(manager: BillingManager, billable: BillableRow) {
    if (!billable || typeof billable !== 'object' || typeof (billable as any).billingEmail !== 'function') {
      throw new NotBillableException('billing.for() needs a model composed with the Billable mixin')
    }
    if (!billable.$isPersisted || billable.$primaryKeyValue === undefined || billable.$primaryKeyValue === null) {
      throw new NotBillableException('billing.for() needs a persisted model (save it first)')
    }
    this.#manager = manager
    this.#billable = billable
  }

  /**
   * The billable model this scope acts for.
   */
  get billable() {
    return this.#billable
  }

  /**
   * The customer row if it exists, without creating it.
   */
  async find(): Promise<Customer | null> {
    if (this.#customer) return this.#customer
    const { type, id } = billableIdentity(this.#billable)
    const customer = await Customer.query({ client: this.#manager.db() })
      .where('billable_type', type)
      .where('billable_id', id)
      .first()
    if (customer) this.#customer = customer
    return customer
  }

  /**
   * The customer row, created on first use exactly once even when several requests (or app
   * instances) ask at the same time: the insert relies on the unique (billable_type, billable_id)
   * key, and only the writer whose insert lands records the `customer.created` audit row.
   */
  async customer(): Promise<Customer> {
    const found = await this.find()
    if (found) return found

    const { type, id } = billableIdentity(this.#billable)
    const now = toDbDateTime(DateTime.utc())
    const created = await this.#manager.db().transaction(async (trx) => {
      const inserted = await trx
        .knexQuery()
        .table(Customer.table)
        .insert({
          billable_type: type,
          billable_id: id,
          email: this.#billable.billingEmail(),
          name: this.#billable.billingName(),
          currency: this.#manager.config.currency,
          balance: 0,
          entitlement_version: 0,
          created_at: now,
          updated_at: now,
        })
        .onConflict(['billable_type', 'billable_id'])
        .ignore()
        .returning('id')
      if (inserted.length === 0) return null

      const customerId = Number(typeof inserted[0] === 'object' ? inserted[0].id : inserted[0])
      await this.#manager.audit.record(
        {
          action: 'customer.created',
          subject: { type: 'customer', id: customerId },
          customerId,
          after: { billable_type: type, billable_id: id, email: this.#billable.billingEmail() },
        },
        { client: trx }
      )
      trx.after('commit', () => {
        this.#manager.emitter.emit('billing:customer.created' as any, { customerId, billableType: type, billableId: id })
      })
      return customerId
    })
    debug('customer for %s:%s %s', type, id, created ? `created (#${created})` : 'created concurrently elsewhere')

    this.#customer = await Customer.query({ client: this.#manager.db() })
      .where('billable_type', type)
      .where('billable_id', id)
      .firstOrFail()
    return this.#customer
  }

  /**
   * Features granted by the customer's live subscriptions (catalog values combined across
   * subscriptions). Without a customer row, nothing is granted.
   */
  async features(): Promise<{ live: boolean; features: Record<string, FeatureValue> }> {
    const customer = await this.find()
    if (!customer) return { live: false, features: {} }
    const subscriptions = await Subscription.query({ client: this.#manager.db() }).where('customer_id', customer.id)
    const granting = subscriptions.filter((subscription) => subscriptionGrants(subscription, this.#manager.config))
    return {
      live: granting.length > 0,
      features: combinePlanFeatures(
        granting.map((subscription) => subscription.plan),
        this.#manager.config
      ),
    }
  }

  /**
   * `granted`, `no_plan` (no live subscription) or `not_included` (the plans lack the feature).
   */
  async check(feature: string): Promise<'granted' | 'no_plan' | 'not_included'> {
    const { live, features } = await this.features()
    if (isGranted(features[feature])) return 'granted'
    return live ? 'not_included' : 'no_plan'
  }

  /**
   * Whether the customer may use the feature now.
   */
  async can(feature: string): Promise<boolean> {
    return (await this.check(feature)) === 'granted'
  }
}
