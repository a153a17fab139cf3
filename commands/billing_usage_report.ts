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
 * Reports closed usage windows to Stripe Billing Meters, once, or every `--interval` seconds with
 * `--watch`. Several workers may run at once: they share the outbox without double-sending.
 */
export default class BillingUsageReport extends BaseCommand {
  static commandName = 'billing:usage:report'
  static description = 'Send closed usage windows to Stripe Billing Meters'
  static options: CommandOptions = { startApp: true, staysAlive: true }

  @flags.boolean({ description: 'Keep running' })
  declare watch: boolean

  @flags.number({ description: 'Seconds between runs with --watch (default 60)' })
  declare interval?: number

  async run() {
    const interval = this.interval ?? 60
    if (!Number.isSafeInteger(interval) || interval < 1) {
      this.logger.error('--interval must be a positive number of seconds')
      this.exitCode = 1
      return this.terminate()
    }
    const billing = await this.app.container.make('billing.manager')
    const once = async () => {
      const planned = await billing.usageReporter.plan()
      const { sent, failed } = await billing.usageReporter.send()
      this.logger.info(`usage reports: ${planned} planned, ${sent} sent, ${failed} failed (retried with backoff)`)
      return failed
    }
    if (!this.watch) {
      const failed = await once().catch((error) => {
        this.logger.error(error.message)
        return 1
      })
      if (failed) this.exitCode = 1
      return this.terminate()
    }
    let stopping = false
    this.app.terminating(() => {
      stopping = true
    })
    while (!stopping) {
      await once().catch((error) => this.logger.error(error.message))
      await new Promise((resolve) => setTimeout(resolve, interval * 1000))
    }
  }
}
