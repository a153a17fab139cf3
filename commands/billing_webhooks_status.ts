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
 * Webhook health: counts, backlog, failures by type, last event per type, lag. Exits 1 when
 * unhealthy (failures or a stuck backlog), so it can serve as a cron check.
 */
export default class BillingWebhooksStatus extends BaseCommand {
  static commandName = 'billing:webhooks:status'
  static description = 'Show the health of Stripe webhook processing'
  static options: CommandOptions = { startApp: true }

  @flags.boolean({ description: 'Print JSON' })
  declare json: boolean

  async run() {
    const billing = await this.app.container.make('billing.manager')
    const status = await billing.webhookStatus()
    if (this.json) {
      this.logger.log(JSON.stringify(status))
    } else {
      const { counts } = status
      this.logger.log(
        `${status.healthy ? this.colors.green('healthy') : this.colors.red('unhealthy')}: ${counts.processed} processed, ${counts.ignored} ignored, ${counts.failed} failed, ${counts.received} waiting (${status.backlog} stuck)`
      )
      if (status.oldestUnprocessedAt) this.logger.log(`oldest unprocessed: ${status.oldestUnprocessedAt}`)
      const lag = status.lag
      this.logger.log(`delivery lag p50 ${lag.deliveryP50Seconds ?? '–'} s (max ${lag.deliveryMaxSeconds ?? '–'} s), processing p50 ${lag.processingP50Ms ?? '–'} ms (max ${lag.processingMaxMs ?? '–'} ms)`)
      if (status.failuresByType.length) {
        const table = this.ui.table()
        table.head(['Failed type', 'Count', 'Last attempt', 'Last error'])
        for (const row of status.failuresByType) table.row([row.type, String(row.count), row.lastAttemptAt ?? '–', (row.lastError ?? '').slice(0, 80)])
        table.render()
      }
      if (status.lastReceivedByType.length) {
        const table = this.ui.table()
        table.head(['Type', 'Last received'])
        for (const row of status.lastReceivedByType) table.row([row.type, row.at])
        table.render()
      }
    }
    if (!status.healthy) this.exitCode = 1
  }
}
