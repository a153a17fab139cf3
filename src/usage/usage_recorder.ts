/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import Customer from '../models/customer.ts'
import { BillingException, IdempotencyConflictException } from '../errors.ts'
import type { BillingManager } from '../billing_manager.ts'
import { recordUsageBatch } from './record_usage.ts'
import { MAX_QUANTITY_DIGITS, propertiesProblem, quantityText, textProblem, usagePayloadHash } from './usage_input.ts'

/**
 * One usage record to store.
 */
export interface UsageRecordInput {
  /** Local customer id (`billing_customers.id`) */
  customerId: number
  meter: string
  /** A non-negative number or decimal string (`'0.5'`) */
  quantity: number | string
  /** Required: a repeat with the same key is acknowledged as a duplicate, not counted */
  idempotencyKey: string
  /** When the usage happened (default now); within `usage.maxAgeDays` back and `usage.maxFutureSeconds` ahead */
  at?: DateTime | string
  properties?: Record<string, unknown>
}

/**
 * What happened to each record, in input order.
 */
export type UsageRecordResult = { index: number; status: 'recorded' | 'duplicate' }

/**
 * A batch had invalid records: nothing was stored. `errors` names each item and field.
 */
export class UsageValidationException extends BillingException {
  static status = 422
  static code = 'E_BILLING_INVALID_USAGE'
  errors: Array<{ index: number; field: string; message: string }> = []
}

const MAX_KEY_LENGTH = 255

/**
 * Who stored a batch, kept on each recorded event (`user:12`, `service`, `cli:alice`).
 */
export interface UsageRecordOptions {
  actor?: string
}

/**
 * Validates and stores usage records: all of a batch or nothing, in one transaction, each event
 * folded into its hourly rollup; duplicates (same customer, meter and idempotency key, in the batch or
 * before it) are acknowledged and not counted.
 */
export class UsageRecorder {
  #manager: BillingManager

  constructor(manager: BillingManager) {
    this.#manager = manager
  }

