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
import { planPriceParams } from './catalog/price_params.ts'
import { AuditKeyring } from './audit/audit_key.ts'
import { appKeyText } from './app_key.ts'
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
import { ForbiddenException, InvalidConfigException } from './errors.ts'
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
    const expectedPrices = new Map(Object.values(config.plans).flatMap((plan) => planPriceParams(plan).map((params) => [params.lookup_key!, params] as const)))
    this.prices = new PriceResolver(
      this.stripe,
      (lookupKey) => expectedPrices.get(lookupKey),
      (meterKey) => config.meters[meterKey]?.eventName
    )
    this.webhooks = new WebhookProcessor(this)
    this.entitlementCache = new EntitlementCache(config.policy.cacheTtlSeconds)
    this.entitlements = new EntitlementResolver(this)
    this.usage = new UsageRecorder(this)
    this.usageReporter = new UsageReporter(this)
    let keyring: AuditKeyring | null = null
    this.audit = new AuditTrail(app, () => this.db(), emitter, () => {
      keyring ??= AuditKeyring.from({ keyId: config.audit.keyId, key: config.audit.key ?? appKeyText(app, 'to key the audit chain (or set audit.key)'), previousKeys: config.audit.previousKeys })
      return keyring
    }, { legacyRows: config.audit.legacyRows })

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
   * Who may use the admin surfaces (webhook health, admin APIs), as given to `registerRoutes()`.
   */
  adminAuthorizer: ((ctx: import('@adonisjs/core/http').HttpContext) => boolean | Promise<boolean>) | null = null

  /**
   * Registers the package routes on the host router, named `billing.*`, under `routes.prefix`
   * (default `/billing`): always `POST /webhooks/stripe` (public: Stripe signs it),
   * `GET /v1/me/entitlements` and `GET /v1/me/usage` (`me`: add your auth guard); with `admin`,
   * `GET /webhooks/health`; with `usage`, `POST /v1/usage`. Admin and usage routes need an explicit
   * authorizer — without one registering them fails with `E_BILLING_INVALID_CONFIG`:
   * - `admin.authorize(ctx)`: true for your admins (403 otherwise);
   * - `usage.authorize(ctx, customer)`: true when the caller may write usage for that customer, or
   *   `'service'` when the route's guard admits only trusted services (they may write for anyone).
   *
   * @example
   * await billing.registerRoutes({
   *   me: (route) => route.use(middleware.auth()),
   *   admin: { use: (route) => route.use(middleware.auth()), authorize: (ctx) => ctx.auth.user?.isAdmin === true },
   *   usage: { use: (route) => route.use(middleware.auth({ guards: ['api'] })), authorize: (ctx, customer) => customer.billableId === String(ctx.auth.user?.id) },
   * })
   */
  async registerRoutes(options: RouteOptions = {}) {
    const admin = routeAuthorizer(options.admin, 'admin')
    const usage = routeAuthorizer(options.usage, 'usage')
    if (admin && typeof admin.authorize !== 'function') throw new InvalidConfigException('registerRoutes.admin.authorize', 'must be a function (ctx) => boolean')
    const router = await this.app.container.make('router')
    const { guarded } = await import('./http/client_errors.ts')
    const { handleStripeWebhook, webhookHealth } = await import('./webhooks/webhook_controller.ts')
    const { myEntitlements } = await import('./entitlements/entitlements_controller.ts')
    const { myUsage, usageRecordHandler } = await import('./usage/usage_controller.ts')
    const prefix = this.config.routes.prefix
    router.post(`${prefix}/webhooks/stripe`, guarded(handleStripeWebhook)).as('billing.webhooks.stripe')
    const me = router.get(`${prefix}/v1/me/entitlements`, guarded(myEntitlements)).as('billing.me.entitlements')
    options.me?.(me)
    const meUsage = router.get(`${prefix}/v1/me/usage`, guarded(myUsage)).as('billing.me.usage')
    options.me?.(meUsage)
    if (admin) {
      this.adminAuthorizer = admin.authorize as NonNullable<BillingManager['adminAuthorizer']>
      const health = router.get(`${prefix}/webhooks/health`, guarded(this.#adminOnly(webhookHealth))).as('billing.webhooks.health')
      admin.use?.(health)
    }
    if (usage) {
      const authorize = usage.authorize
      if (authorize !== 'service' && typeof authorize !== 'function') {
        throw new InvalidConfigException('registerRoutes.usage.authorize', "must be (ctx, customer) => boolean, or 'service' for a service-only guard")
      }
      const route = router.post(`${prefix}/v1/usage`, guarded(usageRecordHandler(authorize))).as('billing.usage.record')
      usage.use?.(route)
    }
  }

  /**
   * A handler that runs only when the admin authorizer says yes (403 problem+json otherwise).
   */
  #adminOnly<T>(handler: (ctx: import('@adonisjs/core/http').HttpContext) => Promise<T>) {
    return async (ctx: import('@adonisjs/core/http').HttpContext) => {
      if (!this.adminAuthorizer || (await this.adminAuthorizer(ctx)) !== true) throw new ForbiddenException('Billing administrators only')
      return handler(ctx)
    }
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

/**
 * Options of `billing.registerRoutes()`.
 */
export interface RouteOptions {
  /** Middleware of the user-facing `/v1/me/*` routes (your auth guard) */
  me?: (route: any) => void
  /** The admin routes: your guard (`use`) and who is an admin (`authorize`, required) */
  admin?: { use?: (route: any) => void; authorize: (ctx: import('@adonisjs/core/http').HttpContext) => boolean | Promise<boolean> }
  /** `POST /v1/usage`: your guard (`use`) and whose usage a caller may write (`authorize`, required) */
  usage?: { use?: (route: any) => void; authorize: import('./usage/usage_controller.ts').UsageAuthorizer }
}

/**
 * The `{ use, authorize }` of an admin or usage route, refusing the older "middleware only" form.
 */
function routeAuthorizer<T extends { authorize: unknown }>(option: T | undefined, name: string): T | null {
  if (option === undefined) return null
  if (typeof option === 'function' || !option || typeof option !== 'object' || !('authorize' in option)) {
    throw new InvalidConfigException(
      `registerRoutes.${name}`,
      `needs { authorize${name === 'usage' ? ": (ctx, customer) => boolean | 'service'" : ': (ctx) => boolean'}, use?: (route) => void } (a guard alone lets every signed-in caller in)`
    )
  }
  return option
}
