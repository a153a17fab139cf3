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
 * Recomputes the audit hash chain and reports the first row that was edited, removed or inserted.
 * Exits 1 when the chain is broken.
 */
export default class BillingAuditVerify extends BaseCommand {
  static commandName = 'billing:audit:verify'
  static description = 'Verify the hash chain of the billing audit trail'
  static options: CommandOptions = { startApp: true }

  @flags.boolean({ description: 'Print the result as JSON' })
  declare json: boolean

  async run() {
    const billing = await this.app.container.make('billing.manager')
    const result = await billing.audit.verify()
    if (this.json) {
      this.logger.log(JSON.stringify(result))
    } else if (result.ok) {
      this.logger.success(`audit chain intact: ${result.checked} rows verified`)
    } else {
      const why =
        result.reason === 'head_mismatch'
          ? `the newest rows were removed (the chain head is ahead of row count ${result.checked})`
          : result.reason === 'unsealed'
            ? `at row #${result.brokenAt} (it never joined the chain: written around the package, or the billing_audit_seal trigger is missing); ${result.checked} chained rows verified`
            : `at row #${result.brokenAt} (${result.reason === 'hash_mismatch' ? 'row content was changed' : 'a row before it was removed or inserted'}); ${result.checked} rows verified before it`
      this.logger.error(`audit chain broken ${why}`)
    }
    if (!result.ok) this.exitCode = 1
  }
}
