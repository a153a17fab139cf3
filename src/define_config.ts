/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { configProvider } from '@adonisjs/core'
import type { ConfigProvider } from '@adonisjs/core/types'
import { assertProductionSecrets, normalizeConfig } from './catalog/normalize_config.ts'
import type { BillingConfigInput, ResolvedBillingConfig } from './types.ts'

/**
 * Defines the billing config: the catalog (features, meters, plans), the status policy, tax and
 * Stripe settings. The catalog is validated right away, so a mistake fails boot with
 * `E_BILLING_INVALID_CONFIG` naming the key; secrets are required once the app runs in production.
 *
 * @example
 * export default defineConfig({
 *   stripe: { secretKey: env.get('STRIPE_SECRET_KEY'), webhookSecret: env.get('STRIPE_WEBHOOK_SECRET') },
 *   features: { sso: { type: 'boolean' } },
 *   plans: { pro: { name: 'Pro', prices: { month: { amount: 2900 } }, features: { sso: true } } },
 * })
 */
export function defineConfig<const T extends BillingConfigInput>(config: T): ConfigProvider<ResolvedBillingConfig> {
  const resolved = normalizeConfig(config)
  return configProvider.create(async (app) => {
    if (app.inProduction) assertProductionSecrets(resolved)
    return resolved
  })
}
