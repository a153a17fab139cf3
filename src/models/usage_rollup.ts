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

/**
 * Hourly aggregate of a customer's usage on one meter, updated with the events it sums.
 */
export default class UsageRollup extends BaseModel {
  static table = 'billing_usage_rollups'

  @column({ isPrimary: true, consume: (value: unknown) => Number(value) })
  declare id: number

  @column()
  declare customerId: number

  @column()
  declare meter: string

  /**
   * Start of the hour (UTC).
   */
  @utcDateTime()
  declare bucket: DateTime

  @decimal()
  declare sum: string

  @column({ consume: (value: unknown) => Number(value) })
  declare count: number

  @decimal()
  declare max: string | null

  @decimal()
  declare last: string | null

  @utcDateTime()
  declare lastAt: DateTime | null

  @utcDateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime
}
