/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHmac, timingSafeEqual } from 'node:crypto'
import { InvalidConfigException } from '../errors.ts'

/**
 * Label of the chain MAC: the version of the formula, first in every MACed message.
 */
const CHAIN_LABEL = 'adonis-billing:audit:v3'
const CONTENT_LABEL = 'adonis-billing:audit-content:v3'
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
   * Order of the keys along the chain: previous keys in the order given, the current one last. A row
   * may not name a key that precedes one an earlier row named (a retired key signs nothing new).
   */
  rank(keyId: string): number {
    return [...this.#keys.keys()].indexOf(keyId)
  }

  /**
   * The MAC a row's content gets when the package writes it: proves the row came from the package
   * (a row inserted around it cannot have one). Null for an unknown key id.
   */
  contentMac(keyId: string, contentHash: string): string | null {
    const key = this.key(keyId)
    if (!key) return null
    return createHmac('sha256', key).update(`${CONTENT_LABEL}\n${keyId}\n${contentHash}`).digest('hex')
  }

  /**
   * The keyed chain: HMAC-SHA256 over the row's key id, place, the previous row's MAC and the row's
   * link hash. Computed in the app only: the key never reaches the database.
   */
  chainMac(keyId: string, seq: number, prevMac: string, hash: string): string | null {
    const key = this.key(keyId)
    if (!key) return null
    return createHmac('sha256', key).update(chainMessage(keyId, seq, prevMac, hash)).digest('hex')
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
 * The MACed message of a row's place in the keyed chain.
 */
export function chainMessage(keyId: string, seq: number, prevMac: string, hash: string): string {
  return `${CHAIN_LABEL}\n${keyId}\n${seq}\n${prevMac}\n${hash}`
}

function checkpointMessage(checkpoint: { seq: number; hash: string; at: string; keyId: string }): string {
  return `${CHECKPOINT_LABEL}\n${checkpoint.keyId}\n${checkpoint.seq}\n${checkpoint.hash}\n${checkpoint.at}`
}
