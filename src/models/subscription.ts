/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
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

  /**
   * Paid up or trialing, and not ended. `incomplete`, `past_due`, `unpaid` and `paused` are NOT active
   * (use `hasIncompletePayment()`, `pastDue()`, `paused()`); whether they still grant features is the
   * entitlement policy's call.
   */
  active(now = DateTime.utc()) {
    return (this.status === 'active' || this.status === 'trialing') && !this.ended(now)
  }

  /**
   * In a trial that has not ended.
   */
  onTrial(now = DateTime.utc()) {
    return this.status === 'trialing' && !!this.trialEndsAt && this.trialEndsAt > now
  }

  /**
   * Canceled at period end (or at a set date) but still running: `resume()` is possible.
   */
  onGracePeriod(now = DateTime.utc()) {
    return (this.status === 'active' || this.status === 'trialing') && !!this.endsAt && this.endsAt > now && (this.cancelAtPeriodEnd || !!this.cancelAt)
  }

  /**
   * The latest payment failed and Stripe is retrying.
   */
  pastDue() {
    return this.status === 'past_due'
  }

  /**
   * A payment needs the customer: first payment not done (`incomplete`, possibly awaiting 3-D Secure),
   * retries failing (`past_due`) or exhausted (`unpaid`).
   */
  hasIncompletePayment() {
    return this.status === 'incomplete' || this.status === 'past_due' || this.status === 'unpaid'
  }

  /**
   * Paused (status `paused` after a trial without payment method, or collection paused).
   */
  paused() {
    return this.status === 'paused' || !!this.pausedAt
  }

  /**
   * Over: canceled, expired before the first payment, or past its end date.
   */
  ended(now = DateTime.utc()) {
    if (this.status === 'canceled' || this.status === 'incomplete_expired') return true
    return !!this.endsAt && this.endsAt <= now
  }
}
