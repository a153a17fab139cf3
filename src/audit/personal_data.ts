/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHash, randomBytes } from 'node:crypto'
import { DateTime } from 'luxon'
import type { QueryClientContract, TransactionClientContract } from '@adonisjs/lucid/types/database'
import { toDbDateTime } from '../models/columns.ts'
import { canonicalJson } from './canonical_json.ts'

/**
 * Where personal data of audit rows is kept: outside the hashed, append-only rows, so it can be erased
 * (GDPR) without breaking the chain.
 */
export const PERSONAL_DATA_TABLE = 'billing_audit_personal_data'
const AUDIT_TABLE = 'billing_audit_logs'

/**
 * Top-level fields of `before`/`after` that hold personal data: of a customer (its mirror from
 * Stripe), and contact details anywhere.
 */
const CUSTOMER_FIELDS = new Set(['email', 'name', 'phone', 'address', 'shipping', 'tax_ids'])
const CONTACT_FIELDS = new Set(['email', 'phone', 'address'])

/**
 * The placeholder a personal value leaves in the hashed content: a random reference and a salted
 * digest of the value. The salt lives with the value, so once both are erased the digest cannot be
 * matched against guessed emails.
 */
export interface PersonalRef {
  $personal: string
  digest: string
}

export function isPersonalRef(value: unknown): value is PersonalRef {
  return !!value && typeof value === 'object' && typeof (value as any).$personal === 'string' && typeof (value as any).digest === 'string'
}

function digestOf(salt: string, value: unknown): string {
  return createHash('sha256').update(salt).update('\n').update(canonicalJson(value)).digest('hex')
}

/**
 * Replaces the personal fields of `before`/`after` with references, and returns the values to store
 * beside them (in the same transaction).
 */
export function separatePersonalData(
  entry: { subjectType: string | null; before: Record<string, unknown> | null; after: Record<string, unknown> | null; metadata?: Record<string, unknown> | null },
  customerId: number | null
) {
  const records: Array<{ ref: string; customer_id: number | null; salt: string; value: string; created_at: string }> = []
  const now = toDbDateTime(DateTime.utc())
  /**
   * Top-level fields by the subject's kind; contact fields at any depth (a nested `billing_details`,
   * an array of contacts) and in `metadata` too
   */
  const strip = (value: unknown, fields: Set<string>, depth: number): unknown => {
    if (!value || typeof value !== 'object' || depth > 8 || isPersonalRef(value)) return value
    if (Array.isArray(value)) {
      const items = value.map((item) => strip(item, CONTACT_FIELDS, depth + 1))
      return items.some((item, index) => item !== value[index]) ? items : value
    }
    let copy: Record<string, unknown> | null = null
    for (const [key, item] of Object.entries(value)) {
      if (item === null || item === undefined) continue
      let replaced: unknown = item
      if (fields.has(key) && !isPersonalRef(item)) {
        const ref = randomBytes(16).toString('hex')
        const salt = randomBytes(32).toString('hex')
        records.push({ ref, customer_id: customerId, salt, value: JSON.stringify(item), created_at: now })
        replaced = { $personal: ref, digest: digestOf(salt, item) } satisfies PersonalRef
      } else {
        replaced = strip(item, CONTACT_FIELDS, depth + 1)
      }
      if (replaced !== item) {
        copy ??= { ...(value as Record<string, unknown>) }
        copy[key] = replaced
      }
    }
    return copy ?? value
  }
  const top = entry.subjectType === 'customer' ? CUSTOMER_FIELDS : CONTACT_FIELDS
  return {
    before: strip(entry.before, top, 0) as Record<string, unknown> | null,
    after: strip(entry.after, top, 0) as Record<string, unknown> | null,
    metadata: strip(entry.metadata ?? null, CONTACT_FIELDS, 0) as Record<string, unknown> | null,
    records,
  }
}

export async function storePersonalData(trx: TransactionClientContract, records: ReturnType<typeof separatePersonalData>['records']) {
  if (records.length) await trx.table(PERSONAL_DATA_TABLE).multiInsert(records)
}

