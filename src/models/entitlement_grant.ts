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
import { json, utcDateTime } from './columns.ts'
import type { FeatureValue } from '../types.ts'

/**
 * A manual or promotional override of one feature for one customer, valid between `startsAt` and
 * `expiresAt` unless revoked.
 */
export default class EntitlementGrant extends BaseModel {
  static table = 'billing_entitlement_grants'

  @column({ isPrimary: true })
  declare id: number

  @column()
  declare customerId: number

  @column()
  declare feature: string

  @json()
  declare value: FeatureValue

  @utcDateTime()
  declare startsAt: DateTime

  @utcDateTime()
  declare expiresAt: DateTime | null

  @utcDateTime()
  declare revokedAt: DateTime | null

  @column()
  declare reason: string | null

  @column()
  declare grantedBy: string | null

  @utcDateTime({ autoCreate: true })
  declare createdAt: DateTime

  @utcDateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime
}
