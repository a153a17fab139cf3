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

/**
 * One append-only, hash-chained audit row. Written only by `AuditTrail.record()`.
 */
export default class AuditLog extends BaseModel {
  static table = 'billing_audit_logs'

  /**
   * Null, like the chain fields, while the row waits in a batched transaction (see `AuditTrail.batch()`)
   */
  @column({ isPrimary: true, consume: (value: unknown) => (value === null || value === undefined ? null : Number(value)) })
  declare id: number

  @utcDateTime()
  declare occurredAt: DateTime

  @column()
  declare actorType: string

  @column()
  declare actorId: string | null

  @column()
  declare action: string

  @column()
  declare subjectType: string | null

  @column()
  declare subjectId: string | null

  @column()
  declare customerId: number | null

  @json()
  declare before: Record<string, unknown> | null

  @json()
  declare after: Record<string, unknown> | null

  @json()
  declare metadata: Record<string, unknown> | null

  @column()
  declare requestId: string | null

  @column()
  declare eventId: string | null

  /**
   * sha256 of the row's canonical content.
   */
  @column()
  declare contentHash: string

  /**
   * Id of the key whose HMAC chains this row (`audit.keyId`); null on rows chained before the chain
   * was keyed.
   */
  @column()
  declare keyId: string | null

  /**
   * HMAC of the content hash under `keyId`, written with the row: only the package can make it
   */
  @column()
  declare contentMac: string | null

  /**
   * The keyed chain: HMAC over the key id, `seq`, the previous row's `mac` and this row's `hash`.
   * Filled at once on SQLite, right after commit on PostgreSQL (`audit.seal()`).
   */
  @column()
  declare mac: string | null

  /**
   * Position in the chain; with `prevHash` and `hash`, null until the row's transaction commits
   * on PostgreSQL (the chain is extended at COMMIT).
   */
  @column({ consume: (value: unknown) => (value === null || value === undefined ? null : Number(value)) })
  declare seq: number | null

  @column()
  declare prevHash: string | null

  @column()
  declare hash: string | null
}
