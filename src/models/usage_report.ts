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
import { decimal, utcDateTime } from './columns.ts'

export type UsageReportStatus = 'pending' | 'sending' | 'sent' | 'failed' | 'blocked' | 'expired'

/**
 * Outbox row: one closed usage window to send to Stripe, with a deterministic identifier so a resend
 * is deduplicated by Stripe.
 */
export default class UsageReport extends BaseModel {
  static table = 'billing_usage_reports'

  @column({ isPrimary: true, consume: (value: unknown) => Number(value) })
  declare id: number

  @column()
  declare customerId: number

  @column()
  declare meter: string

  @utcDateTime()
  declare windowStart: DateTime

  @utcDateTime()
  declare windowEnd: DateTime

  /**
   * The billing period the report was counted in (null on reports made before periods were kept)
   */
  @utcDateTime()
  declare periodStart: DateTime | null

  @utcDateTime()
  declare periodEnd: DateTime | null

  @decimal()
  declare quantity: string

  @column()
  declare identifier: string

  @column()
  declare status: UsageReportStatus

  @column()
  declare attempts: number

  @utcDateTime()
  declare nextAttemptAt: DateTime | null

  @utcDateTime()
  declare sentAt: DateTime | null

  @column()
  declare error: string | null

  @utcDateTime({ autoCreate: true })
  declare createdAt: DateTime

  @utcDateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime
}
