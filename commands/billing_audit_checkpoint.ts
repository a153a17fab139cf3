/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { writeFile } from 'node:fs/promises'
import { BaseCommand, flags } from '@adonisjs/core/ace'
import type { CommandOptions } from '@adonisjs/core/types/ace'

/**
 * Verifies the audit chain and prints a signed checkpoint (row count, head hash, time, key id, HMAC)
 * as one JSON line, or writes it to `--out`. Keep checkpoints where the database's writers cannot
 * reach them; `billing:audit:verify --expect <file>` later detects truncation or a rewrite before one.
 * Exits 1 (and exports nothing) when the chain does not verify.
 */
export default class BillingAuditCheckpoint extends BaseCommand {
  static commandName = 'billing:audit:checkpoint'
  static description = 'Export a signed checkpoint of the billing audit chain'
  static options: CommandOptions = { startApp: true }

  @flags.string({ description: 'Write the checkpoint to this file (appended as one JSON line)' })
  declare out?: string

  async run() {
    const billing = await this.app.container.make('billing.manager')
    let checkpoint
    try {
      checkpoint = await billing.audit.checkpoint()
    } catch (error: any) {
      this.logger.error(error.message)
      this.exitCode = 1
      return
    }
    const line = JSON.stringify(checkpoint)
    if (this.out) {
      await writeFile(this.out, `${line}\n`, { flag: 'a' })
      this.logger.success(`checkpoint of ${checkpoint.seq} rows appended to ${this.out}`)
    } else {
      this.logger.log(line)
    }
  }
}
