/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import type { BaseCommand } from '@adonisjs/core/ace'

/**
 * Parses an ISO date flag as UTC. Logs the error and sets exit code 1 when it is not one (returns
 * false), returns undefined when the flag is absent.
 */
export function isoFlag(command: BaseCommand, name: string, value: string | undefined): DateTime | undefined | false {
  if (value === undefined) return undefined
  const parsed = DateTime.fromISO(value, { zone: 'utc' })
  if (parsed.isValid) return parsed
  command.logger.error(`--${name} "${value}" is not an ISO date`)
  command.exitCode = 1
  return false
}
