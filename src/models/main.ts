/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import AuditLog from './audit_log.ts'
import Customer from './customer.ts'
import EntitlementGrant from './entitlement_grant.ts'
import Invoice from './invoice.ts'
import Subscription from './subscription.ts'
import SubscriptionItem from './subscription_item.ts'
import UsageEvent from './usage_event.ts'
import UsageReport from './usage_report.ts'
import UsageRollup from './usage_rollup.ts'
import WebhookEvent from './webhook_event.ts'

export {
  AuditLog,
  Customer,
  EntitlementGrant,
  Invoice,
  Subscription,
  SubscriptionItem,
  UsageEvent,
  UsageReport,
  UsageRollup,
  WebhookEvent,
}

/**
 * Every model of the package, so the provider can point them all at the configured connection.
 */
export const billingModels = [
  AuditLog,
  Customer,
  EntitlementGrant,
  Invoice,
  Subscription,
  SubscriptionItem,
  UsageEvent,
  UsageReport,
  UsageRollup,
  WebhookEvent,
]
