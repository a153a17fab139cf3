/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { DateTime } from 'luxon'

/**
 * How a feature is granted.
 * - `boolean`: on/off (`sso`).
 * - `limit`: a number (`seats`); several subscriptions combine by `combine` (default `sum`).
 * - `metered`: a quota over a meter (`api_calls`), with the included amount set per plan.
 */
export type FeatureDefinition =
  | { type: 'boolean'; description?: string }
  | { type: 'limit'; description?: string; combine?: 'sum' | 'max' }
  | { type: 'metered'; description?: string; meter: string }

/**
 * Aggregations a meter supports (Stripe Billing Meters take `sum`, `count` and `last`; `max` and
 * `unique_count` are aggregated locally before reporting).
 */
export type MeterAggregation = 'sum' | 'count' | 'max' | 'last' | 'unique_count'

/**
 * A billable unit, mapped to a Stripe Billing Meter by `eventName`.
 */
export interface MeterDefinition {
  name: string
  /** Stripe meter `event_name`; defaults to the meter key */
  eventName?: string
  unit?: string
  aggregation: MeterAggregation
  /** Property counted by `unique_count` */
  uniqueProperty?: string
}

export type BillingInterval = 'day' | 'week' | 'month' | 'year'
export type TaxBehavior = 'exclusive' | 'inclusive' | 'unspecified'

/**
 * A recurring flat price of a plan. `amount` is an integer in minor units (cents).
 */
export interface RecurringPriceDefinition {
  amount: number
  currency?: string
  /** Stripe price lookup key; defaults to `<plan>_<interval>` */
  lookupKey?: string
  intervalCount?: number
  taxBehavior?: TaxBehavior
  trialDays?: number
}

/**
 * One tier of a graduated or volume usage price. `unitAmount` is a decimal string (or integer) in
 * minor units, so sub-cent prices such as `'0.25'` are exact; `flatAmount` is an integer.
 */
export interface PriceTierDefinition {
  upTo: number | 'inf'
  unitAmount?: string | number
  flatAmount?: number
}

/**
 * A usage-based price of a plan for one meter.
 */
export type UsagePriceDefinition = {
  currency?: string
  lookupKey?: string
  taxBehavior?: TaxBehavior
} & (
  | { model: 'per_unit'; unitAmount: string | number }
  | { model: 'package'; amount: number; packageSize: number; round?: 'up' | 'down' }
  | { model: 'graduated' | 'volume'; tiers: PriceTierDefinition[] }
)

/**
 * What a plan grants for one feature: `true`/`false` for boolean features, a number or
 * `'unlimited'` for limits and metered quotas.
 */
export type FeatureValue = boolean | number | 'unlimited'

/**
 * A plan of the catalog.
 */
export interface PlanDefinition {
  name: string
  description?: string
  /** Add-ons are bought next to a base plan and add to its features */
  addOn?: boolean
  prices?: Partial<Record<BillingInterval, RecurringPriceDefinition>>
  usagePrices?: Record<string, UsagePriceDefinition>
  features?: Record<string, FeatureValue>
}

/**
 * What each Stripe subscription status grants.
 */
export interface StatusPolicy {
  /** Days a `past_due` subscription keeps its features */
  pastDueGraceDays?: number
  /** Whether `incomplete`, `unpaid` and `paused` subscriptions grant their plan's features */
  incomplete?: 'none' | 'plan'
  unpaid?: 'none' | 'plan'
  paused?: 'none' | 'plan'
  /** Seconds an entitlement answer may be cached (the staleness bound across instances) */
  cacheTtlSeconds?: number
}

/**
 * Stripe credentials and client options. Secrets come from env and are never logged.
 */
export interface StripeOptions {
  secretKey?: string
  /** One secret, or several while rotating */
  webhookSecret?: string | string[]
  publishableKey?: string
  apiVersion?: string
  maxNetworkRetries?: number
  /** Request timeout in milliseconds */
  timeout?: number
  /** Point the client elsewhere (the loopback fake in tests) */
  host?: string
  port?: number
  protocol?: 'http' | 'https'
  /** Accept an `sk_test_`/`rk_test_` key when the app runs in production (a staging app billing in test mode) */
  allowTestKeys?: boolean
}

