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
import { auditOperation } from './_audit_operation.ts'

/**
 * Reprocesses stored webhook events through the same exactly-once path: one event (`--id`), every
 * failed one (`--failed`), or everything received since a date (`--since`). Handlers are idempotent
 * (watermarks), so replaying processed events changes nothing that is already current.
 */
export default class BillingWebhooksReplay extends BaseCommand {
  static commandName = 'billing:webhooks:replay'
  static description = 'Reprocess stored Stripe webhook events'
  static options: CommandOptions = { startApp: true }

  @flags.string({ description: 'Event id (evt_...)' })
  declare id?: string

  @flags.boolean({ description: 'Every event marked failed' })
  declare failed: boolean

  @flags.string({ description: 'Events received since this ISO date (e.g. 2026-11-01 or 2026-11-01T10:00:00Z)' })
  declare since?: string

  async run() {
    const { toDbDateTime } = await import('../src/models/columns.ts')
    const { default: WebhookEvent } = await import('../src/models/webhook_event.ts')
    if (!this.id && !this.failed && !this.since) {
      this.logger.error('Say what to replay: --id evt_..., --failed and/or --since <ISO date>')
      this.exitCode = 1
      return
    }
    const since = isoFlag(this, 'since', this.since)
    if (since === false) return
    if (this.id && !/^evt_[A-Za-z0-9_]+$/.test(this.id)) {
      this.logger.error(`--id "${this.id}" is not a Stripe event id (evt_...)`)
      this.exitCode = 1
      return
    }

    const billing = await this.app.container.make('billing.manager')
    const query = WebhookEvent.query({ client: billing.db() }).orderBy('id', 'asc').select('event_id', 'type', 'status')
    if (this.id) query.where('event_id', this.id)
    if (this.failed) query.where('status', 'failed')
    if (since) query.where('received_at', '>=', toDbDateTime(since))
    const events = await query
    if (this.id && events.length === 0) {
      this.logger.error(`No stored event ${this.id}`)
      this.exitCode = 1
      return
    }

    let failures = 0
    const outcomes: Record<string, string> = {}
    for (const event of events) {
      try {
        const outcome = await billing.webhooks.process(event.eventId, { force: true })
        outcomes[event.eventId] = outcome
        this.logger.log(`${this.colors.green('✔')} ${event.eventId} ${event.type}: ${outcome}`)
      } catch (error: any) {
        failures++
        outcomes[event.eventId] = 'failed'
        this.logger.log(`${this.colors.red('✖')} ${event.eventId} ${event.type}: ${error.message}`)
      }
    }
    await auditOperation(billing, 'webhooks.replayed', { id: this.id ?? null, failed: this.failed ?? false, since: since ? since.toISO() : null }, outcomes)
    this.logger.info(`${events.length} event(s) replayed, ${failures} failed`)
    if (failures) this.exitCode = 1
  }
}
