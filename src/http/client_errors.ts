/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { debuglog } from 'node:util'
import type { HttpContext } from '@adonisjs/core/http'
import { BillingException, DatabaseUnavailableException, InvalidArgumentException } from '../errors.ts'

const debug = debuglog('adonis-billing:http')

/**
 * Whether an error comes from the database driver (pg's `DatabaseError`, better-sqlite3's
 * `SqliteError`, knex pool timeouts): its message may hold SQL and values, never shown to a client.
 */
function isDatabaseError(error: any): boolean {
  if (!error || typeof error !== 'object') return false
  const name = error.constructor?.name ?? error.name
  const code = typeof error.code === 'string' ? error.code : ''
  return (
    ['DatabaseError', 'SqliteError', 'KnexTimeoutError'].includes(name) ||
    code.startsWith('SQLITE_') ||
    (/^[0-9A-Z]{5}$/.test(code) && 'severity' in error)
  )
}

/**
 * What a client may see of an error raised while serving a package route: billing errors as they
 * are (problem+json, stable code); a database error as a generic problem — 422 when PostgreSQL says
 * the input was at fault (class 22, data exception), else 503 — with the SQL logged, not sent.
 */
export function clientError(error: unknown): unknown {
  if (error instanceof BillingException || !isDatabaseError(error)) return error
  const code = (error as any).code as string
  debug('database error %s: %s', code, (error as Error).message)
  if (/^22/.test(code)) return new InvalidArgumentException('The database refused a value of this request; nothing was stored')
  return new DatabaseUnavailableException('The billing database could not complete the request; try again')
}

/**
 * A package route handler whose database errors reach the client as problem+json only.
 */
export function guarded<T>(handler: (ctx: HttpContext) => Promise<T>) {
  return async (ctx: HttpContext) => {
    try {
      return await handler(ctx)
    } catch (error) {
      throw clientError(error)
    }
  }
}