/**
 * What `config/billing.ts` passes to `defineConfig`.
 */
export interface BillingConfigInput {
  /** Lucid connection of the billing tables; the default connection when omitted */
  connection?: string
  /** Default ISO currency of prices (lower case) */
  currency?: string
  stripe?: StripeOptions
  features?: Record<string, FeatureDefinition>
  meters?: Record<string, MeterDefinition>
  plans?: Record<string, PlanDefinition>
  policy?: StatusPolicy
  tax?: { automatic?: boolean; collectTaxIds?: boolean; collectAddress?: 'auto' | 'required' }
  /**
   * `refetch`: handlers fetch the current object from Stripe instead of trusting the event payload
   */
  /**
   * `tolerance`: seconds a signature timestamp may be off (default 300, at most 3600).
   * `allowUnsigned`: with no webhook secret, process unsigned deliveries (local development and
   * tests only; refused in production). Off by default: without a secret every delivery gets 503.
   * `retentionDays`: default age for `billing:webhooks:prune` (payloads of older, processed events dropped).
   */
  webhooks?: { tolerance?: number; maxBodyBytes?: number; refetch?: boolean; allowUnsigned?: boolean; retentionDays?: number | null }
  /**
   * Keys of the audit chain's HMAC (never stored in the database). `key` defaults to the app key;
   * rotate by giving a new `keyId` and `key` and moving the old one to `previousKeys`.
   */
  audit?: {
    keyId?: string
    key?: string | { release(): string }
    previousKeys?: Record<string, string | { release(): string }>
    /** Rows chained before the chain was keyed (an upgraded install): accepted without MACs, no more */
    legacyRows?: number
  }
  routes?: { prefix?: string }
  /**
   * `source: 'stripe'` takes boolean features from Stripe Entitlements (the customer's active
   * entitlement lookup keys) instead of the catalog; limits and quotas still come from the catalog.
   */
  /**
   * `reportEverySeconds`: report usage to Stripe from the web process on this interval (default off:
   * run `node ace billing:usage:report --watch` as a worker instead)
   */
  usage?: {
    reportEverySeconds?: number
    transport?: 'v2' | 'v1'
    /** Largest batch of `recordMany` / `POST /billing/v1/usage` (default 1000) */
    maxBatch?: number
    /** How far back a usage timestamp may be (default 35 days, Stripe's limit) */
    maxAgeDays?: number
    /** How far ahead a usage timestamp may be (default 300 s, Stripe's limit) */
    maxFutureSeconds?: number
    /** Largest `properties` JSON of one record (default 4096 bytes) */
    maxPropertiesBytes?: number
  }
  entitlements?: {
    source?: 'catalog' | 'stripe'
    /**
     * Where to redirect browsers (requests preferring HTML) denied by the `entitled` middleware,
     * e.g. `/billing/upgrade`; `?feature=&code=` are appended. JSON clients always get problem+json.
     */
    redirectTo?: string
    /**
     * Name of an `@adonisjs/cache` store with an L1 (memory) layer and a bus (e.g. `redisBus`).
     * When set, every entitlement invalidation is also published on that bus, so each instance drops
     * its cached answer as soon as a change commits on any instance. Without it, other instances
     * may answer from their cache for up to `policy.cacheTtlSeconds` after a change.
     */
    cacheStore?: string
  }
}

/**
 * A price after normalization, with its lookup key.
 */
export interface ResolvedRecurringPrice extends Required<Omit<RecurringPriceDefinition, 'trialDays'>> {
  interval: BillingInterval
  trialDays: number | null
}

export type ResolvedUsagePrice = UsagePriceDefinition & {
  meter: string
  currency: string
  lookupKey: string
  taxBehavior: TaxBehavior
}

export interface ResolvedPlan {
  key: string
  name: string
  description: string | null
  addOn: boolean
  prices: ResolvedRecurringPrice[]
  usagePrices: ResolvedUsagePrice[]
  features: Record<string, FeatureValue>
  /** A plan with no price needs no Stripe customer */
  free: boolean
}

/**
 * The validated, normalized configuration the package runs with.
 */
