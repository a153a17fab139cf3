/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { linkInvoicesToSubscription } from '../invoices/apply_stripe_invoice.ts'
import { bumpEntitlementVersion } from '../entitlements/entitlement_cache.ts'
import type { Stripe } from 'stripe'
import { DateTime } from 'luxon'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import Subscription, { type SubscriptionStatus } from '../models/subscription.ts'
import SubscriptionItem from '../models/subscription_item.ts'
import Customer from '../models/customer.ts'
import { lockOrCreate } from '../models/lock_or_create.ts'
import type { BillingManager } from '../billing_manager.ts'
import type { AuditActor } from '../types.ts'

const TERMINAL: SubscriptionStatus[] = ['canceled', 'incomplete_expired']

const fromUnix = (value: number | null | undefined) => (value ? DateTime.fromSeconds(value, { zone: 'utc' }) : null)

/**
 * Metadata keys written on Stripe subscriptions created by the package.
 */
export const SUBSCRIPTION_NAME_KEY = 'adonis_billing_subscription'

/**
 * The local fields a Stripe subscription maps to (audited as before/after).
 */
function snapshot(subscription: Subscription) {
  return {
    plan: subscription.plan,
    status: subscription.status,
    quantity: subscription.quantity,
    cancel_at_period_end: subscription.cancelAtPeriodEnd,
    ends_at: subscription.endsAt?.toISO() ?? null,
    trial_ends_at: subscription.trialEndsAt?.toISO() ?? null,
    paused_at: subscription.pausedAt?.toISO() ?? null,
  }
}

/**
 * Writes a Stripe subscription (an API response or a webhook object) onto the local row and its
 * items inside `trx`, with an audit row, unless the stored copy is newer than `observedAt` (so an
 * out-of-order webhook never regresses state). Returns the row, and whether it changed.
 */
