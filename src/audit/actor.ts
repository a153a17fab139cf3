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
  /** The operating-system user running an ace command */
  cli(): AuditActor {
    let name: string | null = null
    try {
      name = process.env.BILLING_CLI_USER || userInfo().username
    } catch {
      name = process.env.USER ?? null
    }
    return { type: 'cli', id: name }
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
    const requestId = ctx.request.id() ?? ctx.request.header('x-request-id') ?? null
    return { actor: user ? actors.user(user) : { type: 'anonymous', id: null }, requestId }
  }
  if (app.getEnvironment() === 'console') return { actor: actors.cli(), requestId: null }
  return { actor: actors.system(), requestId: null }
}