  #validate(records: UsageRecordInput[], knownCustomers: Set<number>, now: DateTime) {
    const errors: UsageValidationException['errors'] = []
    const { maxAgeDays: MAX_AGE_DAYS, maxFutureSeconds: MAX_FUTURE_SECONDS, maxPropertiesBytes: MAX_PROPERTIES_BYTES } = this.#manager.config.usage
    const oldest = now.minus({ days: MAX_AGE_DAYS }).toMillis()
    const newest = now.plus({ seconds: MAX_FUTURE_SECONDS }).toMillis()
    const meters = this.#manager.config.meters
    const items = records.map((record, index) => {
      const fail = (field: string, message: string) => errors.push({ index, field, message })
      if (!record || typeof record !== 'object') {
        fail('record', 'must be an object')
        return null
      }
      if (!Number.isSafeInteger(record.customerId) || !knownCustomers.has(record.customerId)) fail('customerId', 'unknown customer')
      if (typeof record.meter !== 'string' || !Object.hasOwn(meters, record.meter)) fail('meter', `unknown meter ${JSON.stringify(record.meter)}`)
      const quantity = quantityText(record.quantity)
      if (quantity === null) {
        const negative = (typeof record.quantity === 'number' && record.quantity < 0) || (typeof record.quantity === 'string' && record.quantity.startsWith('-'))
        fail('quantity', negative ? 'must not be negative' : `must be a number or a decimal string (at most ${MAX_QUANTITY_DIGITS} integer and 12 decimal digits)`)
      }
      const keyProblem = textProblem(record.idempotencyKey, MAX_KEY_LENGTH)
      if (keyProblem) fail('idempotencyKey', keyProblem)
      const at = record.at === undefined ? now : typeof record.at === 'string' ? DateTime.fromISO(record.at, { zone: 'utc' }) : record.at
      if (!DateTime.isDateTime(at) || !at.isValid) fail('at', 'must be an ISO-8601 timestamp')
      else if (at.toMillis() < oldest) fail('at', `is more than ${MAX_AGE_DAYS} days in the past`)
      else if (at.toMillis() > newest) fail('at', `is more than ${MAX_FUTURE_SECONDS} seconds in the future`)
      if (record.properties !== undefined) {
        if (!record.properties || typeof record.properties !== 'object' || Array.isArray(record.properties)) fail('properties', 'must be an object')
        else {
          const problem = propertiesProblem(record.properties)
          if (problem) fail('properties', problem)
          else if (Buffer.byteLength(JSON.stringify(record.properties)) > MAX_PROPERTIES_BYTES) fail('properties', `must be at most ${MAX_PROPERTIES_BYTES} bytes of JSON`)
        }
      }
      if (errors.length && errors[errors.length - 1].index === index) return null
      /**
       * What a repeat of this key must say again: the timestamp the caller sent (none = "now", so a
       * retry without one still matches), the canonical quantity, meter and properties
       */
      const payloadHash = usagePayloadHash({
        meter: record.meter,
        quantity: quantity!,
        at: record.at === undefined ? null : (at as DateTime).toUTC().toISO(),
        properties: record.properties ?? null,
      })
      return { ...record, quantity: quantity as string, at: at as DateTime, payloadHash }
    })
    if (errors.length) {
      const error = new UsageValidationException(`${errors.length} invalid usage record field(s); nothing was stored`)
      error.errors = errors
      error.details = { errors }
      throw error
    }
    return items as Array<UsageRecordInput & { quantity: string; at: DateTime; payloadHash: string }>
  }

  /**
   * Refuses a batch that is not an array or is over `usage.maxBatch` (413), before anything is read
   * or resolved for it.
   */
  assertBatch(records: unknown): asserts records is unknown[] {
    if (!Array.isArray(records)) throw new UsageValidationException('Usage records must be an array')
    if (records.length > this.#manager.config.usage.maxBatch) {
      const error = new UsageValidationException(`At most ${this.#manager.config.usage.maxBatch} records per batch (got ${records.length}); nothing was stored`)
      error.status = 413
      throw error
    }
  }

  /**
   * Stores a batch (all or nothing) and says, per record, whether it was recorded or a duplicate. A
   * key repeated with a different payload (in the batch or before it) fails the whole batch with
   * `E_BILLING_IDEMPOTENCY_CONFLICT` (409), nothing stored.
   */
  async recordMany(records: UsageRecordInput[], options: UsageRecordOptions = {}): Promise<UsageRecordResult[]> {
    this.assertBatch(records)
    if (records.length === 0) return []
    if (options.actor !== undefined && textProblem(options.actor, 255)) throw new UsageValidationException('The actor must be well-formed text of at most 255 characters')
    const now = DateTime.utc()
    const ids = [...new Set(records.map((record) => record?.customerId).filter((id) => Number.isSafeInteger(id)))]
    const known = new Set<number>(
      ids.length ? (await this.#manager.db().from(Customer.table).whereIn('id', ids).select('id')).map((row: { id: number }) => Number(row.id)) : []
    )
    const items = this.#validate(records, known, now)
    /**
     * Insert in key order, so concurrent batches take the unique-index and rollup locks in the same
     * order and cannot deadlock each other
     */
    const order = items
      .map((item, index) => ({ item, index }))
      .sort((a, b) =>
        a.item.customerId - b.item.customerId ||
        (a.item.meter < b.item.meter ? -1 : a.item.meter > b.item.meter ? 1 : 0) ||
        (a.item.idempotencyKey < b.item.idempotencyKey ? -1 : a.item.idempotencyKey > b.item.idempotencyKey ? 1 : 0)
      )
    return this.#manager
      .db()
      .transaction(async (trx) => {
      const { recorded, conflicts } = await recordUsageBatch(
        trx,
        order.map(({ item }) => ({
          customerId: item.customerId,
          meter: item.meter,
          quantity: item.quantity,
          idempotencyKey: item.idempotencyKey,
          occurredAt: item.at,
          properties: item.properties ?? null,
          payloadHash: item.payloadHash,
          actor: options.actor ?? null,
        }))
      )
      if (conflicts.length) {
        const indexes = conflicts.map((position) => order[position].index).sort((a, b) => a - b)
        const error = new IdempotencyConflictException(
          `${indexes.length} record(s) reuse an idempotency key with a different payload; nothing was stored`
        )
        error.details = { errors: indexes.map((index) => ({ index, field: 'idempotencyKey', message: 'already used with a different payload' })) }
        throw error
      }
      const results: UsageRecordResult[] = new Array(items.length)
      order.forEach(({ index }, position) => {
        results[index] = { index, status: recorded[position] ? 'recorded' : 'duplicate' }
      })
      return results
    })
      .catch((error: any) => {
        /**
         * numeric(30,12) overflow (PostgreSQL 22003): an hourly total would exceed what the column holds
         */
        if (error?.code === '22003') throw new UsageValidationException('An hourly usage total would exceed the 18 integer digits the database holds; nothing was stored')
        throw error
      })
  }
}
