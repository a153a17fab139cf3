/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Obj } from './util.ts'

interface Entry {
  obj: Obj
  seq: number
}

/**
 * In-memory object store of the fake, keyed by id. Objects keep their insertion sequence so lists
 * can be ordered like Stripe's: newest first.
 */
export class ObjectStore {
  #entries = new Map<string, Entry>()
  #seq = 0

  /**
   * Inserts or replaces an object (a replaced object keeps its position).
   */
  put(object: Obj): Obj {
    const existing = this.#entries.get(object.id)
    if (existing) existing.obj = object
    else this.#entries.set(object.id, { obj: object, seq: ++this.#seq })
    return object
  }

  /**
   * The live stored object (callers must clone before handing it out).
   */
  get(id: string): Obj | undefined {
    return this.#entries.get(id)?.obj
  }

  /**
   * Whether an object with this id exists.
   */
  has(id: string): boolean {
    return this.#entries.has(id)
  }

  /**
   * Removes an object.
   */
  delete(id: string) {
    this.#entries.delete(id)
  }

  /**
   * Every stored object whose `object` field is `kind`, newest first.
   */
  list(kind: string): Obj[] {
    const out: Entry[] = []
    for (const entry of this.#entries.values()) if (entry.obj.object === kind) out.push(entry)
    out.sort((a, b) => b.seq - a.seq)
    return out.map((entry) => entry.obj)
  }

  /**
   * Removes everything.
   */
  clear() {
    this.#entries.clear()
    this.#seq = 0
  }
}
