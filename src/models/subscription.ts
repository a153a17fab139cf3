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
import { bool, json, utcDateTime } from './columns.ts'
import SubscriptionItem from './subscription_item.ts'

/**
 * Stripe's subscription statuses.
 */
export type SubscriptionStatus =
  | 'incomplete'
  | 'incomplete_expired'
  | 'trialing'
  | 'active'
  | 'past_due'
  | 'canceled'
  | 'unpaid'
  | 'paused'

/**
 * A named subscription of a customer (several per customer: `default`, `addons`, ...), mirrored from
 * Stripe. `stripeUpdatedAt` is the watermark that keeps out-of-order webhooks from regressing it.
 */
export default class Subscription extends BaseModel {
  static table = 'billing_subscriptions'

  @column({ isPrimary: true })
  declare id: number

  @column()
  declare customerId: number

  @column()
  declare name: string

  @column()
  declare plan: string

  @column()
  declare status: SubscriptionStatus

  @column()
  declare quantity: number | null

  @column()
  declare stripeSubscriptionId: string | null

  @utcDateTime()
  declare trialEndsAt: DateTime | null

  @utcDateTime()
  declare currentPeriodStart: DateTime | null

  @utcDateTime()
  declare currentPeriodEnd: DateTime | null

  @bool()
  declare cancelAtPeriodEnd: boolean

  @utcDateTime()
  declare cancelAt: DateTime | null

  @utcDateTime()
  declare canceledAt: DateTime | null

  @utcDateTime()
  declare endsAt: DateTime | null

  @utcDateTime()
  declare pausedAt: DateTime | null

  @utcDateTime()
  declare resumesAt: DateTime | null

  @utcDateTime()
  declare pastDueSince: DateTime | null

  @utcDateTime()
  declare stripeUpdatedAt: DateTime | null

  @json()
  declare metadata: Record<string, string> | null

  @utcDateTime({ autoCreate: true })
  declare createdAt: DateTime

  @utcDateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime

  @hasMany(() => SubscriptionItem)
  declare items: HasMany<typeof SubscriptionItem>
}
