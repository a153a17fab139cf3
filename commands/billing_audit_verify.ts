/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { readFile } from 'node:fs/promises'
import { BaseCommand, flags } from '@adonisjs/core/ace'
import type { CommandOptions } from '@adonisjs/core/types/ace'

/**
 * Recomputes the audit chain's HMACs and reports the first row that was edited, removed or inserted;
 * with `--expect <checkpoint file or JSON>`, also that the chain still holds that checkpoint (not
 * truncated or rewritten before it; the file's last line is used). Exits 1 when the chain is broken.
 */
export default class BillingAuditVerify extends BaseCommand {
  static commandName = 'billing:audit:verify'
  static description = 'Verify the hash chain of the billing audit trail'
  static options: CommandOptions = { startApp: true }

  @flags.boolean({ description: 'Print the result as JSON' })
  declare json: boolean

  @flags.string({ description: 'A checkpoint from billing:audit:checkpoint (a file, or the JSON itself) the chain must still hold' })
  declare expect?: string

  async run() {
    const billing = await this.app.container.make('billing.manager')
    let expect
    if (this.expect !== undefined) {
      expect = await this.#checkpoint(this.expect)
      if (!expect) {
        this.logger.error(`--expect: not a checkpoint file or JSON (${this.expect.slice(0, 80)})`)
        this.exitCode = 1
        return
      }
    }
    const result = await billing.audit.verify({ expect })
    if (this.json) {
      this.logger.log(JSON.stringify(result))
    } else if (result.ok) {
      this.logger.success(`audit chain intact: ${result.checked} rows verified`)
    } else {
      const why =
        result.reason === 'head_mismatch'
          ? `the newest rows were removed (the chain head is ahead of row count ${result.checked})`
          : result.reason === 'head_missing'
            ? 'the chain head (billing_audit_head) was removed'
            : result.reason === 'checkpoint_invalid'
              ? 'or the checkpoint is forged: it is not signed with this app\'s audit keys'
              : result.reason === 'checkpoint_mismatch'
                ? `the chain no longer holds the expected checkpoint (truncated, or rewritten before it); ${result.checked} rows verified`
                : result.reason === 'unknown_key'
                  ? `at row #${result.brokenAt} (signed with a key id this app does not have: add it to audit.previousKeys); ${result.checked} rows verified before it`
                  : result.reason === 'unsealed'
            ? `at row #${result.brokenAt} (it never joined the chain: written around the package, or the billing_audit_seal trigger is missing); ${result.checked} chained rows verified`
            : `at row #${result.brokenAt} (${result.reason === 'hash_mismatch' ? 'row content was changed' : 'a row before it was removed or inserted'}); ${result.checked} rows verified before it`
      this.logger.error(`audit chain broken ${why}`)
    }
    if (!result.ok) this.exitCode = 1
  }

  /**
   * The checkpoint from a file (its last line) or from the flag's JSON
   */
  async #checkpoint(value: string) {
    let text = value.trim()
    if (!text.startsWith('{')) {
      try {
        text = (await readFile(value, 'utf8')).trim().split('\n').pop() ?? ''
      } catch {
        return null
      }
    }
    try {
      const parsed = JSON.parse(text)
      return parsed && typeof parsed === 'object' && Number.isSafeInteger(parsed.seq) && typeof parsed.hash === 'string' ? parsed : null
    } catch {
      return null
    }
  }
}
