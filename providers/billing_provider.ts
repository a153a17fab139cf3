/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { configProvider } from '@adonisjs/core'
import type { ApplicationService } from '@adonisjs/core/types'
import { BillingManager } from '../src/billing_manager.ts'
import { InvalidConfigException } from '../src/errors.ts'
import type { BillingEvents, ResolvedBillingConfig } from '../src/types.ts'

declare module '@adonisjs/core/types' {
  interface ContainerBindings {
    'billing.manager': BillingManager
  }
  interface EventsList extends BillingEvents {}
}

/**
 * Registers the billing manager and validates `config/billing.ts` when the app boots, so a broken
 * catalog (or a missing secret in production) stops the app with `E_BILLING_INVALID_CONFIG`.
 */
export default class BillingProvider {
  constructor(protected app: ApplicationService) {}

  register() {
    this.app.container.singleton('billing.manager', async () => {
      const config = await this.#resolveConfig()
      const database = await this.app.container.make('lucid.db')
      const emitter = await this.app.container.make('emitter')
      return new BillingManager(this.app, config, database, emitter)
    })
  }

  async #resolveConfig(): Promise<ResolvedBillingConfig> {
    const billingConfig = this.app.config.get<any>('billing')
    if (!billingConfig) {
      throw new InvalidConfigException('config/billing.ts', 'missing: run "node ace configure adonis-billing"')
    }
    const config = await configProvider.resolve<ResolvedBillingConfig>(this.app, billingConfig)
    if (!config) {
      throw new InvalidConfigException('config/billing.ts', 'export the result of defineConfig() from adonis-billing')
    }
    return config
  }

  /**
   * Resolve eagerly so configuration errors fail boot instead of the first request.
   */
  async boot() {
    const billing = await this.app.container.make('billing.manager')
    const store = billing.config.entitlements.cacheStore
    if (store) {
      const { EntitlementCacheBus } = await import('../src/entitlements/entitlement_cache_bus.ts')
      this.#bus = billing.entitlementBus = await EntitlementCacheBus.connect(this.app, store, billing.entitlementCache)
    }
  }

  #bus?: import('../src/entitlements/entitlement_cache_bus.ts').EntitlementCacheBus

  #reporter?: NodeJS.Timeout

  /**
   * In-process usage reporting (`usage.reportEverySeconds`), in the web process only, never during
   * codegen/warmup. Several instances may all run it: the outbox is shared safely.
   */
  async ready() {
    if (this.app.getMode() !== 'run' || this.app.getEnvironment() !== 'web') return
    const billing = await this.app.container.make('billing.manager')
    const every = billing.config.usage.reportEverySeconds
    if (!every) return
    let running = false
    this.#reporter = setInterval(() => {
      if (running) return
      running = true
      billing.usageReporter
        .plan()
        .then(() => billing.usageReporter.send())
        .catch((error) => this.app.container.make('logger').then((logger) => logger.error({ err: error }, 'adonis-billing: usage reporting failed')))
        .finally(() => {
          running = false
        })
    }, every * 1000)
    this.#reporter.unref()
  }

  async shutdown() {
    if (this.#reporter) clearInterval(this.#reporter)
    this.#bus?.close()
  }
}
