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
import { StripeGateway } from './stripe/stripe_gateway.ts'
import { WebhookProcessor } from './webhooks/webhook_processor.ts'
import { webhookStatus } from './webhooks/webhook_status.ts'
import { CustomerScope } from './customers/customer_scope.ts'
import { billingModels } from './models/main.ts'
import type { BillableRow } from './mixins/billable.ts'
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
   * Health of the webhook store: backlog, failures by type, last event per type, lag.
   */
  webhookStatus() {
    return webhookStatus(this.db())
  }

  /**
   * Registers the package routes on the host router, named `billing.*`, under `routes.prefix`
   * (default `/billing`): `POST /webhooks/stripe` and `GET /webhooks/health`. Pass a callback to add
   * middleware to the admin-facing routes (the webhook route must stay public: Stripe signs it).
   *
   * @example
   * billing.registerRoutes({ admin: (route) => route.use(middleware.auth()) })
   */
  async registerRoutes(options: { admin?: (route: any) => void } = {}) {
    const router = await this.app.container.make('router')
    const { handleStripeWebhook, webhookHealth } = await import('./webhooks/webhook_controller.ts')
    const prefix = this.config.routes.prefix
    router.post(`${prefix}/webhooks/stripe`, handleStripeWebhook).as('billing.webhooks.stripe')
    const health = router.get(`${prefix}/webhooks/health`, webhookHealth).as('billing.webhooks.health')
    options.admin?.(health)
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
