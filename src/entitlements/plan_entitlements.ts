/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import type Subscription from '../models/subscription.ts'
import type { FeatureValue, ResolvedBillingConfig } from '../types.ts'

/**
 * Whether a subscription grants its plan's features now, under the configured status policy:
 * `active` and `trialing` do; `past_due` does during the grace period; `incomplete`, `unpaid` and
 * `paused` do only when the policy says `plan`; ended ones never do.
 */
export function subscriptionGrants(
  subscription: Pick<Subscription, 'status' | 'endsAt' | 'pastDueSince' | 'updatedAt'>,
  config: ResolvedBillingConfig,
  now = DateTime.utc()
) {
  if (subscription.endsAt && subscription.endsAt <= now) return false
  switch (subscription.status) {
    case 'active':
    case 'trialing':
      return true
    case 'past_due': {
      const since = subscription.pastDueSince ?? subscription.updatedAt
      return since.plus({ days: config.policy.pastDueGraceDays }) > now
    }
    case 'incomplete':
      return config.policy.incomplete === 'plan'
    case 'unpaid':
      return config.policy.unpaid === 'plan'
    case 'paused':
      return config.policy.paused === 'plan'
    default:
      return false
  }
}

/**
 * Combines the features of the plans of granting subscriptions: booleans OR, limits add (or take the
 * max when the feature says `combine: 'max'`), `'unlimited'` wins.
 */
export function combinePlanFeatures(planKeys: string[], config: ResolvedBillingConfig): Record<string, FeatureValue> {
  const result: Record<string, FeatureValue> = {}
  for (const key of planKeys) {
    const plan = config.plans[key]
    if (!plan) continue
    for (const [feature, value] of Object.entries(plan.features)) {
      const current = result[feature]
      const definition = config.features[feature]
      if (current === undefined) result[feature] = value
      else if (typeof value === 'boolean') result[feature] = current === true || value
      else if (current === 'unlimited' || value === 'unlimited') result[feature] = 'unlimited'
      else if (definition?.type === 'limit' && definition.combine === 'max') result[feature] = Math.max(current as number, value)
      else result[feature] = (current as number) + value
    }
  }
  return result
}

/**
 * Whether a combined feature value lets the customer use the feature at all.
 */
export function isGranted(value: FeatureValue | undefined): boolean {
  if (value === undefined || value === false) return false
  if (typeof value === 'number') return value > 0
  return true
}

/**
 * Applies active grants on top of the plans' features: a boolean grant switches the feature on, a
 * number raises the limit or quota by that much, `'unlimited'` lifts it.
 */
export function applyGrants(
  features: Record<string, FeatureValue>,
  grants: Array<{ feature: string; value: FeatureValue }>,
  config: ResolvedBillingConfig
): Record<string, FeatureValue> {
  const result = { ...features }
  for (const grant of grants) {
    const definition = config.features[grant.feature]
    if (!definition) continue
    const current = result[grant.feature]
    if (definition.type === 'boolean') {
      result[grant.feature] = current === true || grant.value === true
    } else if (current === 'unlimited' || grant.value === 'unlimited') {
      result[grant.feature] = 'unlimited'
    } else if (typeof grant.value === 'number') {
      result[grant.feature] = (typeof current === 'number' ? current : 0) + grant.value
    }
  }
  return result
}
