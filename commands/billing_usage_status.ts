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
 * Usage outbox health: reports pending, failed, blocked and sent, the oldest unsent window, and
 * each customer meter that needs attention with its error. Exits 1 when anything is failed or
 * blocked, so it can serve as a cron check.
 */
export default class BillingUsageStatus extends BaseCommand {
  static commandName = 'billing:usage:status'
  static description = 'Show the health of usage reporting to Stripe Billing Meters'
  static options: CommandOptions = { startApp: true }

  @flags.boolean({ description: 'Print JSON' })
  declare json: boolean

  async run() {
    const billing = await this.app.container.make('billing.manager')
    const status = await billing.usageReporter.status()
    if (this.json) {
      this.logger.log(JSON.stringify(status))
    } else {
      const { counts } = status
      this.logger.log(
        `${status.healthy ? this.colors.green('healthy') : this.colors.red('unhealthy')}: ${counts.sent} sent, ${counts.pending} pending, ${counts.failed} failed, ${counts.blocked} blocked, ${counts.expired} expired, ${counts.late} late`
      )
      if (status.oldestUnsentWindow) this.logger.log(`oldest unsent window: ${status.oldestUnsentWindow}`)
      if (status.problems.length) {
        const table = this.ui.table()
        table.head(['Customer', 'Meter', 'Status', 'Window', 'Attempts', 'Error'])
        for (const row of status.problems) table.row([String(row.customerId), row.meter, row.status, row.windowStart ?? '–', String(row.attempts), (row.error ?? '').slice(0, 80)])
        table.render()
      }
    }
    if (!status.healthy) this.exitCode = 1
  }
}
