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
 * Recovers events Stripe could not deliver: lists them from the Events API
 * (`delivery_success=false`, at most 30 days back) and runs each through the same store and processor
 * as the webhook route, so events that did arrive meanwhile are not processed twice.
 */
export default class BillingWebhooksSweep extends BaseCommand {
  static commandName = 'billing:webhooks:sweep'
  static description = 'Fetch and process Stripe events that were never delivered'
  static options: CommandOptions = { startApp: true }

  @flags.string({ description: 'Only events created since this ISO date (default and maximum: 30 days ago)' })
  declare since?: string

  async run() {
    const { DateTime } = await import('luxon')
    const oldest = DateTime.utc().minus({ days: 30 })
    const requested = isoFlag(this, 'since', this.since)
    if (requested === false) return
    const since = requested && requested > oldest ? requested : oldest

    const billing = await this.app.container.make('billing.manager')
    const events = await billing.stripe.call(async (stripe) => {
      const found = []
      for await (const event of stripe.events.list({ delivery_success: false, created: { gte: Math.floor(since.toSeconds()) }, limit: 100 })) {
        found.push(event)
      }
      return found.reverse()
    })

    let stored = 0
    let failures = 0
    const outcomes: Record<string, string> = {}
    for (const event of events) {
      if (await billing.webhooks.store(event)) stored++
      try {
        const outcome = await billing.webhooks.process(event.id)
        outcomes[event.id] = outcome
        this.logger.log(`${event.id} ${event.type}: ${outcome}`)
      } catch (error: any) {
        failures++
        outcomes[event.id] = 'failed'
        this.logger.log(`${this.colors.red('✖')} ${event.id} ${event.type}: ${error.message}`)
      }
    }
    await auditOperation(billing, 'webhooks.swept', { since: since.toISO(), found: events.length, stored }, outcomes)
    this.logger.info(`${events.length} undelivered event(s) found, ${stored} new, ${failures} failed`)
    if (failures) this.exitCode = 1
  }
}
