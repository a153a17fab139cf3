/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { readFile, readdir } from 'node:fs/promises'
import type Configure from '@adonisjs/core/commands/configure'
import { MIGRATIONS, stubsRoot } from './stubs/main.ts'

/**
 * Secrets the package reads from env.
 */
const ENV_SECRETS = ['STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET']

async function existingMigrations(folder: string): Promise<string[]> {
  try {
    return await readdir(folder, { recursive: true })
  } catch {
    return []
  }
}

/**
 * `node ace add adonis-billing` / `node ace configure adonis-billing`: publishes config and
 * migrations, registers provider, commands and the `entitled` named middleware, and adds the Stripe
 * env variables with their validation. Safe to run again: nothing is duplicated.
 */
export async function configure(command: Configure) {
  const codemods = await command.createCodemods()

  /**
   * Publish config file (kept as is when it exists)
   */
  await codemods.makeUsingStub(stubsRoot, 'config/billing.stub', {})

  /**
   * Publish migrations that are not there yet (a suffix already present in the host's migrations
   * folder is not published again, so configuring twice is harmless and upgrades an older install)
   */
  const migrationsFolder = command.app.migrationsPath()
  const present = await existingMigrations(migrationsFolder)
  let sequence = 0
  for (const migration of MIGRATIONS) {
    if (present.some((file) => file.endsWith(`_${migration.suffix}`))) {
      command.logger.info(`skip: migration ${migration.suffix} already published`)
      continue
    }
    await codemods.makeUsingStub(stubsRoot, migration.stub, {
      entity: command.app.generators.createEntity('billing'),
      migration: {
        folder: 'database/migrations',
        fileName: `${Date.now() + sequence++}_${migration.suffix}`,
      },
    })
  }

  /**
   * Register provider and commands
   */
  await codemods.updateRcFile((rcFile) => {
    rcFile.addProvider('adonis-billing/billing_provider')
    rcFile.addCommand('adonis-billing/commands')
  })

  /**
   * Named middleware gating routes on entitlements
   */
  await codemods.registerMiddleware('named', [{ name: 'entitled', path: 'adonis-billing/entitled_middleware' }])

  /**
   * Stripe secrets: keys added to .env (and to .env.example without a value). Keys already in .env
   * are left alone, so configuring again never wipes a secret.
   */
  const dotenv = await readFile(command.app.makePath('.env'), 'utf8').catch(() => '')
  const missing = ENV_SECRETS.filter((key) => !new RegExp(`^${key}=`, 'm').test(dotenv))
  if (missing.length) {
    await codemods.defineEnvVariables(Object.fromEntries(missing.map((key) => [key, ''])), { omitFromExample: missing })
  }
  await codemods.defineEnvValidations({
    leadingComment: 'Variables for configuring adonis-billing (required in production)',
    variables: {
      STRIPE_SECRET_KEY: 'Env.schema.string.optional()',
      STRIPE_WEBHOOK_SECRET: 'Env.schema.string.optional()',
    },
  })
}
