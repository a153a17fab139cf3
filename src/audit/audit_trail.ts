/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHash } from 'node:crypto'
import { AuditKeyring, type AuditCheckpoint } from './audit_key.ts'
import { PERSONAL_DATA_TABLE, type PersonalDataTarget, erasePersonalData, revealPersonalData, separatePersonalData, storePersonalData } from './personal_data.ts'
import { DateTime } from 'luxon'
import type { ApplicationService, EmitterService } from '@adonisjs/core/types'
import type { QueryClientContract, TransactionClientContract } from '@adonisjs/lucid/types/database'
import AuditLog from '../models/audit_log.ts'
import { toDbDateTime } from '../models/columns.ts'
import { canonicalJson } from './canonical_json.ts'
import { currentActor, unverifiedText } from './actor.ts'
import { InvalidArgumentException } from '../errors.ts'
import debug from '../debug.ts'
import { AuditChainBrokenException } from '../errors.ts'
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
 * The link hash of a row: sha256 over the previous row's hash and the row's content hash.
 */
export function auditHash(prevHash: string, content: AuditContent): string {
  return chainHash(prevHash, contentHash(content))
}

/**
 * sha256 hex of the canonical JSON of a row's content (stored as `content_hash`).
 */
export function contentHash(content: AuditContent): string {
  return createHash('sha256').update(canonicalContent(content)).digest('hex')
}

/**
 * The unkeyed link of every row (`hash`): sha256 of `prevHash + "\n" + contentHash`, computed by the
 * database on PostgreSQL (at commit, `billing_audit_seal`) and inline on SQLite. It orders the rows and
 * makes forks impossible; the keyed `mac` chain over it (`AuditKeyring.chainMac`) makes edits evident.
 */
