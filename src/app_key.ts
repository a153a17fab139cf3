/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { ApplicationService } from '@adonisjs/core/types'

/**
 * The host's app key (`config/app.ts` `appKey`, a `Secret` or a string), from which the package derives
 * its own keys (checkout link proofs, the audit chain MAC). Throws naming what is missing.
 */
export function appKeyText(app: ApplicationService, purpose: string): string {
  const appKey = app.config.get<unknown>('app.appKey')
  const text = typeof appKey === 'string' ? appKey : typeof (appKey as any)?.release === 'function' ? (appKey as any).release() : ''
  if (!text) throw new Error(`adonis-billing needs app.appKey ${purpose}`)
  return text
}
