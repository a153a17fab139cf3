/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { HttpContext } from '@adonisjs/core/http'
import { UnauthenticatedException } from '../errors.ts'

/**
 * `GET <prefix>/v1/me/entitlements`: exactly what the `entitled` middleware enforces, for the
 * authenticated billable (`ctx.auth.user`), so a UI never shows a feature the server will refuse.
 */
export async function myEntitlements(ctx: HttpContext) {
  const billing = await ctx.containerResolver.make('billing.manager')
  const user = (ctx as any).auth?.user
  if (!user) throw new UnauthenticatedException('Sign in to see your entitlements')
  return ctx.response.ok(await billing.for(user).entitlements())
}
