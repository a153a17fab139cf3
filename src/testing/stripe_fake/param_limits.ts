/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { STRIPE_MAX_LENGTH } from '../../stripe/stripe_limits.ts'
import type { ParamLimits } from './form.ts'

/**
 * Limits of Stripe's API definitions (`maxLength`, `maxItems`) the SDK's types do not carry, by
 * endpoint schema and parameter path: the fake refuses what Stripe refuses.
 */
const customer = {
  maxLength: { phone: STRIPE_MAX_LENGTH.customerPhone, name: STRIPE_MAX_LENGTH.customerName, email: STRIPE_MAX_LENGTH.customerEmail },
}

export const PARAM_LIMITS: Readonly<Record<string, ParamLimits>> = {
  CustomerCreateParams: customer,
  CustomerUpdateParams: customer,
  CustomerCreateBalanceTransactionParams: { maxLength: { description: STRIPE_MAX_LENGTH.balanceTransactionDescription } },
  'Billing.MeterCreateParams': { maxLength: { display_name: STRIPE_MAX_LENGTH.meterDisplayName } },
  'Billing.MeterUpdateParams': { maxLength: { display_name: STRIPE_MAX_LENGTH.meterDisplayName } },
  PriceListParams: { maxItems: { lookup_keys: 10 } },
}

/**
 * Longest `Idempotency-Key` Stripe accepts.
 */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255
