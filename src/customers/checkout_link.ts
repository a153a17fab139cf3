/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { createHmac, timingSafeEqual } from 'node:crypto'
import { appKeyText } from '../app_key.ts'
import type { ApplicationService } from '@adonisjs/core/types'

/**
 * Metadata key of the link proof a package-made Checkout Session carries.
 */
export const CHECKOUT_LINK_KEY = 'adonis_billing_link'

/**
 * The key link proofs are signed with, derived from the app key (never stored in the database or
 * sent to Stripe).
 */
function linkKey(app: ApplicationService): Buffer {
  return createHmac('sha256', appKeyText(app, 'to sign checkout links')).update('adonis-billing:checkout-link:v1').digest()
}

/**
 * The proof, put in a session's metadata by the package, that this session was made by this app for
 * this local customer and this Stripe customer. A buyer can set `client_reference_id` (Payment Links,
 * pricing tables) but cannot forge this.
 */
export function checkoutLinkProof(app: ApplicationService, customerId: number, stripeCustomerId: string): string {
  return createHmac('sha256', linkKey(app)).update(`${customerId}:${stripeCustomerId}`).digest('hex')
}

/**
 * The local customer id a session may link its Stripe customer to: only the one its metadata names
 * with a valid proof, else `null` (a session the package did not make links nothing).
 */
export function verifiedCheckoutLink(app: ApplicationService, metadata: Record<string, string> | null | undefined, stripeCustomerId: string): string | null {
  const localId = metadata?.adonis_billing_customer_id
  const proof = metadata?.[CHECKOUT_LINK_KEY]
  if (typeof localId !== 'string' || !/^\d{1,18}$/.test(localId) || typeof proof !== 'string' || proof.length !== 64) return null
  const expected = Buffer.from(checkoutLinkProof(app, Number(localId), stripeCustomerId), 'hex')
  const given = Buffer.from(proof, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected) ? localId : null
}
