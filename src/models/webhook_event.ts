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
import { bool, json, utcDateTime } from './columns.ts'

export type WebhookEventStatus = 'received' | 'processed' | 'failed' | 'ignored'

/**
 * A verified webhook event, stored once per (provider, event id).
 */
export default class WebhookEvent extends BaseModel {
  static table = 'billing_webhook_events'

  @column({ isPrimary: true, consume: (value: unknown) => Number(value) })
  declare id: number

  @column()
  declare provider: string

  @column()
  declare eventId: string

  @column()
  declare type: string

  @column()
  declare apiVersion: string | null

  @bool()
  declare livemode: boolean

  @json()
  declare payload: Record<string, any>

  @column()
  declare status: WebhookEventStatus

  @column()
  declare attempts: number

  @column()
  declare error: string | null

  @utcDateTime()
  declare stripeCreatedAt: DateTime | null

  @utcDateTime()
  declare receivedAt: DateTime

  @utcDateTime()
  declare processedAt: DateTime | null

  @column()
  declare processingMs: number | null

  @utcDateTime({ autoCreate: true })
  declare createdAt: DateTime

  @utcDateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime
}