export function chainHash(prevHash: string, contentHashHex: string): string {
  return createHash('sha256').update(prevHash).update('\n').update(contentHashHex).digest('hex')
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
 * Result of `AuditTrail.verify()`.
 */
export interface AuditVerification {
  ok: boolean
  checked: number
  /** id of the first row that does not verify (absent for `head_mismatch`, `head_missing`, `checkpoint_*`) */
  brokenAt?: number
  /**
   * `hash_mismatch`: a row's content or MAC does not match (edited, or forged without the key);
   * `chain_break`: a row was removed, inserted, or placed beyond the head;
   * `head_mismatch`: the newest rows were removed (the head is ahead of the last row); `head_missing`:
   * the chain head row is gone; `unsealed`: a committed row never joined the chain or was never MACed
   * (written around the package, or the PostgreSQL trigger is missing); `unknown_key`: a row names a key id this app does
   * not have (add it to `audit.previousKeys`); `checkpoint_invalid`: the expected checkpoint is not
   * signed by these keys; `checkpoint_mismatch`: the chain no longer has the checkpoint's row and hash
   * (truncated, or rewritten before it); `unkeyed`: a row without the key's MACs beyond the
   * `audit.legacyRows` prefix; `retired_key`: a row signed with an earlier key after a newer one
   */
  reason?: 'hash_mismatch' | 'chain_break' | 'head_mismatch' | 'head_missing' | 'unsealed' | 'unknown_key' | 'retired_key' | 'unkeyed' | 'checkpoint_invalid' | 'checkpoint_mismatch'
}

/**
 * The append-only, hash-chained audit trail. Every package mutation records its row inside the same
 * transaction as the change; hosts may record their own billing-setting changes too.
 */
export class AuditTrail {
  #app: ApplicationService
  #connection: () => QueryClientContract
  #emitter: EmitterService
  #keyring: () => AuditKeyring
  #legacyRows: number
  /**
   * The background seal in progress (PostgreSQL), and whether another one was asked for meanwhile
   */
  #sealing: Promise<number> | null = null
  #sealAgain = false

  constructor(app: ApplicationService, connection: () => QueryClientContract, emitter: EmitterService, keyring: () => AuditKeyring, options: { legacyRows?: number } = {}) {
    this.#app = app
    this.#connection = connection
    this.#emitter = emitter
    this.#keyring = keyring
    this.#legacyRows = options.legacyRows ?? 0
  }

  /**
   * PostgreSQL: fills the keyed `mac` of committed rows, in `seq` order, after their transaction
   * committed (the key never reaches the database). Runs after every commit that added rows, and
   * before `verify()`/`checkpoint()`; any process may run it (the MACs are deterministic, the update
   * only fills a null). A row without a valid `content_mac` (written around the package) is never
   * sealed: sealing stops there and verification reports it. Returns how many rows it sealed.
   */
  async seal(): Promise<number> {
    const client = this.#connection()
    if (client.dialect.name !== 'postgres') return 0
    const keyring = this.#keyring()
    let sealed = 0
    for (;;) {
      const rows = await client
        .from(AuditLog.table)
        .whereNull('mac')
        .whereNotNull('seq')
        .whereNotNull('key_id')
        .orderBy('seq')
        .limit(500)
        .select('id', 'seq', 'key_id', 'content_hash', 'content_mac', 'hash')
      if (!rows.length) return sealed
      const first = Number(rows[0].seq)
      let prevMac: string | null = GENESIS_HASH
      if (first > 1) {
        const previous = await client.from(AuditLog.table).where('seq', first - 1).select('mac', 'hash', 'key_id').first()
        prevMac = !previous ? null : previous.mac ?? (previous.key_id === null ? previous.hash : null)
      }
      const updates: Array<[number, string]> = []
      let expected = first
      for (const row of rows) {
        if (prevMac === null || Number(row.seq) !== expected || row.key_id === null) break
        if (keyring.contentMac(row.key_id, row.content_hash) !== row.content_mac) break
        const mac = keyring.chainMac(row.key_id, expected, prevMac, row.hash)
        if (!mac) break
        updates.push([Number(row.id), mac])
        prevMac = mac
        expected++
      }
      if (!updates.length) return sealed
      await client.rawQuery(
        `update ${AuditLog.table} set mac = v.mac from (values ${updates.map(() => '(?::bigint, ?::varchar)').join(', ')}) as v(id, mac) ` +
          `where ${AuditLog.table}.id = v.id and ${AuditLog.table}.mac is null`,
        updates.flat()
      )
      sealed += updates.length
      if (updates.length < rows.length) return sealed
    }
  }

  /**
   * Seals in the background after a commit; concurrent requests coalesce into one more run.
   */
  #sealSoon() {
    if (this.#sealing) {
      this.#sealAgain = true
      return
    }
    /**
     * A short pause lets the commits of a burst share one seal (one read, one update)
     */
    this.#sealing = new Promise((resolve) => setTimeout(resolve, AuditTrail.SEAL_DELAY_MS))
      .then(() => this.seal())
      .catch((error) => {
        debug('audit seal failed: %s', error?.message)
        return 0
      })
      .finally(() => {
        this.#sealing = null
        if (this.#sealAgain) {
          this.#sealAgain = false
          this.#sealSoon()
        }
      })
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
      const row = await this.#connection().transaction((trx) => this.record(entry, { client: trx }))
      /**
       * Committed: on PostgreSQL the row has just joined the chain, read its place
       */
      if (row.hash === null) {
        const sealed = await this.#connection().from(AuditLog.table).where('id', row.id).select('seq', 'prev_hash', 'hash').first()
        row.$consumeAdapterResult(sealed)
      }
      return row
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
      metadata: actor.claim ? { ...entry.metadata, claimedBy: unverifiedText(actor.claim, 255) } : (entry.metadata ?? null),
      requestId: unverifiedText(entry.requestId ?? context?.requestId, 255),
      eventId: entry.eventId ?? (actor.type === 'webhook' ? actor.id : null),
    }

    /**
     * Personal data (a customer's email, name, address…) is kept beside the row, by reference, so
     * it can be erased without breaking the chain
     */
    const personal = separatePersonalData(content, content.customerId === null ? null : Number(content.customerId))
    content.before = personal.before as AuditContent['before']
    content.after = personal.after as AuditContent['after']
    content.metadata = personal.metadata as AuditContent['metadata']
    const pendingPersonal = this.#batchedPersonal.get(trx)
    if (pendingPersonal) pendingPersonal.push(...personal.records)
    else await storePersonalData(trx, personal.records)

    const keyring = this.#keyring()
    const columns = columnsOf(content)
    const values: Record<string, unknown> = {
      ...columns,
      before: columns.before === null ? null : JSON.stringify(columns.before),
      after: columns.after === null ? null : JSON.stringify(columns.after),
      metadata: columns.metadata === null ? null : JSON.stringify(columns.metadata),
      content_hash: contentHash(content),
      key_id: keyring.currentId,
      seq: null,
      prev_hash: null,
      hash: null,
      mac: null,
    }
    values.content_mac = keyring.contentMac(keyring.currentId, values.content_hash as string)
    if (trx.dialect.name !== 'postgres') {
      /**
       * SQLite has a single writer: read the head and link the row at once.
       */
      const head = await trx.from(AUDIT_HEAD_TABLE).where('id', 1).select('hash', 'rows').first()
      if (!head) throw new Error(`The audit chain head is missing: run the migration that creates ${AUDIT_HEAD_TABLE}`)
      values.seq = Number(head.rows) + 1
      values.prev_hash = head.hash
      values.hash = chainHash(head.hash, values.content_hash as string)
      let prevMac: string | null = GENESIS_HASH
      if (Number(head.rows) > 0) {
        const previous = await trx.from(AuditLog.table).where('seq', Number(head.rows)).select('mac', 'hash', 'key_id').first()
        prevMac = previous?.mac ?? (previous && previous.key_id === null ? previous.hash : null)
      }
      /**
       * (after a row that could not be sealed, the chain stays unsealed from there: verify reports it)
       */
      values.mac = prevMac === null ? null : keyring.chainMac(keyring.currentId, values.seq as number, prevMac, values.hash as string)
      await trx.from(AUDIT_HEAD_TABLE).where('id', 1).update({ hash: values.hash, rows: values.seq })
    }
    /**
     * On PostgreSQL the row is a plain insert (now, or by `flushBatch()` in a batched transaction,
     * which fills its id). The deferred `billing_audit_seal` trigger links it when the transaction
     * commits, so appenders hold the chain head only for the instant of their commit (a rollback
     * leaves neither the row nor a trace in the chain).
     */
    const pending = this.#batched.get(trx)
    let row: AuditLog
    if (pending) {
      row = AuditLog.$createFromAdapterResult({ id: null, ...values }, undefined, { client: trx })!
      pending.push({ values, row })
    } else {
      const [inserted] = await trx.knexQuery().table(AuditLog.table).insert(values).returning('id')
      const id = Number(typeof inserted === 'object' ? inserted.id : inserted)
      row = AuditLog.$createFromAdapterResult({ id, ...values }, undefined, { client: trx })!
    }
    debug('audit %s by %s:%s (#%d)', row.action, row.actorType, row.actorId, row.id)

    trx.after('commit', () => {
      if (trx.dialect.name === 'postgres') this.#sealSoon()
      this.#emitter.emit('billing:audit.recorded' as any, { id: row.id, action: row.action, customerId: row.customerId })
    })
    return row
  }

  /**
   * Rows recorded in batched transactions, waiting for `flushBatch()`.
   */
  #batched = new WeakMap<TransactionClientContract, Array<{ values: Record<string, unknown>; row: AuditLog }>>()

  /**
   * PostgreSQL: the rows recorded in `trx` from now on are written together by `flushBatch()`, which
   * the caller runs once before committing (the webhook processor writes them in the same statement
   * as the event's processed mark). Elsewhere rows are written at once and this does nothing.
   */
  batch(trx: TransactionClientContract) {
    if (trx.dialect.name === 'postgres') {
      this.#batched.set(trx, [])
      this.#batchedPersonal.set(trx, [])
    }
  }

  /**
   * Personal data of the batched rows, written by the same statement
   */
  #batchedPersonal = new WeakMap<TransactionClientContract, Array<Record<string, unknown>>>()

  /**
   * Writes the batched rows of `trx` in one statement; `then` is one more statement run in the same
   * round trip (a data-modifying CTE runs the insert first). Fills the ids of the returned rows.
   */
  async flushBatch(trx: TransactionClientContract, then?: { sql: string; bindings: unknown[] }) {
    const pending = this.#batched.get(trx) ?? []
    const personal = this.#batchedPersonal.get(trx) ?? []
    this.#batched.delete(trx)
    this.#batchedPersonal.delete(trx)
    if (pending.length === 0) {
      if (then) await trx.rawQuery(then.sql, then.bindings as any[])
      return
    }
    /**
     * Chunks keep each statement under PostgreSQL's 65535 parameters; the last one carries `then`
     * and the rows' personal data
     */
    const columns = Object.keys(pending[0].values)
    for (let start = 0; start < pending.length; start += AuditTrail.BATCH_ROWS) {
      const chunk = pending.slice(start, start + AuditTrail.BATCH_ROWS)
      const last = start + AuditTrail.BATCH_ROWS >= pending.length
      const tuples = chunk.map(() => `(${columns.map(() => '?').join(', ')})`).join(', ')
      const bindings = chunk.flatMap(({ values }) => columns.map((column) => values[column]))
      const insert = `insert into ${AuditLog.table} (${columns.join(', ')}) values ${tuples} returning id`
      const personalColumns = personal.length ? Object.keys(personal[0]) : []
      const withPersonal = last && personal.length > 0
      const ctes = [
        `audit as (${insert})`,
        ...(withPersonal
          ? [`personal as (insert into ${PERSONAL_DATA_TABLE} (${personalColumns.join(', ')}) values ${personal.map(() => `(${personalColumns.map(() => '?').join(', ')})`).join(', ')})`]
          : []),
        ...(last && then ? [`done as (${then.sql})`] : []),
      ]
      const sql = ctes.length > 1 ? `with ${ctes.join(', ')} select id from audit order by id` : insert
      const result = await trx.rawQuery(sql, [
        ...bindings,
        ...(withPersonal ? personal.flatMap((record) => personalColumns.map((column) => record[column])) : []),
        ...(last && then ? then.bindings : []),
      ] as any[])
      const ids = result.rows.map((inserted: { id: unknown }) => Number(inserted.id)).sort((a: number, b: number) => a - b)
      chunk.forEach(({ row }, index) => (row.id = ids[index]))
    }
  }

  /**
   * Rows per statement when flushing a batch.
   */
  static BATCH_ROWS = 1000

  /**
   * How long after a commit the background seal waits for other commits to join it (PostgreSQL).
   */
  static SEAL_DELAY_MS = 20

  /**
   * Walks the chain in `seq` order and recomputes every MAC with the key each row names. Detects
   * edited rows (hash mismatch), removed or inserted rows (a `prev_hash` that is not the previous
   * row's hash), removed newest rows (the head no longer matches the last row), a missing head, and —
   * with `expect`, a checkpoint exported earlier — a chain truncated or rewritten before it.
   */
  async verify(options: { pageSize?: number; expect?: AuditCheckpoint } = {}): Promise<AuditVerification> {
    const { head, ...result } = await this.#walk(options)
    return result
  }

  async #walk(options: { pageSize?: number; expect?: AuditCheckpoint }): Promise<AuditVerification & { head?: { seq: number; hash: string } }> {
    const pageSize = options.pageSize ?? 1000
    const client = this.#connection()
    const keyring = this.#keyring()
    if (options.expect && !keyring.verifyCheckpoint(options.expect)) return { ok: false, checked: 0, reason: 'checkpoint_invalid' }
    /**
     * The head first: rows committed after this read extend the chain beyond it and are left for
     * the next run, so concurrent appenders never look like tampering. Then the rows it covers are
     * sealed (PostgreSQL), so only rows that cannot be sealed remain without a MAC.
     */
    const head = await client.from(AUDIT_HEAD_TABLE).where('id', 1).select('hash', 'rows').first()
    if (!head) return { ok: false, checked: 0, reason: 'head_missing' }
    await this.seal()
    const headRows = Number(head.rows)
    let prevHash = GENESIS_HASH
    let prevMac = GENESIS_HASH
    let lastSeq = 0
    let checked = 0
    let keyed = false
    let rank = -1
    let checkpointSeen = false
    while (lastSeq < headRows) {
      const rows = await AuditLog.query({ client }).where('seq', '>', lastSeq).where('seq', '<=', headRows).orderBy('seq', 'asc').limit(pageSize)
      for (const row of rows) {
        const broken = (reason: AuditVerification['reason']): AuditVerification => ({ ok: false, checked, brokenAt: row.id, reason })
        if (row.prevHash !== prevHash || row.seq !== lastSeq + 1) return broken('chain_break')
        if (contentHash(row) !== row.contentHash || chainHash(prevHash, row.contentHash) !== row.hash) return broken('hash_mismatch')
        if (row.keyId === null || row.keyId === undefined) {
          /**
           * Rows without the key's MACs are accepted only as the prefix written before the upgrade,
           * as long as `audit.legacyRows` (config, outside the database) says: otherwise anyone could
           * rewrite the whole chain as unkeyed rows
           */
          if (keyed || row.seq! > this.#legacyRows) return broken('unkeyed')
          prevMac = row.hash!
        } else {
          keyed = true
          const rowRank = keyring.rank(row.keyId)
          if (rowRank === -1) return broken('unknown_key')
          if (rowRank < rank) return broken('retired_key')
          rank = rowRank
          if (keyring.contentMac(row.keyId, row.contentHash) !== row.contentMac) return broken('hash_mismatch')
          if (!row.mac) return broken('unsealed')
          if (keyring.chainMac(row.keyId, row.seq!, prevMac, row.hash!) !== row.mac) return broken('hash_mismatch')
          prevMac = row.mac
        }
        if (options.expect && row.seq === options.expect.seq) {
          if (prevMac !== options.expect.hash) return broken('checkpoint_mismatch')
          checkpointSeen = true
        }
        prevHash = row.hash!
        lastSeq = row.seq!
        checked++
      }
      if (rows.length < pageSize) break
    }
    if (lastSeq !== headRows || head.hash !== prevHash) return { ok: false, checked, reason: 'head_mismatch' }
    if (options.expect && !checkpointSeen && !(options.expect.seq === 0 && options.expect.hash === GENESIS_HASH)) {
      return { ok: false, checked, reason: 'checkpoint_mismatch' }
    }
    const unsealed = await client.from(AuditLog.table).whereNull('seq').orderBy('id', 'asc').select('id').first()
    if (unsealed) return { ok: false, checked, brokenAt: Number(unsealed.id), reason: 'unsealed' }
    /**
     * A row placed beyond the head (a forged seq) would never be walked: the head as it is now must
     * cover every row
     */
    const now = await client.from(AUDIT_HEAD_TABLE).where('id', 1).select('rows').first()
    const beyond = await client.from(AuditLog.table).where('seq', '>', Number(now?.rows ?? headRows)).orderBy('seq').select('id').first()
    if (beyond) return { ok: false, checked, brokenAt: Number(beyond.id), reason: 'chain_break' }
    return { ok: true, checked, head: { seq: headRows, hash: prevMac } }
  }

  /**
   * A signed checkpoint of the chain as it is now (verified first): store it somewhere the database's
   * writers cannot reach (a file in backups, a ticket, another system) and pass it to
   * `verify({ expect })` later to detect truncation or a rewrite before it. Throws
   * `E_BILLING_AUDIT_CHAIN_BROKEN` when the chain does not verify.
   */
  async checkpoint(): Promise<AuditCheckpoint> {
    const result = await this.#walk({})
    if (!result.ok) {
      const error = new AuditChainBrokenException(`The audit chain does not verify (${result.reason}${result.brokenAt ? ` at row #${result.brokenAt}` : ''}): no checkpoint of a broken chain`)
      throw error
    }
    return this.#keyring().signCheckpoint({ seq: result.head!.seq, hash: result.head!.hash, at: DateTime.utc().toISO()! })
  }

  /**
   * Rows with their personal data put back (erased values read `{ $erased: true }`), for display.
   */
  async reveal(rows: AuditLog[]) {
    return revealPersonalData(this.#connection(), rows.map((row) => row.toJSON() as { before: any; after: any } & Record<string, unknown>))
  }

  /**
   * Erases personal data audit rows refer to (GDPR erasure), audited itself (without the erased
   * values): a customer's (`customerId`, or `{ customerId }`), a value's stored copies in rows that
   * name no customer (`{ value: 'ada@example.com' }`; with `customerId`, in that customer's rows;
   * matched exactly as recorded), or what the rows about one subject hold (`{ subject: { type, id } }`,
   * including values of other people those rows name). The chain still verifies: the rows keep only
   * references and salted digests. Returns how many values were erased.
   */
  async erasePersonalData(target: number | PersonalDataTarget, options: { actor?: AuditEntryInput['actor']; reason?: string } = {}): Promise<number> {
    const chosen: PersonalDataTarget = typeof target === 'number' ? { customerId: target } : target
    const valid =
      chosen && typeof chosen === 'object' &&
      (('value' in chosen && chosen.value !== undefined && chosen.value !== null && chosen.value !== '' && (chosen.customerId === undefined || Number.isSafeInteger(chosen.customerId))) ||
        (!('value' in chosen) && 'customerId' in chosen && Number.isSafeInteger(chosen.customerId)) ||
        ('subject' in chosen && !!chosen.subject?.type && chosen.subject.id !== undefined && chosen.subject.id !== null && chosen.subject.id !== ''))
    if (!valid) throw new InvalidArgumentException('erasePersonalData needs a customerId, value or subject')
    return this.#connection().transaction(async (trx) => {
      const erased = await erasePersonalData(trx, chosen)
      const customerId = 'customerId' in chosen && chosen.customerId !== undefined ? chosen.customerId : null
      const subject = customerId !== null ? { type: 'customer', id: customerId } : 'subject' in chosen ? chosen.subject : undefined
      await this.record({ action: 'audit.personal_data_erased', actor: options.actor, customerId, subject, after: { erased }, metadata: options.reason ? { reason: options.reason } : null }, { client: trx })
      return erased
    })
  }
}

export { PERSONAL_DATA_TABLE }
