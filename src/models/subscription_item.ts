/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { DateTime } from 'luxon'
import { BaseModel, column } from '@adonisjs/lucid/orm'
import { utcDateTime } from './columns.ts'

/**
 * One price on a subscription. Since Stripe API 2025-03-31 the billing period lives on items.
 */
export default class SubscriptionItem extends BaseModel {
  static table = 'billing_subscription_items'

  @column({ isPrimary: true })
  declare id: number

  @column()
  declare subscriptionId: number

  @column()
  declare stripeItemId: string | null

  @column()
  declare stripeProductId: string | null

  @column()
  declare stripePriceId: string | null

  /**
   * Lookup key of the catalog price (`pro_month`, `pro_api_calls`).
   */
  @column()
  declare priceKey: string | null

  @column()
  declare meter: string | null

  @column()
  declare quantity: number | null

  @utcDateTime()
  declare currentPeriodStart: DateTime | null

  @utcDateTime()
  declare currentPeriodEnd: DateTime | null

  @utcDateTime({ autoCreate: true })
  declare createdAt: DateTime

  @utcDateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime
}
