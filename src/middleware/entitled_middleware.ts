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
import { FeatureNotIncludedException, InvalidConfigException, PaymentRequiredException, UnauthenticatedException } from '../errors.ts'

/**
 * Options of `middleware.entitled()`.
 */
export interface EntitledOptions {
  feature: string
}

/**
 * Named middleware `entitled`: lets the request through only when the authenticated billable's
 * billing grants the feature. Answers problem+json 401 (no user), 402 (no subscription that grants
 * anything) or 403 (the plan lacks the feature).
 *
 * @example
 * router.get('/reports', handler).use(middleware.entitled({ feature: 'advanced_reports' }))
 */
export default class EntitledMiddleware {
  async handle(ctx: HttpContext, next: NextFn, options: EntitledOptions) {
    const billing = await ctx.containerResolver.make('billing.manager')
    if (!options?.feature || !(options.feature in billing.config.features)) {
      throw new InvalidConfigException(`entitled({ feature: ${JSON.stringify(options?.feature)} })`, 'unknown feature')
    }
    const user = (ctx as any).auth?.user
    if (!user) throw new UnauthenticatedException('Sign in to use this feature')

    const decision = await billing.for(user).check(options.feature)
    if (decision === 'no_plan') {
      throw new PaymentRequiredException(`"${options.feature}" needs a subscription`)
    }
    if (decision === 'not_included') {
      throw new FeatureNotIncludedException(`Your plan does not include "${options.feature}"`)
    }
    return next()
  }
}
