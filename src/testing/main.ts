/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

/**
 * Test helpers of adonis-billing (`adonis-billing/testing`).
 */
export { StripeFake } from './stripe_fake/stripe_fake.ts'
export { StripeFakeStore } from './stripe_fake/store_view.ts'
export { TEST_CARDS, type TestCard, type CardBehavior } from './stripe_fake/cards.ts'
export { FAKE_TAX_PERCENT, FAKE_TAX_RATE_ID } from './stripe_fake/billing.ts'
export type {
  CheckoutCompletion,
  DeliverOptions,
  DeliveryResult,
  FailOptions,
  FaultKind,
  FaultMatcher,
  RecordedRequest,
  SignOptions,
  StripeFakeClientOptions,
  StripeFakeOptions,
  TimeoutOptions,
  WebhookDelivery,
  WebhookEndpoint,
} from './stripe_fake/types.ts'
