/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { InvalidArgumentException } from '../errors.ts'

/**
 * Lengths Stripe's API definitions allow for strings the package sends (`maxLength` in the OpenAPI
 * spec). The package refuses longer values itself, with the field named, instead of letting Stripe
 * answer a 400 halfway through an operation. The Stripe fake enforces the same limits.
 */
export const STRIPE_MAX_LENGTH = {
  /** `phone` of a customer */
  customerPhone: 20,
  /** `name` of a customer */
  customerName: 256,
  /** `email` of a customer */
  customerEmail: 512,
  /** `description` of a customer balance transaction */
  balanceTransactionDescription: 350,
  /** `display_name` of a billing meter */
  meterDisplayName: 250,
} as const

/**
 * Throws `E_BILLING_INVALID_ARGUMENT` naming `field` when `value` is longer than Stripe accepts.
 */
export function assertStripeLength(value: string | null | undefined, limit: number, field: string) {
  if (typeof value === 'string' && value.length > limit) {
    throw new InvalidArgumentException(`${field} must be at most ${limit} characters (Stripe's limit), got ${value.length}`)
  }
}
