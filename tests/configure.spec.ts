import { test } from '@japa/runner'
import { randomUUID } from 'node:crypto'
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { IgnitorFactory } from '@adonisjs/core/factories'
import Configure from '@adonisjs/core/commands/configure'
import { TMP } from './helpers.ts'

/**
 * A minimal host app skeleton, as `npm init adonisjs` leaves it, for the real codemods to edit.
 */
const SKELETON: Record<string, string> = {
  '.env': 'PORT=3333\nHOST=localhost\n',
  '.env.example': 'PORT=3333\nHOST=localhost\n',
  'tsconfig.json': '{}',
  'adonisrc.ts': `import { defineConfig } from '@adonisjs/core/app'\n\nexport default defineConfig({\n  commands: [() => import('@adonisjs/core/commands')],\n  providers: [() => import('@adonisjs/core/providers/app_provider')],\n})\n`,
  'start/env.ts': `import { Env } from '@adonisjs/core/env'\n\nexport default await Env.create(new URL('../', import.meta.url), {\n  PORT: Env.schema.number(),\n})\n`,
  'start/kernel.ts': `import router from '@adonisjs/core/services/router'\nimport server from '@adonisjs/core/services/server'\n\nserver.use([])\n\nrouter.use([() => import('@adonisjs/core/bodyparser_middleware')])\n\nexport const middleware = router.named({})\n`,
  'database/migrations/.gitkeep': '',
}

async function createHostSkeleton() {
  const root = fileURLToPath(new URL(`configure_${randomUUID().slice(0, 8)}/`, TMP))
  for (const [file, contents] of Object.entries(SKELETON)) {
    await mkdir(dirname(join(root, file)), { recursive: true })
    await writeFile(join(root, file), contents)
  }
  return root
}

async function runConfigure(root: string) {
  const rootUrl = new URL(`file://${root}`)
  const ignitor = new IgnitorFactory()
    .withCoreProviders()
    .withCoreConfig()
    .create(rootUrl, {
      importer: (filePath) => {
        if (filePath.startsWith('./') || filePath.startsWith('../')) return import(new URL(filePath, rootUrl).href)
        return import(filePath)
      },
    })
  const app = ignitor.createApp('console')
  await app.init()
  await app.boot()
  const ace = await app.container.make('ace')
  ace.ui.switchMode('raw')
  const packageEntry = new URL('../index.ts', import.meta.url).href
  const command = await ace.create(Configure, [packageEntry])
  await command.exec()
  await app.terminate()
  return command
}

function count(haystack: string, needle: string) {
  return haystack.split(needle).length - 1
}

test.group('configure hook', (group) => {
  group.tap((t) => t.timeout(60_000))

  test('publishes config and migration, registers provider, commands, middleware and env', async ({ assert, cleanup }) => {
    const root = await createHostSkeleton()
    cleanup(() => rm(root, { recursive: true, force: true }))

    const command = await runConfigure(root)
    assert.equal(command.exitCode, 0, JSON.stringify(command.ui.logger.getLogs()))

    const config = await readFile(join(root, 'config/billing.ts'), 'utf8')
    assert.include(config, "import { defineConfig } from 'adonis-billing'")
    assert.include(config, "secretKey: env.get('STRIPE_SECRET_KEY')")

    const migrations = (await readdir(join(root, 'database/migrations'))).filter((file) => file.endsWith('_create_billing_tables.ts'))
    assert.lengthOf(migrations, 1)
    const migration = await readFile(join(root, 'database/migrations', migrations[0]), 'utf8')
    assert.include(migration, "createTable('billing_audit_logs'")
    assert.notInclude(migration, 'exports(')

    const rc = await readFile(join(root, 'adonisrc.ts'), 'utf8')
    assert.include(rc, "() => import('adonis-billing/billing_provider')")
    assert.include(rc, "() => import('adonis-billing/commands')")

    const kernel = await readFile(join(root, 'start/kernel.ts'), 'utf8')
    assert.include(kernel, "entitled: () => import('adonis-billing/entitled_middleware')")

    const env = await readFile(join(root, 'start/env.ts'), 'utf8')
    assert.include(env, 'STRIPE_SECRET_KEY: Env.schema.string.optional()')
    assert.include(env, 'STRIPE_WEBHOOK_SECRET: Env.schema.string.optional()')
    const dotenv = await readFile(join(root, '.env'), 'utf8')
    assert.match(dotenv, /^STRIPE_SECRET_KEY=/m)
    assert.match(dotenv, /^STRIPE_WEBHOOK_SECRET=/m)
    const example = await readFile(join(root, '.env.example'), 'utf8')
    /**
     * The keys are documented in .env.example, their values never are.
     */
    assert.match(example, /^STRIPE_SECRET_KEY=$/m)
    assert.match(example, /^STRIPE_WEBHOOK_SECRET=$/m)
  })

  test('running it twice duplicates nothing and keeps an edited config', async ({ assert, cleanup }) => {
    const root = await createHostSkeleton()
    cleanup(() => rm(root, { recursive: true, force: true }))

    await runConfigure(root)
    const configPath = join(root, 'config/billing.ts')
    await writeFile(configPath, (await readFile(configPath, 'utf8')).replace("currency: 'usd'", "currency: 'eur'"))
    const dotenvPath = join(root, '.env')
    await writeFile(dotenvPath, (await readFile(dotenvPath, 'utf8')).replace(/^STRIPE_SECRET_KEY=.*$/m, 'STRIPE_SECRET_KEY=sk_test_keep_me'))
    const snapshot: Record<string, string> = {}
    for (const file of ['adonisrc.ts', 'start/kernel.ts', 'start/env.ts', '.env', '.env.example']) {
      snapshot[file] = await readFile(join(root, file), 'utf8')
    }

    const second = await runConfigure(root)
    assert.equal(second.exitCode, 0)

    const migrations = (await readdir(join(root, 'database/migrations'))).filter((file) => file.endsWith('_create_billing_tables.ts'))
    assert.lengthOf(migrations, 1)
    const upgrades = (await readdir(join(root, 'database/migrations'))).filter((file) => file.endsWith('_add_billing_usage_payload_hash.ts'))
    assert.lengthOf(upgrades, 1)
    assert.include(await readFile(configPath, 'utf8'), "currency: 'eur'")

    const rc = await readFile(join(root, 'adonisrc.ts'), 'utf8')
    assert.equal(count(rc, 'adonis-billing/billing_provider'), 1)
    assert.equal(count(rc, 'adonis-billing/commands'), 1)
    const kernel = await readFile(join(root, 'start/kernel.ts'), 'utf8')
    assert.equal(count(kernel, 'adonis-billing/entitled_middleware'), 1)
    const env = await readFile(join(root, 'start/env.ts'), 'utf8')
    assert.equal(count(env, 'STRIPE_SECRET_KEY'), 1)
    const dotenv = await readFile(join(root, '.env'), 'utf8')
    assert.equal(count(dotenv, 'STRIPE_SECRET_KEY='), 1)
    assert.include(dotenv, 'STRIPE_SECRET_KEY=sk_test_keep_me')
    assert.equal(count(dotenv, 'STRIPE_WEBHOOK_SECRET='), 1)
    for (const [file, before] of Object.entries(snapshot)) {
      assert.equal(await readFile(join(root, file), 'utf8'), before, `${file} changed on the second run`)
    }
  })
})