/**
 * Puts the stored personal values back into rows' `before`/`after` for reading (an erased value reads
 * as `{ $erased: true }`). Values whose digest does not match are reported, not shown.
 */
export async function revealPersonalData<T extends { before: any; after: any }>(client: QueryClientContract, rows: T[]): Promise<T[]> {
  const refs = new Set<string>()
  const collect = (value: unknown) => {
    if (!value || typeof value !== 'object') return
    if (isPersonalRef(value)) refs.add(value.$personal)
    else for (const item of Object.values(value)) collect(item)
  }
  for (const row of rows) for (const document of [row.before, row.after, (row as any).metadata]) collect(document)
  if (!refs.size) return rows
  const stored = new Map<string, { salt: string; value: string }>()
  const list = [...refs]
  for (let index = 0; index < list.length; index += 500) {
    for (const row of await client.from(PERSONAL_DATA_TABLE).whereIn('ref', list.slice(index, index + 500)).select('ref', 'salt', 'value')) stored.set(row.ref, row)
  }
  const reveal = (value: any): any => {
    if (!value || typeof value !== 'object') return value
    if (isPersonalRef(value)) {
      const found = stored.get(value.$personal)
      if (!found) return { $erased: true }
      const parsed = typeof found.value === 'string' ? JSON.parse(found.value) : found.value
      return digestOf(found.salt, parsed) === value.digest ? parsed : { $tampered: true }
    }
    if (Array.isArray(value)) return value.map(reveal)
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, reveal(item)]))
  }
  return rows.map((row) => ({ ...row, before: reveal(row.before), after: reveal(row.after), ...('metadata' in row ? { metadata: reveal((row as any).metadata) } : {}) }))
}

/**
 * Who to erase personal data for: a customer (its rows' values), a value itself (its stored copies in
 * rows that name no customer, or in one customer's rows with `customerId`; matched exactly, as it was
 * recorded), or the rows about one subject.
 */
export type PersonalDataTarget = { customerId: number } | { value: unknown; customerId?: number } | { subject: { type: string; id: string | number } }

/**
 * Erases personal data of audit rows (GDPR erasure): the values and their salts go, the chained rows
 * stay intact and still verify. Returns how many values were erased.
 */
export async function erasePersonalData(client: QueryClientContract | TransactionClientContract, target: PersonalDataTarget): Promise<number> {
  const count = (result: unknown) => (Array.isArray(result) ? Number(result[0] ?? 0) : Number(result))
  if ('value' in target) {
    const query = client.from(PERSONAL_DATA_TABLE).where('value', JSON.stringify(target.value))
    if (target.customerId === undefined) query.whereNull('customer_id')
    else query.where('customer_id', target.customerId)
    return count(await query.delete())
  }
  if ('customerId' in target) return count(await client.from(PERSONAL_DATA_TABLE).where('customer_id', target.customerId).delete())
  /**
   * The references the subject's rows hold, a page of rows at a time
   */
  let erased = 0
  let after = 0
  for (;;) {
    const rows = await client
      .from(AUDIT_TABLE)
      .where('subject_type', target.subject.type)
      .where('subject_id', String(target.subject.id))
      .where('id', '>', after)
      .orderBy('id')
      .limit(500)
      .select('id', 'before', 'after', 'metadata')
    if (!rows.length) return erased
    after = Number(rows[rows.length - 1].id)
    const refs = new Set<string>()
    const collect = (value: unknown) => {
      const parsed = typeof value === 'string' ? safeJson(value) : value
      if (!parsed || typeof parsed !== 'object') return
      if (isPersonalRef(parsed)) refs.add(parsed.$personal)
      else for (const item of Object.values(parsed)) collect(item)
    }
    for (const row of rows) for (const document of [row.before, row.after, row.metadata]) collect(document)
    if (refs.size) erased += count(await client.from(PERSONAL_DATA_TABLE).whereIn('ref', [...refs]).delete())
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}
