/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { BaseCommand, flags } from '@adonisjs/core/ace'
import type { CommandOptions } from '@adonisjs/core/types/ace'

/**
 * Makes Stripe match config/billing.ts: meters, entitlement features, products, prices (by lookup
 * key) and product features. Prints the diff first; `--dry-run` stops there.
 */
export default class BillingSync extends BaseCommand {
  static commandName = 'billing:sync'
  static description = 'Push the billing catalog (products, prices, meters, features) to Stripe'
  static options: CommandOptions = { startApp: true }

  @flags.boolean({ description: 'Print the changes without making them' })
  declare dryRun: boolean

  async run() {
    const billing = await this.app.container.make('billing.manager')
    const { actors } = await import('../src/audit/actor.ts')
    const { describeAction } = await import('../src/catalog/catalog_sync.ts')
    const sync = billing.catalogSync()

    const plan = await sync.plan()
    const { meters, features, products, prices } = plan.unchanged
    const inSync = `${meters} meters, ${features} features, ${products} products, ${prices} prices already in sync`
    if (plan.actions.length === 0) {
      this.logger.success(`Stripe already matches the catalog: nothing to do (${inSync})`)
      return
    }

    this.logger.info(`${plan.actions.length} change(s) to make (${inSync}):`)
    for (const action of plan.actions) this.logger.log(`  ${this.colors.yellow('~')} ${describeAction(action)}`)
    if (this.dryRun) {
      this.logger.info('dry run: nothing was changed')
      return
    }

    const total = plan.actions.length
    await sync.apply(plan, {
      actor: actors.cli(),
      onProgress: (action, index) => this.logger.log(`  ${this.colors.green('✔')} [${index + 1}/${total}] ${describeAction(action)}`),
    })
    this.logger.success(`Stripe now matches the catalog (${total} change(s) applied)`)
  }
}
