/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import app from '@adonisjs/core/services/app'
import { AuthorizationResponse, Bouncer } from '@adonisjs/bouncer'
import type { BillableRow } from '../mixins/billable.ts'

/**
 * An `@adonisjs/bouncer` ability granted when billing grants the feature — the same decision as the
 * `entitled` middleware, denied with 402 (no subscription) or 403 (not in the plan).
 *
 * @example
 * // app/abilities/main.ts
 * import { entitledAbility } from 'adonis-billing/bouncer'
 * export const useSso = entitledAbility('sso')
 * // in a controller
 * if (await bouncer.allows(useSso)) { ... }
 */
export function entitledAbility(feature: string) {
  return Bouncer.ability(async (user: BillableRow) => {
    const billing = await app.container.make('billing.manager')
    if (!(feature in billing.config.features)) throw new Error(`entitledAbility("${feature}"): unknown feature`)
    const decision = await billing.for(user).check(feature)
    if (decision === 'granted') return true
    return decision === 'no_plan'
      ? AuthorizationResponse.deny(`"${feature}" needs a subscription`, 402)
      : AuthorizationResponse.deny(`Your plan does not include "${feature}"`, 403)
  })
}
