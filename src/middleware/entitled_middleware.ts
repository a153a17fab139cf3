/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { billableIdentity } from '../mixins/billable.ts'
import { clientError } from '../http/client_errors.ts'
import { FeatureNotIncludedException, InvalidConfigException, PaymentRequiredException, QuotaExceededException, UnauthenticatedException } from '../errors.ts'

/**
 * Options of `middleware.entitled()`: one feature (optionally consuming quota), or any of several.
 */
export type EntitledOptions = { feature: string; consume?: number } | { anyOf: string[] }

/**
 * Named middleware `entitled`: lets the request through only when the authenticated billable's
 * billing grants the feature — the same answer `GET /billing/v1/me/entitlements` gives. Denials are
 * problem+json: 401 (no user), 402 (no subscription grants anything), 403 (the plan lacks the
 * feature), 429 with `Retry-After` (quota spent). With `consume`, the quota is used atomically and
 * every request let through counts: nothing the client sends (such as `X-Request-Id`) can make a
 * request free.
 *
 * @example
 * router.get('/reports', handler).use(middleware.entitled({ feature: 'advanced_reports' }))
 * router.post('/api/run', handler).use(middleware.entitled({ feature: 'api_calls', consume: 1 }))
 * router.get('/exports', handler).use(middleware.entitled({ anyOf: ['sso', 'exports'] }))
 */
export default class EntitledMiddleware {
  async handle(ctx: HttpContext, next: NextFn, options: EntitledOptions) {
    /**
     * Warm path: one feature granted by this instance's cache, decided without an await
     */
    const user = (ctx as any).auth?.user
    if (user && options && 'feature' in options && !options.consume && typeof user.billingEmail === 'function') {
      const billing = await ctx.containerResolver.make('billing.manager')
      if (options.feature in billing.config.features) {
        const { type, id } = billableIdentity(user)
        if (billing.entitlements.cachedDecision(type, id, options.feature) === 'granted') return next()
      }
    }
    try {
      return await this.#gate(ctx, next, options)
    } catch (error: any) {
      /**
       * Browsers are sent to the upgrade page when one is configured; APIs get problem+json
       */
      const billing = await ctx.containerResolver.make('billing.manager')
      const redirectTo = billing.config.entitlements.redirectTo
      const denial = error instanceof PaymentRequiredException || error instanceof FeatureNotIncludedException || error instanceof QuotaExceededException
      if (denial && redirectTo && ctx.request.accepts(['json', 'html']) === 'html') {
        const feature = 'feature' in options ? options.feature : options.anyOf.join(',')
        return ctx.response.redirect(`${redirectTo}?${new URLSearchParams({ feature, code: String(error.code) })}`)
      }
      throw error
    }
  }

  async #gate(ctx: HttpContext, next: NextFn, options: EntitledOptions) {
    const billing = await ctx.containerResolver.make('billing.manager')
    const features = options && 'anyOf' in options ? options.anyOf : [options?.feature]
    if (!features.length || features.some((feature) => typeof feature !== 'string' || !(feature in billing.config.features))) {
      throw new InvalidConfigException(`entitled(${JSON.stringify(options ?? null)})`, 'unknown feature')
    }
    const user = (ctx as any).auth?.user
    if (!user) throw new UnauthenticatedException('Sign in to use this feature')
    const scope = billing.for(user)

    if ('feature' in options && options.consume) {
      /**
       * Every request that passes is one use: no key from the request (X-Request-Id is the client's)
       */
      await scope.consume(options.feature, options.consume).catch((error: unknown) => {
        throw clientError(error)
      })
      return next()
    }
    const decisions = await Promise.all(features.map((feature) => scope.check(feature)))
    if (decisions.includes('granted')) return next()
    const names = features.map((feature) => `"${feature}"`).join(' or ')
    if (decisions.every((decision) => decision === 'no_plan')) throw new PaymentRequiredException(`${names} needs a subscription`)
    throw new FeatureNotIncludedException(`Your plan does not include ${names}`)
  }
}
