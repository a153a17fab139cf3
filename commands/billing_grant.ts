/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { args, BaseCommand, flags } from '@adonisjs/core/ace'
import type { CommandOptions } from '@adonisjs/core/types/ace'
import { isoFlag } from './_iso_flag.ts'

/**
 * For support staff: grants (or revokes) a feature to a customer, audited with the CLI user as actor.
 *
 * @example
 * node ace billing:grant user 42 seats 5 --expires 2026-12-31 --reason "Black Friday"
 * node ace billing:grant user 42 sso true
 * node ace billing:grant user 42 seats --revoke
 */
export default class BillingGrant extends BaseCommand {
  static commandName = 'billing:grant'
  static description = 'Grant or revoke a feature for a customer (audited)'
  static options: CommandOptions = { startApp: true }

  @args.string({ description: 'Billable type as stored on the customer (e.g. user, team)' })
  declare billableType: string

  @args.string({ description: 'Billable id' })
  declare billableId: string

  @args.string({ description: 'Feature key from config/billing.ts' })
  declare feature: string

  @args.string({ description: 'true, a positive integer, or unlimited (omit with --revoke)', required: false })
  declare value?: string

  @flags.string({ description: 'Expiry, an ISO date (UTC)' })
  declare expires?: string

  @flags.string({ description: 'Why (stored with the grant and in the audit trail)' })
  declare reason?: string

  @flags.boolean({ description: 'Revoke the active grants of the feature instead' })
  declare revoke: boolean

  async run() {
    const { actors } = await import('../src/audit/actor.ts')
    const { default: Customer } = await import('../src/models/customer.ts')
    const { grantFeature, revokeFeature } = await import('../src/entitlements/grants.ts')
    const billing = await this.app.container.make('billing.manager')

    const fail = (message: string) => {
      this.logger.error(message)
      this.exitCode = 1
    }
    if (!(this.feature in billing.config.features)) return fail(`Unknown feature "${this.feature}" (known: ${Object.keys(billing.config.features).join(', ')})`)
    const customer = await Customer.query({ client: billing.db() }).where('billable_type', this.billableType).where('billable_id', this.billableId).first()
    if (!customer) return fail(`No billing customer for ${this.billableType}:${this.billableId} (it is created on first billing use)`)

    if (this.revoke) {
      const count = await revokeFeature(billing, customer, this.feature, { actor: actors.cli(), reason: this.reason })
      this.logger.success(`${count} grant(s) of "${this.feature}" revoked for ${this.billableType}:${this.billableId}`)
      return
    }

    let value: boolean | number | 'unlimited'
    if (this.value === 'true') value = true
    else if (this.value === 'unlimited') value = 'unlimited'
    else if (this.value && /^\d+$/.test(this.value)) value = Number(this.value)
    else return fail(`Value must be true, a positive integer or unlimited (got ${JSON.stringify(this.value ?? null)})`)

    const expiresAt = isoFlag(this, 'expires', this.expires)
    if (expiresAt === false) return
    try {
      const grant = await grantFeature(billing, customer, this.feature, value, { expiresAt: expiresAt ?? null, reason: this.reason, actor: actors.cli() })
      this.logger.success(`Granted ${this.feature}=${value} to ${this.billableType}:${this.billableId} (grant #${grant.id}${expiresAt ? `, until ${expiresAt.toISO()}` : ''})`)
    } catch (error: any) {
      fail(error.message)
    }
  }
}
