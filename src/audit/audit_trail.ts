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
 * The one-row table holding the chain head.
 */
export const AUDIT_HEAD_TABLE = 'billing_audit_head'

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
  return hashOver(prevHash, canonicalContent(content))
}

/**
 * The row's hashed content by column name (JSON documents as values).
 */
function columnsOf(content: AuditContent) {
  return {
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
  }
}

/**
 * The canonical JSON of a row's hashed content.
 */
function canonicalContent(content: AuditContent): string {
  return canonicalJson(columnsOf(content))
}

/**
 * sha256 hex of `prevHash + "\n" + canonical` (computed the same way in SQL on PostgreSQL).
 */
function hashOver(prevHash: string, canonical: string): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonical).digest('hex')
}

/**
 * Result of `AuditTrail.verify()`.
 */
export interface AuditVerification {
  ok: boolean
  checked: number
  /** id of the first row that does not verify (absent for `head_mismatch`) */
  brokenAt?: number
  /** `head_mismatch`: the newest rows were removed (the head is ahead of the last row) */
  reason?: 'hash_mismatch' | 'chain_break' | 'head_mismatch'
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
     * Serialize appenders on the head row: `FOR UPDATE` waits for a concurrent appender to commit and
     * then reads the hash it wrote (SQLite has a single writer anyway). The unique prev_hash index is
     * the backstop on every dialect.
     */
    const columns = columnsOf(content)
    const values = {
      ...columns,
      before: columns.before === null ? null : JSON.stringify(columns.before),
      after: columns.after === null ? null : JSON.stringify(columns.after),
      metadata: columns.metadata === null ? null : JSON.stringify(columns.metadata),
    }
    const canonical = canonicalContent(content)
    let id: number
    let prevHash: string
    let hash: string
    if (trx.dialect.name === 'postgres') {
      /**
       * One statement: lock the head row (FOR UPDATE re-reads it after a concurrent appender
       * commits), hash in SQL exactly as auditHash() does, insert the row and move the head.
       */
      const columns = Object.keys(values)
      const result = await trx.rawQuery(
        `with head as (select hash from ${AUDIT_HEAD_TABLE} where id = 1 for update), ` +
          `next as (select head.hash as prev_hash, encode(sha256(convert_to(head.hash || chr(10) || ?, 'UTF8')), 'hex') as hash from head), ` +
          `inserted as (insert into ${AuditLog.table} (${columns.join(', ')}, prev_hash, hash) select ${columns.map(() => '?').join(', ')}, next.prev_hash, next.hash from next returning id, prev_hash, hash), ` +
          `moved as (update ${AUDIT_HEAD_TABLE} set hash = (select hash from next), rows = rows + 1 where id = 1) ` +
          `select id, prev_hash, hash from inserted`,
        [canonical, ...Object.values(values)] as any[]
      )
      const inserted = result.rows[0]
      if (!inserted) throw new Error(`The audit chain head is missing: run the migration that creates ${AUDIT_HEAD_TABLE}`)
      id = Number(inserted.id)
      prevHash = inserted.prev_hash
      hash = inserted.hash
    } else {
      /**
       * SQLite has a single writer: read the head, insert, move the head.
       */
      const head = await trx.from(AUDIT_HEAD_TABLE).where('id', 1).select('hash').first()
      if (!head) throw new Error(`The audit chain head is missing: run the migration that creates ${AUDIT_HEAD_TABLE}`)
      prevHash = head.hash
      hash = hashOver(prevHash, canonical)
      const [inserted] = await trx.knexQuery().table(AuditLog.table).insert({ ...values, prev_hash: prevHash, hash }).returning('id')
      id = Number(typeof inserted === 'object' ? inserted.id : inserted)
      await trx.from(AUDIT_HEAD_TABLE).where('id', 1).update({ hash, rows: trx.raw('rows + 1') })
    }
    const row = AuditLog.$createFromAdapterResult({ id, ...values, prev_hash: prevHash, hash }, undefined, { client: trx })!
    debug('audit %s by %s:%s (#%d)', row.action, row.actorType, row.actorId, row.id)

    trx.after('commit', () => {
      this.#emitter.emit('billing:audit.recorded' as any, { id: row.id, action: row.action, customerId: row.customerId })
    })
    return row
  }

  /**
   * Walks the chain in id order and recomputes every hash. Detects edited rows (hash mismatch),
   * removed or inserted rows (a `prev_hash` that is not the previous row's hash) and removed newest
   * rows (the head no longer matches the last row).
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
      if (rows.length < pageSize) {
        const head = await this.#connection().from(AUDIT_HEAD_TABLE).where('id', 1).select('hash').first()
        if (head && head.hash !== prevHash) return { ok: false, checked, reason: 'head_mismatch' }
        return { ok: true, checked }
      }
    }
  }
}