export interface ResolvedBillingConfig {
  connection?: string
  currency: string
  stripe: Required<Pick<StripeOptions, 'maxNetworkRetries' | 'timeout'>> &
    Omit<StripeOptions, 'webhookSecret'> & { webhookSecrets: string[]; allowTestKeys: boolean }
  features: Record<string, FeatureDefinition>
  meters: Record<string, Required<Omit<MeterDefinition, 'uniqueProperty' | 'unit'>> & MeterDefinition>
  plans: Record<string, ResolvedPlan>
  policy: Required<StatusPolicy>
  tax: { automatic: boolean; collectTaxIds: boolean; collectAddress: 'auto' | 'required' }
  webhooks: { tolerance: number; maxBodyBytes: number; refetch: boolean; allowUnsigned: boolean; retentionDays: number | null }
  routes: { prefix: string }
  entitlements: { source: 'catalog' | 'stripe'; redirectTo: string | null; cacheStore: string | null }
  audit: { keyId: string; key: string | null; previousKeys: Record<string, string>; legacyRows: number }
  usage: {
    reportEverySeconds: number | null
    transport: 'v2' | 'v1'
    maxBatch: number
    maxAgeDays: number
    maxFutureSeconds: number
    maxPropertiesBytes: number
  }
}

/**
 * Who did something, as recorded in the audit trail.
 */
export interface AuditActor {
  type: 'user' | 'webhook' | 'cli' | 'system' | (string & {})
  id: string | null
  /** Who the actor says it acts for (`BILLING_CLI_USER`): unverified, recorded as `metadata.claimedBy` */
  claim?: string
}

/**
 * Input of `billing.audit.record()`.
 */
export interface AuditEntryInput {
  action: string
  actor?: AuditActor
  subject?: { type: string; id: string | number | null }
  customerId?: number | null
  before?: Record<string, unknown> | null
  after?: Record<string, unknown> | null
  metadata?: Record<string, unknown> | null
  requestId?: string | null
  eventId?: string | null
  occurredAt?: DateTime
}

/**
 * What every webhook-driven event carries.
 */
export interface BillingWebhookEventPayload {
  /** Stripe event id (`evt_...`) */
  eventId: string
  /** Stripe event type */
  type: string
  /** Local customer id, when the event concerns one */
  customerId: number | null
}

type SubscriptionEventName =
  | 'created'
  | 'updated'
  | 'deleted'
  | 'paused'
  | 'resumed'
  | 'pending_update_applied'
  | 'pending_update_expired'
type InvoiceEventName =
  | 'created'
  | 'finalized'
  | 'updated'
  | 'paid'
  | 'payment_succeeded'
  | 'payment_failed'
  | 'payment_action_required'
  | 'voided'
  | 'marked_uncollectible'
  | 'overdue'

/**
 * Events the package emits on the host's emitter, always after the transaction that caused them
 * committed.
 */
export type BillingEvents = {
  'billing:customer.created': { customerId: number; billableType: string | null; billableId: string | null }
  'billing:audit.recorded': { id: number; action: string; customerId: number | null }
  'billing:subscription.trial_will_end': BillingWebhookEventPayload & { stripeSubscriptionId: string; trialEnd: number | null }
  'billing:checkout.completed': BillingWebhookEventPayload & { sessionId: string; mode: string }
  'billing:customer.updated': BillingWebhookEventPayload
  'billing:customer.deleted': BillingWebhookEventPayload
  'billing:payment_method.attached': BillingWebhookEventPayload & { paymentMethodId: string }
  'billing:payment_method.detached': BillingWebhookEventPayload & { paymentMethodId: string }
  'billing:entitlements.updated': BillingWebhookEventPayload & { features: string[] }
  'billing:invoice.upcoming': BillingWebhookEventPayload & { objectId: string | null; stripeCustomerId: string | null }
  'billing:invoice_payment.paid': BillingWebhookEventPayload & { objectId: string | null; stripeCustomerId: string | null }
} & {
  [Name in `billing:subscription.${SubscriptionEventName}`]: BillingWebhookEventPayload & { subscriptionId: number; status: string; plan: string }
} & {
  [Name in `billing:invoice.${InvoiceEventName}`]: BillingWebhookEventPayload & { invoiceId: number; stripeInvoiceId: string; status: string }
}
