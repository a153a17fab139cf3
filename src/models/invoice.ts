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
import { json, minorUnits, utcDateTime } from './columns.ts'

/**
 * A local copy of a Stripe invoice. Every amount is an integer in minor units.
 */
export default class Invoice extends BaseModel {
  static table = 'billing_invoices'

  @column({ isPrimary: true })
  declare id: number

  @column()
  declare customerId: number

  @column()
  declare subscriptionId: number | null

  /**
   * The Stripe subscription the invoice bills (kept so an invoice that arrives before its
   * subscription is linked when the subscription arrives)
   */
  @column()
  declare stripeSubscriptionId: string | null

  @column()
  declare stripeInvoiceId: string

  @column()
  declare number: string | null

  @column()
  declare status: string

  @column()
  declare currency: string

  @minorUnits()
  declare subtotal: number

  @minorUnits()
  declare tax: number

  @minorUnits()
  declare total: number

  @minorUnits()
  declare amountDue: number

  @minorUnits()
  declare amountPaid: number

  @minorUnits()
  declare amountRemaining: number

  @column()
  declare hostedInvoiceUrl: string | null

  @column()
  declare invoicePdf: string | null

  @utcDateTime()
  declare periodStart: DateTime | null

  @utcDateTime()
  declare periodEnd: DateTime | null

  /**
   * Line items and tax lines as Stripe sent them (amounts in minor units).
   */
  @json()
  declare lines: unknown[] | null

  @utcDateTime()
  declare stripeCreatedAt: DateTime | null

  @utcDateTime()
  declare stripeUpdatedAt: DateTime | null

  @utcDateTime({ autoCreate: true })
  declare createdAt: DateTime

  @utcDateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime
}
