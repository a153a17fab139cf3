/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { userInfo } from 'node:os'
import { HttpContext } from '@adonisjs/core/http'
import type { ApplicationService } from '@adonisjs/core/types'
import type { AuditActor } from '../types.ts'

/**
 * Builders for the actors the package records.
 */
export const actors = {
  /** An authenticated user of the host app (any Lucid model or id) */
  user(user: { $primaryKeyValue?: unknown; id?: unknown } | string | number): AuditActor {
    const id = typeof user === 'object' ? (user.$primaryKeyValue ?? user.id) : user
    return { type: 'user', id: id === undefined || id === null ? null : String(id) }
  },
  /** A webhook event being processed */
  webhook(eventId: string): AuditActor {
    return { type: 'webhook', id: eventId }
  },
  /**
   * The operating-system user running an ace command. `BILLING_CLI_USER` (who says they are at the
   * keyboard, e.g. behind a shared deploy account) is kept as an unverified claim, never as the id.
   */
  cli(): AuditActor {
    let name: string | null = null
    try {
      name = userInfo().username
    } catch {
      name = process.env.USER ?? null
    }
    const claim = process.env.BILLING_CLI_USER
    return claim ? { type: 'cli', id: name, claim } : { type: 'cli', id: name }
  },
  /** The package itself (schedulers, background work) */
  system(): AuditActor {
    return { type: 'system', id: null }
  },
}

/**
 * Who is acting right now: the auth user of the current HTTP request (needs
 * `useAsyncLocalStorage: true` in config/app.ts), the CLI user inside ace commands, else `system`.
 */
export function currentActor(app: ApplicationService): { actor: AuditActor; requestId: string | null } {
  const ctx = HttpContext.get()
  if (ctx) {
    const user = (ctx as any).auth?.user
    const requestId = unverifiedText(ctx.request.id() ?? ctx.request.header('x-request-id'), 255)
    return { actor: user ? actors.user(user) : { type: 'anonymous', id: null }, requestId }
  }
  if (app.getEnvironment() === 'console') return { actor: actors.cli(), requestId: null }
  return { actor: actors.system(), requestId: null }
}

/**
 * Text a client sent (a request id, a claimed name), kept only as unverified metadata: `null` unless
 * a string, NUL and lone surrogates dropped, cut to `max` characters. Never an identity or a key.
 */
export function unverifiedText(value: unknown, max: number): string | null {
  if (typeof value !== 'string' || value.length === 0) return null
  const clean = value.toWellFormed().replaceAll('\u0000', '')
  return clean.length > max ? clean.slice(0, max) : clean || null
}
