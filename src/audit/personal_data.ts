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
  entry: { subjectType: string | null; before: Record<string, unknown> | null; after: Record<string, unknown> | null },
  customerId: number | null
) {
  const fields = entry.subjectType === 'customer' ? CUSTOMER_FIELDS : CONTACT_FIELDS
  const records: Array<{ ref: string; customer_id: number | null; salt: string; value: string; created_at: string }> = []
  const now = toDbDateTime(DateTime.utc())
  const strip = (document: Record<string, unknown> | null) => {
    if (!document || typeof document !== 'object' || Array.isArray(document)) return document
    let copy: Record<string, unknown> | null = null
    for (const [key, value] of Object.entries(document)) {
      if (!fields.has(key) || value === null || value === undefined || isPersonalRef(value)) continue
      const ref = randomBytes(16).toString('hex')
      const salt = randomBytes(32).toString('hex')
      records.push({ ref, customer_id: customerId, salt, value: JSON.stringify(value), created_at: now })
      copy ??= { ...document }
      copy[key] = { $personal: ref, digest: digestOf(salt, value) } satisfies PersonalRef
    }
    return copy ?? document
  }
  return { before: strip(entry.before), after: strip(entry.after), records }
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
  for (const row of rows) {
    for (const document of [row.before, row.after]) {
      if (document && typeof document === 'object') for (const value of Object.values(document)) if (isPersonalRef(value)) refs.add(value.$personal)
    }
  }
  if (!refs.size) return rows
  const stored = new Map<string, { salt: string; value: string }>()
  const list = [...refs]
  for (let index = 0; index < list.length; index += 500) {
    for (const row of await client.from(PERSONAL_DATA_TABLE).whereIn('ref', list.slice(index, index + 500)).select('ref', 'salt', 'value')) stored.set(row.ref, row)
  }
  const reveal = (document: any) => {
    if (!document || typeof document !== 'object') return document
    const copy: Record<string, unknown> = { ...document }
    for (const [key, value] of Object.entries(copy)) {
      if (!isPersonalRef(value)) continue
      const found = stored.get(value.$personal)
      if (!found) copy[key] = { $erased: true }
      else {
        const parsed = typeof found.value === 'string' ? JSON.parse(found.value) : found.value
        copy[key] = digestOf(found.salt, parsed) === value.digest ? parsed : { $tampered: true }
      }
    }
    return copy
  }
  return rows.map((row) => ({ ...row, before: reveal(row.before), after: reveal(row.after) }))
}

/**
 * Erases the personal data of a customer's audit rows (GDPR erasure): the values and their salts go,
 * the chained rows stay intact and still verify. Returns how many values were erased.
 */
export async function erasePersonalData(client: QueryClientContract | TransactionClientContract, customerId: number): Promise<number> {
  const result = await client.from(PERSONAL_DATA_TABLE).where('customer_id', customerId).delete()
  return Array.isArray(result) ? Number(result[0] ?? 0) : Number(result)
}
