/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { DateTime } from 'luxon'
import { BaseModel, column, hasMany } from '@adonisjs/lucid/orm'
import type { HasMany } from '@adonisjs/lucid/types/relations'
import { json, minorUnits, utcDateTime } from './columns.ts'
import Subscription from './subscription.ts'
import Invoice from './invoice.ts'

/**
 * A host billable (user, team, ...) and its Stripe customer. `billableType`/`billableId` are null
 * while a Stripe customer seen in a webhook is not linked to a billable yet.
 */
export default class Customer extends BaseModel {
  static table = 'billing_customers'

  @column({ isPrimary: true })
  declare id: number

  @column()
  declare billableType: string | null

  @column()
  declare billableId: string | null

  @column()
  declare stripeCustomerId: string | null

  @column()
  declare email: string | null

  @column()
  declare name: string | null

  @column()
  declare currency: string | null

  @column()
  declare taxExempt: string | null

  @json()
  declare taxIds: Array<{ id: string; type: string; value: string }> | null

  @minorUnits()
  declare balance: number

  @column()
  declare defaultPaymentMethod: string | null

  @json()
  declare metadata: Record<string, string> | null

  /**
   * Bumped in the same transaction as every change that may alter entitlements.
   */
  @column()
  declare entitlementVersion: number

  /**
   * Lookup keys of the customer's active Stripe Entitlements (`entitlements.source: 'stripe'`).
   */
  @json()
  declare stripeEntitlements: string[] | null

  @utcDateTime()
  declare stripeUpdatedAt: DateTime | null

  @utcDateTime({ autoCreate: true })
  declare createdAt: DateTime

  @utcDateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime

  @hasMany(() => Subscription)
  declare subscriptions: HasMany<typeof Subscription>

  @hasMany(() => Invoice)
  declare invoices: HasMany<typeof Invoice>
}
