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
 * Drops the stored payloads of webhook events older than `--days` (default `webhooks.retentionDays`),
 * keeping ids, type, status and timings; audited, naming the operator. Run it on a schedule.
 */
export default class BillingWebhooksPrune extends BaseCommand {
  static commandName = 'billing:webhooks:prune'
  static description = 'Drop the payloads (personal data) of old, processed webhook events'
  static options: CommandOptions = { startApp: true }

  @flags.string({ description: 'Prune events received more than this many days ago (default: webhooks.retentionDays)' })
  declare days?: string

  async run() {
    const billing = await this.app.container.make('billing.manager')
    const raw = this.days ?? (billing.config.webhooks.retentionDays === null ? undefined : String(billing.config.webhooks.retentionDays))
    if (raw === undefined) {
      this.logger.error('Say how old: --days <N>, or set webhooks.retentionDays in config/billing.ts')
      this.exitCode = 1
      return
    }
    if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1) {
      this.logger.error(`--days "${raw}" must be a whole number of days of at least 1`)
      this.exitCode = 1
      return
    }
    const { DateTime } = await import('luxon')
    const { pruneWebhookPayloads } = await import('../src/webhooks/webhook_retention.ts')
    const { actors } = await import('../src/audit/actor.ts')
    const before = DateTime.utc().minus({ days: Number(raw) })
    const pruned = await billing.db().transaction(async (trx) => {
      const count = await pruneWebhookPayloads(trx, before)
      await billing.audit.record({ action: 'webhooks.pruned', actor: actors.cli(), subject: { type: 'webhook_events', id: null }, after: { before: before.toISO(), pruned: count } }, { client: trx })
      return count
    })
    this.logger.info(`${pruned} webhook payload(s) received before ${before.toISO()} dropped`)
  }
}