export async function applyStripeSubscription(
  manager: BillingManager,
  trx: TransactionClientContract,
  customer: Customer,
  object: Stripe.Subscription,
  options: {
    observedAt: DateTime
    actor?: AuditActor
    action?: string
    name?: string
    /** Audit even when the mirrored fields did not change (an explicit API action, e.g. a discount) */
    alwaysAudit?: boolean
    metadata?: Record<string, unknown>
  }
): Promise<{ subscription: Subscription; changed: boolean }> {
  const locked = await lockOrCreate(trx, Subscription, 'stripe_subscription_id', object.id, {
    customer_id: customer.id,
    name: options.name ?? object.metadata?.[SUBSCRIPTION_NAME_KEY] ?? 'default',
    plan: 'unknown',
    status: object.status,
    cancel_at_period_end: false,
  })
  const subscription = locked.row
  const stale = !locked.created && !!subscription.stripeUpdatedAt && subscription.stripeUpdatedAt > options.observedAt
  /**
   * Ended is final: an event from the same second (Stripe timestamps have one-second resolution)
   * cannot bring a canceled subscription back.
   */
  const revival = !locked.created && TERMINAL.includes(subscription.status) && !TERMINAL.includes(object.status as SubscriptionStatus)
  if (stale || revival) {
    /**
     * An explicit API action still gets its audit row when a newer state (a webhook that took the
     * row lock first) superseded its answer: the action did happen at Stripe.
     */
    if (options.alwaysAudit) {
      const current = snapshot(subscription)
      await manager.audit.record(
        {
          action: options.action ?? 'subscription.updated',
          actor: options.actor,
          subject: { type: 'subscription', id: subscription.id },
          customerId: customer.id,
          before: current,
          after: current,
          metadata: { stripe_subscription_id: object.id, superseded_by_newer_state: true, ...options.metadata },
        },
        { client: trx }
      )
    }
    return { subscription, changed: false }
  }
  const existing = await SubscriptionItem.query({ client: trx }).where('subscription_id', subscription.id)
  const before = locked.created ? null : snapshot(subscription)
  const pricesBefore = existing.map((item) => item.stripePriceId ?? '').sort()

  const items = object.items?.data ?? []
  const planFromItems = items
    .map((item) => (item.price.lookup_key ? manager.catalog.priceByLookupKey(item.price.lookup_key)?.plan.key : undefined))
    .find(Boolean)
  const plan = object.metadata?.adonis_billing_plan ?? planFromItems ?? subscription.plan
  const licensed = items.find((item) => item.price.recurring?.usage_type !== 'metered')
  const periodItem = licensed ?? items[0]
  const status = object.status as SubscriptionStatus

  subscription.useTransaction(trx)
  subscription.merge({
    customerId: customer.id,
    name: subscription.name,
    plan,
    status,
    quantity: licensed?.quantity ?? null,
    stripeSubscriptionId: object.id,
    trialEndsAt: fromUnix(object.trial_end),
    currentPeriodStart: fromUnix(periodItem?.current_period_start),
    currentPeriodEnd: fromUnix(periodItem?.current_period_end),
    cancelAtPeriodEnd: object.cancel_at_period_end,
    cancelAt: fromUnix(object.cancel_at),
    canceledAt: fromUnix(object.canceled_at),
    endsAt: fromUnix(object.ended_at) ?? (object.cancel_at_period_end ? fromUnix(periodItem?.current_period_end) : fromUnix(object.cancel_at)),
    pausedAt: status === 'paused' || object.pause_collection ? (subscription.pausedAt ?? options.observedAt) : null,
    resumesAt: fromUnix(object.pause_collection?.resumes_at),
    pastDueSince: status === 'past_due' ? (subscription.pastDueSince ?? options.observedAt) : null,
    stripeUpdatedAt: options.observedAt,
    metadata: object.metadata ?? null,
  })
  await subscription.save()

  /**
   * Items: upsert those Stripe lists, drop those it no longer does
   */
  for (const item of items) {
    const row = existing.find((candidate) => candidate.stripeItemId === item.id) ?? new SubscriptionItem()
    row.useTransaction(trx)
    row.merge({
      subscriptionId: subscription.id,
      stripeItemId: item.id,
      stripeProductId: typeof item.price.product === 'string' ? item.price.product : item.price.product.id,
      stripePriceId: item.price.id,
      priceKey: item.price.lookup_key ?? null,
      meter: item.price.recurring?.meter ? (item.price.metadata?.adonis_billing_meter ?? item.price.recurring.meter) : null,
      quantity: item.price.recurring?.usage_type === 'metered' ? null : (item.quantity ?? null),
      currentPeriodStart: fromUnix(item.current_period_start),
      currentPeriodEnd: fromUnix(item.current_period_end),
    })
    await row.save()
  }
  const gone = existing.filter((row) => !items.some((item) => item.id === row.stripeItemId)).map((row) => row.id)
  if (gone.length) await SubscriptionItem.query({ client: trx }).whereIn('id', gone).delete()
  if (locked.created) await linkInvoicesToSubscription(trx, subscription)

  const after = snapshot(subscription)
  const pricesAfter = items.map((item) => item.price.id).sort()
  const pricesChanged = !locked.created && JSON.stringify(pricesBefore) !== JSON.stringify(pricesAfter)
  const changed = JSON.stringify(before) !== JSON.stringify(after) || pricesChanged
  if (changed) await bumpEntitlementVersion(manager.entitlementCache, trx, customer.id)
  if (changed || options.alwaysAudit) {
    await manager.audit.record(
      {
        action: options.action ?? (before ? 'subscription.updated' : 'subscription.created'),
        actor: options.actor,
        subject: { type: 'subscription', id: subscription.id },
        customerId: customer.id,
        before,
        after,
        metadata: {
          stripe_subscription_id: object.id,
          ...(pricesChanged ? { prices: { before: pricesBefore, after: pricesAfter } } : {}),
          ...options.metadata,
        },
      },
      { client: trx }
    )
  }
  return { subscription, changed }
}
