/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

export { configure } from './configure.ts'
export { stubsRoot } from './stubs/main.ts'
export { defineConfig } from './src/define_config.ts'
export { Billable } from './src/mixins/billable.ts'
export { BillingManager } from './src/billing_manager.ts'
export { CustomerScope } from './src/customers/customer_scope.ts'
export { AuditTrail, GENESIS_HASH } from './src/audit/audit_trail.ts'
export { actors } from './src/audit/actor.ts'
export * as errors from './src/errors.ts'
export { WebhookInProgressException, WebhookProcessingException } from './src/webhooks/webhook_processor.ts'
export {
  WebhookRejectedException,
  WebhookPayloadInvalidException,
  WebhookPayloadTooLargeException,
  WebhookNotConfiguredException,
} from './src/webhooks/stripe_signature.ts'
export type * from './src/types.ts'
