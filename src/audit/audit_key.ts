/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { InvalidConfigException } from '../errors.ts'

/**
 * Label of the chain MAC: the version of the formula, first in every MACed message.
 */
const CHAIN_LABEL = 'adonis-billing:audit:v2'
const CHECKPOINT_LABEL = 'adonis-billing:audit-checkpoint:v1'

/**
 * Key ids are stored on every row and travel inside a PostgreSQL setting: short and plain.
 */
export const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/

/**
 * The keys the audit chain is MACed with: a secret that is never in the database. `current` signs
 * new rows; every key (current and previous, by id) verifies the rows that name it.
 */
export class AuditKeyring {
  readonly currentId: string
  #keys: Map<string, Buffer>

  constructor(currentId: string, keys: Map<string, Buffer>) {
    this.currentId = currentId
    this.#keys = keys
  }

  /**
   * From the config: `audit.key` (default: the app key) under `audit.keyId` (default `app`), plus
   * `audit.previousKeys` so rows signed before a rotation still verify. Each secret is stretched with
   * HMAC-SHA256 under a fixed label, so the app key itself is never used as is.
   */
  static from(options: { keyId: string; key: string; previousKeys: Record<string, string> }): AuditKeyring {
    const keys = new Map<string, Buffer>()
    for (const [id, secret] of Object.entries(options.previousKeys)) keys.set(id, derive(secret))
    keys.set(options.keyId, derive(options.key))
    return new AuditKeyring(options.keyId, keys)
  }

  key(id: string): Buffer | null {
    return this.#keys.get(id) ?? null
  }

  /**
   * The chain MAC of a row: HMAC-SHA256 over its key id, place, predecessor and content hash.
   */
  chainMac(keyId: string, seq: number, prevHash: string, contentHash: string): string | null {
    const key = this.key(keyId)
    if (!key) return null
    return createHmac('sha256', key).update(chainMessage(keyId, seq, prevHash, contentHash)).digest('hex')
  }

  /**
   * What the PostgreSQL seal trigger MACs with, for this transaction only (`set_config(…, true)`):
   * `<key id>:<key ⊕ ipad>:<key ⊕ opad>` in hex, so the trigger computes HMAC-SHA256 with two
   * `sha256()` calls. Sent as a bound parameter, never stored.
   */
  sealSetting(): string {
    const block = Buffer.alloc(64)
    this.key(this.currentId)!.copy(block)
    const pad = (byte: number) => Buffer.from(block.map((value) => value ^ byte)).toString('hex')
    return `${this.currentId}:${pad(0x36)}:${pad(0x5c)}`
  }

  /**
   * Signs a checkpoint (the chain's place and hash at a moment).
   */
  signCheckpoint(checkpoint: Omit<AuditCheckpoint, 'mac' | 'keyId'>): AuditCheckpoint {
    const keyId = this.currentId
    return { ...checkpoint, keyId, mac: createHmac('sha256', this.key(keyId)!).update(checkpointMessage({ ...checkpoint, keyId })).digest('hex') }
  }

  /**
   * True when the checkpoint was signed with one of these keys and not altered since.
   */
  verifyCheckpoint(checkpoint: AuditCheckpoint): boolean {
    const key = typeof checkpoint.keyId === 'string' ? this.key(checkpoint.keyId) : null
    if (!key || typeof checkpoint.mac !== 'string' || !/^[0-9a-f]{64}$/.test(checkpoint.mac)) return false
    const expected = createHmac('sha256', key).update(checkpointMessage(checkpoint)).digest()
    return timingSafeEqual(expected, Buffer.from(checkpoint.mac, 'hex'))
  }
}

/**
 * An exported checkpoint: the chain had `seq` rows ending with `hash` at `at` (ISO-8601 UTC).
 */
export interface AuditCheckpoint {
  seq: number
  hash: string
  at: string
  keyId: string
  mac: string
}

function derive(secret: string): Buffer {
  if (typeof secret !== 'string' || secret.length < 16) throw new InvalidConfigException('audit.key', 'must be a secret of at least 16 characters')
  return createHmac('sha256', secret).update('adonis-billing:audit-key:v1').digest()
}

/**
 * The MACed message of a row (the PostgreSQL trigger builds the same text).
 */
export function chainMessage(keyId: string, seq: number, prevHash: string, contentHash: string): string {
  return `${CHAIN_LABEL}\n${keyId}\n${seq}\n${prevHash}\n${contentHash}`
}

function checkpointMessage(checkpoint: { seq: number; hash: string; at: string; keyId: string }): string {
  return `${CHECKPOINT_LABEL}\n${checkpoint.keyId}\n${checkpoint.seq}\n${checkpoint.hash}\n${checkpoint.at}`
}

/**
 * The unkeyed link of rows written before the chain was keyed (`key_id` null): sha256 of
 * `prevHash + "\n" + contentHash`. Accepted only before the first keyed row.
 */
export function legacyChainHash(prevHash: string, contentHashHex: string): string {
  return createHash('sha256').update(prevHash).update('\n').update(contentHashHex).digest('hex')
}
