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
import { decimal, json, utcDateTime } from './columns.ts'

/**
 * One recorded unit of usage. Unique per (customer, meter, idempotency key): a repeat is a duplicate.
 */
export default class UsageEvent extends BaseModel {
  static table = 'billing_usage_events'

  @column({ isPrimary: true, consume: (value: unknown) => Number(value) })
  declare id: number

  @column()
  declare customerId: number

  @column()
  declare meter: string

  @decimal()
  declare quantity: string

  @utcDateTime()
  declare occurredAt: DateTime

  @column()
  declare idempotencyKey: string

  @json()
  declare properties: Record<string, unknown> | null

  @utcDateTime({ autoCreate: true })
  declare createdAt: DateTime
}
