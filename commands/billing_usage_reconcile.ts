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
import { isoFlag } from './_iso_flag.ts'

/**
 * Compares local hourly usage with Stripe's meter event summaries and lists each difference; exits 1
 * when there is one.
 */
export default class BillingUsageReconcile extends BaseCommand {
  static commandName = 'billing:usage:reconcile'
  static description = 'Compare local usage with Stripe meter event summaries'
  static options: CommandOptions = { startApp: true }

  @flags.string({ description: 'Since this ISO date (default: 24 hours ago)' })
  declare since?: string

  async run() {
    const since = isoFlag(this, 'since', this.since)
    if (since === false) return
    const billing = await this.app.container.make('billing.manager')
    const differences = await billing.usageReporter.reconcile({ since })
    if (!differences.length) {
      this.logger.success('local usage and Stripe agree')
      return
    }
    for (const difference of differences) {
      this.logger.log(`customer #${difference.customerId} ${difference.meter} ${difference.windowStart}: local ${difference.local}, Stripe ${difference.stripe}`)
    }
    this.logger.error(`${differences.length} difference(s)`)
    this.exitCode = 1
  }
}
