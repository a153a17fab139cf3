/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHash } from 'node:crypto'
import { DateTime } from 'luxon'
import type { ApplicationService, EmitterService } from '@adonisjs/core/types'
import type { QueryClientContract, TransactionClientContract } from '@adonisjs/lucid/types/database'
import AuditLog from '../models/audit_log.ts'
import { toDbDateTime } from '../models/columns.ts'
import { canonicalJson } from './canonical_json.ts'
import { currentActor } from './actor.ts'
import debug from '../debug.ts'
import type { AuditEntryInput } from '../types.ts'

/**
 * `prev_hash` of the first row.
 */
export const GENESIS_HASH = '0'.repeat(64)

/**
 * Key of the PostgreSQL transaction-level advisory lock that serializes chain appends
 * (`hashtext('adonis-billing:audit')` would do too; a constant keeps it dialect-free).
 */
const AUDIT_LOCK_KEY = 727_001_001

/**
 * The hashed content of an audit row: every column but `id`, `prev_hash` and `hash`.
 */
type AuditContent = Pick<
  AuditLog,
  | 'actorType'
  | 'actorId'
  | 'action'
  | 'subjectType'
  | 'subjectId'
  | 'customerId'
  | 'before'
  | 'after'
  | 'metadata'
  | 'requestId'
  | 'eventId'
> & { occurredAt: DateTime }

/**
 * SHA-256 over the previous hash and the canonical JSON of the row.
 */
export function auditHash(prevHash: string, content: AuditContent): string {
  const canonical = canonicalJson({
    occurred_at: toDbDateTime(content.occurredAt),
    actor_type: content.actorType,
    actor_id: content.actorId,
    action: content.action,
    subject_type: content.subjectType,
    subject_id: content.subjectId,
    customer_id: content.customerId === null || content.customerId === undefined ? null : Number(content.customerId),
    before: content.before ?? null,
    after: content.after ?? null,
    metadata: content.metadata ?? null,
    request_id: content.requestId,
    event_id: content.eventId,
  })
  return createHash('sha256').update(prevHash).update('\n').update(canonical).digest('hex')
}

/**
 * Result of `AuditTrail.verify()`.
 */
export interface AuditVerification {
  ok: boolean
  checked: number
  /** id of the first row that does not verify */
  brokenAt?: number
  reason?: 'hash_mismatch' | 'chain_break'
}

/**
 * The append-only, hash-chained audit trail. Every package mutation records its row inside the same
 * transaction as the change; hosts may record their own billing-setting changes too.
 */
export class AuditTrail {
  #app: ApplicationService
  #connection: () => QueryClientContract
  #emitter: EmitterService

  constructor(app: ApplicationService, connection: () => QueryClientContract, emitter: EmitterService) {
    this.#app = app
    this.#connection = connection
    this.#emitter = emitter
  }

  /**
   * Appends one row. Pass the caller's transaction as `client` so the row commits (or rolls back)
   * with the change it describes; without one, the row is written in its own transaction. The actor
   * defaults to the current request's auth user, the CLI user, or `system`.
   *
   * @example
   * await billing.audit.record({ action: 'plan.changed', subject: { type: 'team', id: 4 } }, { client: trx })
   */
  async record(entry: AuditEntryInput, options: { client?: TransactionClientContract } = {}): Promise<AuditLog> {
    if (!options.client) {
      return this.#connection().transaction((trx) => this.record(entry, { client: trx }))
    }
    const trx = options.client
    const context = entry.actor ? null : currentActor(this.#app)
    const actor = entry.actor ?? context!.actor
    const content: AuditContent = {
      occurredAt: (entry.occurredAt ?? DateTime.utc()).toUTC(),
      actorType: actor.type,
      actorId: actor.id,
      action: entry.action,
      subjectType: entry.subject?.type ?? null,
      subjectId: entry.subject?.id === undefined || entry.subject?.id === null ? null : String(entry.subject.id),
      customerId: entry.customerId ?? null,
      before: entry.before ?? null,
      after: entry.after ?? null,
      metadata: entry.metadata ?? null,
      requestId: entry.requestId ?? context?.requestId ?? null,
      eventId: entry.eventId ?? (actor.type === 'webhook' ? actor.id : null),
    }

    /**
     * Serialize appenders: on PostgreSQL with a transaction-scoped advisory lock (released at
     * commit/rollback); SQLite allows a single writer anyway. The unique prev_hash index is the
     * backstop on every dialect.
     */
    if (trx.dialect.name === 'postgres') {
      await trx.rawQuery('select pg_advisory_xact_lock(?)', [AUDIT_LOCK_KEY])
    }
    const last = await trx.from(AuditLog.table).select('hash').orderBy('id', 'desc').first()
    const prevHash: string = last?.hash ?? GENESIS_HASH
    const row = await AuditLog.create({ ...content, prevHash, hash: auditHash(prevHash, content) }, { client: trx })
    debug('audit %s by %s:%s (#%d)', row.action, row.actorType, row.actorId, row.id)

    trx.after('commit', () => {
      this.#emitter.emit('billing:audit.recorded' as any, { id: row.id, action: row.action, customerId: row.customerId })
    })
    return row
  }

  /**
   * Walks the chain in id order and recomputes every hash. Detects edited rows (hash mismatch) and
   * removed or inserted rows (a `prev_hash` that is not the previous row's hash).
   */
  async verify(options: { pageSize?: number } = {}): Promise<AuditVerification> {
    const pageSize = options.pageSize ?? 1000
    let prevHash = GENESIS_HASH
    let lastId = 0
    let checked = 0
    for (;;) {
      const rows = await AuditLog.query({ client: this.#connection() }).where('id', '>', lastId).orderBy('id', 'asc').limit(pageSize)
      for (const row of rows) {
        if (row.prevHash !== prevHash) return { ok: false, checked, brokenAt: row.id, reason: 'chain_break' }
        if (auditHash(row.prevHash, row) !== row.hash) return { ok: false, checked, brokenAt: row.id, reason: 'hash_mismatch' }
        prevHash = row.hash
        lastId = row.id
        checked++
      }
      if (rows.length < pageSize) return { ok: true, checked }
    }
  }
}
