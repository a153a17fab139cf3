/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { ApplicationService, EmitterService } from '@adonisjs/core/types'
import type { Database } from '@adonisjs/lucid/database'
import type { QueryClientContract } from '@adonisjs/lucid/types/database'
import { AuditTrail } from './audit/audit_trail.ts'
import { Catalog } from './catalog/catalog.ts'
import { CatalogSync } from './catalog/catalog_sync.ts'
import { PriceResolver } from './catalog/price_resolver.ts'
import { EntitlementCache } from './entitlements/entitlement_cache.ts'
import { EntitlementResolver } from './entitlements/entitlement_resolver.ts'
import { UsageRecorder } from './usage/usage_recorder.ts'
import { UsageReporter } from './usage/usage_reporter.ts'
import { StripeGateway } from './stripe/stripe_gateway.ts'
import { WebhookProcessor } from './webhooks/webhook_processor.ts'
import { webhookStatus } from './webhooks/webhook_status.ts'
import { CustomerScope } from './customers/customer_scope.ts'
import { billingModels } from './models/main.ts'
import type { BillableRow } from './mixins/billable.ts'
import { InvalidConfigException } from './errors.ts'
import type { ResolvedBillingConfig } from './types.ts'

/**
 * The billing service (`import billing from 'adonis-billing/services/main'`): entry point to the
 * catalog, customer-scoped APIs and the audit trail.
 */
export class BillingManager {
  readonly app: ApplicationService
  readonly config: ResolvedBillingConfig
  readonly emitter: EmitterService
  readonly audit: AuditTrail
  readonly catalog: Catalog
  /**
   * The Stripe client (lazily imported) and error mapping.
   */
  readonly stripe: StripeGateway
  /**
   * Lookup key → Stripe price, cached briefly.
   */
  readonly prices: PriceResolver
  /**
   * Stripe webhooks: verification, exactly-once processing, host handlers (`billing.webhooks.on()`).
   */
  readonly webhooks: WebhookProcessor
  /**
   * Per-customer entitlement cache of this instance (invalidated on commit, TTL across instances).
   */
  readonly entitlementCache: EntitlementCache
  /**
   * Cross-instance invalidation of `entitlementCache` (`entitlements.cacheStore`), connected at boot.
   */
  entitlementBus: import('./entitlements/entitlement_cache_bus.ts').EntitlementCacheBus | null = null
  /**
   * Resolves entitlements (catalog + subscriptions + grants + usage).
   */
  readonly entitlements: EntitlementResolver
  /**
   * Usage recording (`billing.usage.recordMany([...])`).
   */
  readonly usage: UsageRecorder
  /**
   * Reports closed usage windows to Stripe Billing Meters (`billing:usage:report`).
   */
  readonly usageReporter: UsageReporter
  /**
   * Host callbacks counting what a limit feature uses (seats = team members), by feature.
   */
  readonly usageCounters = new Map<string, (context: { customer: import('./models/customer.ts').default; billable: unknown }) => Promise<number> | number>()
  #database: Database

  constructor(app: ApplicationService, config: ResolvedBillingConfig, database: Database, emitter: EmitterService) {
    this.app = app
    this.config = config
    this.emitter = emitter
    this.#database = database
    this.catalog = new Catalog(config)
    this.stripe = new StripeGateway(config)
    this.prices = new PriceResolver(this.stripe)
    this.webhooks = new WebhookProcessor(this)
    this.entitlementCache = new EntitlementCache(config.policy.cacheTtlSeconds)
    this.entitlements = new EntitlementResolver(this)
    this.usage = new UsageRecorder(this)
    this.usageReporter = new UsageReporter(this)
    this.audit = new AuditTrail(app, () => this.db(), emitter)

    /**
     * Point every package model at the configured connection.
     */
    if (config.connection) {
      for (const model of billingModels) model.connection = config.connection
    }
  }

  /**
   * Query client of the billing connection.
   */
  db(): QueryClientContract {
    return this.#database.connection(this.config.connection)
  }

  /**
   * Diffs the catalog against Stripe and applies the changes (`node ace billing:sync`).
   */
  catalogSync(): CatalogSync {
    return new CatalogSync(this)
  }

  /**
   * Tells the package how much of a limit feature a customer uses, for `used`/`remaining`.
   *
   * @example
   * billing.countUsage('seats', async ({ customer }) => Member.query().where('team_id', customer.billableId).count())
   */
  countUsage(feature: string, counter: (context: { customer: import('./models/customer.ts').default; billable: unknown }) => Promise<number> | number) {
    const definition = this.config.features[feature]
    if (definition?.type !== 'limit') throw new InvalidConfigException(`countUsage("${feature}")`, 'only limit features take a usage counter')
    this.usageCounters.set(feature, counter)
    return this
  }

  /**
   * Health of the webhook store: backlog, failures by type, last event per type, lag.
   */
  webhookStatus() {
    return webhookStatus(this.db())
  }

  /**
   * Registers the package routes on the host router, named `billing.*`, under `routes.prefix`
   * (default `/billing`): `POST /webhooks/stripe`, `GET /webhooks/health` and
   * `GET /v1/me/entitlements`, `GET /v1/me/usage` and, when `usage` is given, `POST /v1/usage`. Pass
   * callbacks to add middleware: `admin` for the health route, `me` for the user-facing routes (your
   * auth guard), `usage` for the service-to-service usage endpoint (e.g. an access-token guard). The
   * webhook route must stay public: Stripe signs it.
   *
   * @example
   * billing.registerRoutes({ admin: (route) => route.use(middleware.auth()) })
   */
  async registerRoutes(options: { admin?: (route: any) => void; me?: (route: any) => void; usage?: (route: any) => void } = {}) {
    const router = await this.app.container.make('router')
    const { handleStripeWebhook, webhookHealth } = await import('./webhooks/webhook_controller.ts')
    const { myEntitlements } = await import('./entitlements/entitlements_controller.ts')
    const prefix = this.config.routes.prefix
    router.post(`${prefix}/webhooks/stripe`, handleStripeWebhook).as('billing.webhooks.stripe')
    const health = router.get(`${prefix}/webhooks/health`, webhookHealth).as('billing.webhooks.health')
    options.admin?.(health)
    const me = router.get(`${prefix}/v1/me/entitlements`, myEntitlements).as('billing.me.entitlements')
    options.me?.(me)
    const { myUsage, recordUsage } = await import('./usage/usage_controller.ts')
    const meUsage = router.get(`${prefix}/v1/me/usage`, myUsage).as('billing.me.usage')
    options.me?.(meUsage)
    /**
     * The service-to-service usage endpoint exists only behind the guard the host gives it
     */
    if (options.usage) options.usage(router.post(`${prefix}/v1/usage`, recordUsage).as('billing.usage.record'))
  }

  /**
   * Billing API scoped to one billable (a model composed with `Billable`).
   *
   * @example
   * const customer = await billing.for(user).customer()
   */
  for(billable: BillableRow): CustomerScope {
    return new CustomerScope(this, billable)
  }
}
