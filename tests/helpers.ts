/**
 * Test harness: boots a real AdonisJS app (IgnitorFactory) with Lucid and the billing provider on a
 * fresh SQLite file or a fresh PostgreSQL database, migrated with the package's own migration stub
 * rendered by the AdonisJS stubs manager and run by Lucid's MigrationRunner.
 */
import { randomUUID } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { getActiveTest } from '@japa/runner'
import { IgnitorFactory } from '@adonisjs/core/factories'
import { defineConfig as defineHttpConfig } from '@adonisjs/core/http'
import type { ApplicationService } from '@adonisjs/core/types'
import type { Database } from '@adonisjs/lucid/database'
import pg from 'pg'
import { defineConfig } from '../src/define_config.ts'
import { MIGRATIONS, stubsRoot } from '../stubs/main.ts'
import type { BillingManager } from '../src/billing_manager.ts'
import type { BillingConfigInput } from '../src/types.ts'
import { testCatalog } from './fixtures/catalog.ts'

export type Dialect = 'sqlite' | 'pg'

/**
 * Every database the suite runs on.
 */
export const DIALECTS: Dialect[] = ['sqlite', 'pg']

export const TMP = new URL('./tmp/', import.meta.url)

/**
 * Connection settings of the throwaway cluster started by `npm test`.
 */
export function pgSettings() {
  const host = process.env.BILLING_TEST_PG_HOST
  const port = Number(process.env.BILLING_TEST_PG_PORT)
  if (!host || !port) {
    throw new Error('PostgreSQL tests need the cluster started by "npm test" (BILLING_TEST_PG_HOST/PORT are unset)')
  }
  return { host, port, user: process.env.BILLING_TEST_PG_USER ?? 'postgres' }
}

/**
 * Runs a statement on the cluster's maintenance database.
 */
async function pgAdmin(sql: string) {
  const client = new pg.Client({ ...pgSettings(), database: 'postgres' })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

/**
 * Creates an empty database and returns its Lucid connection config plus a drop function.
 */
export async function createDatabase(dialect: Dialect, root: string) {
  if (dialect === 'sqlite') {
    const filename = `${root}/db.sqlite3`
    return {
      connection: { client: 'better-sqlite3' as const, connection: { filename }, useNullAsDefault: true },
      drop: async () => {},
    }
  }
  const name = `billing_${randomUUID().replaceAll('-', '').slice(0, 20)}`
  await pgAdmin(`create database ${name}`)
  return {
    connection: { client: 'pg' as const, connection: { ...pgSettings(), database: name }, pool: { min: 0, max: 20 } },
    drop: async () => pgAdmin(`drop database if exists ${name} with (force)`),
  }
}

export interface TestApp {
  app: ApplicationService
  billing: BillingManager
  db: Database
  dialect: Dialect
  root: string
  /** Lucid connection config of its database (share it with `setupApp(…, { shareDatabaseWith })`) */
  connection: Awaited<ReturnType<typeof createDatabase>>['connection']
}

/**
 * Connection settings of the throwaway Redis server started by `npm test`.
 */
export function redisSettings() {
  const host = process.env.BILLING_TEST_REDIS_HOST
  const port = Number(process.env.BILLING_TEST_REDIS_PORT)
  if (!host || !port) {
    throw new Error('Redis tests need the server started by "npm test" (BILLING_TEST_REDIS_HOST/PORT are unset)')
  }
  return { host, port }
}

/**
 * Boots an app on a fresh, migrated database. Torn down by the active test's cleanup.
 */
export async function setupApp(
  dialect: Dialect,
  options: {
    billing?: BillingConfigInput
    environment?: 'web' | 'console' | 'test'
    nodeEnv?: string
    /** More config files (`redis`, `cache`, ...) */
    config?: Record<string, unknown>
    /** More providers, registered before the billing provider */
    providers?: Array<() => Promise<any>>
    /** A second instance of the same app: same database (already migrated, dropped by its owner) */
    shareDatabaseWith?: TestApp
  } = {}
): Promise<TestApp> {
  const id = randomUUID().slice(0, 8)
  const rootUrl = new URL(`apps/${id}/`, TMP)
  const root = fileURLToPath(rootUrl).replace(/\/$/, '')
  await mkdir(root, { recursive: true })
  const shared = options.shareDatabaseWith
  const database = shared ? { connection: shared.connection, drop: async () => {} } : await createDatabase(dialect, root)

  const ignitor = new IgnitorFactory()
    .withCoreProviders()
    .withCoreConfig()
    .merge({
      config: {
        app: { appKey: 'averylongrandom32charslongsecret', http: defineHttpConfig({ useAsyncLocalStorage: true }) },
        database: { connection: 'primary', connections: { primary: database.connection } },
        billing: defineConfig(options.billing ?? testCatalog()),
        ...options.config,
      },
      rcFileContents: {
        providers: [
          () => import('@adonisjs/lucid/database_provider'),
          ...(options.providers ?? []),
          () => import('../providers/billing_provider.ts'),
        ],
      },
    })
    .create(rootUrl, {
      importer: (filePath) => {
        if (filePath.startsWith('./') || filePath.startsWith('../')) return import(new URL(filePath, rootUrl).href)
        return import(filePath)
      },
    })

  const app = ignitor.createApp(options.environment ?? 'web')
  const previousNodeEnv = process.env.NODE_ENV
  if (options.nodeEnv) process.env.NODE_ENV = options.nodeEnv
  try {
    await app.init()
    await app.boot()
  } catch (error) {
    /**
     * A boot that fails (config errors under test) must not leave connections open
     */
    await app.terminate().catch(() => {})
    await database.drop()
    throw error
  } finally {
    process.env.NODE_ENV = previousNodeEnv
  }

  const db = await app.container.make('lucid.db')
  if (!shared) {
    await migrate(app, db, root)
    await db.connection().schema.createTable('users', (table) => {
      table.increments('id')
      table.string('email').notNullable()
      table.string('name').nullable()
    })
    await db.connection().schema.createTable('teams', (table) => {
      table.increments('id')
      table.string('name').notNullable()
    })
  }

  const billing = await app.container.make('billing.manager')
  getActiveTest()?.cleanup(async () => {
    await app.terminate()
    await database.drop()
    await rm(root, { recursive: true, force: true })
  })
  return { app, billing, db, dialect, root, connection: database.connection }
}

/**
 * Renders the package's migration stubs like `configure` does and runs it with Lucid's migrator.
 */
export async function migrate(app: ApplicationService, db: Database, root: string) {
  const stubs = await app.stubs.create()
  await mkdir(`${root}/database/migrations`, { recursive: true })
  for (const [index, migration] of MIGRATIONS.entries()) {
    const stub = await stubs.build(migration.stub, { source: stubsRoot })
    const prepared = await stub.prepare({
      entity: app.generators.createEntity('billing'),
      migration: { folder: 'database/migrations', fileName: `${1700000000000 + index}_${migration.suffix}` },
    })
    await writeFile(prepared.destination, prepared.contents)
  }
  const { MigrationRunner } = await import('@adonisjs/lucid/migration')
  const runner = new MigrationRunner(db, app as any, { direction: 'up', connectionName: 'primary', disableLocks: true })
  await runner.run()
  if (runner.error) throw runner.error
  if (runner.status !== 'completed') throw new Error(`migrations ended as ${runner.status}`)
}

/**
 * An app whose Stripe client talks to a fresh loopback Stripe fake (no retries, short timeout,
 * unless `stripe` overrides them). The fake closes with the test.
 */
export async function setupStripeApp(
  dialect: Dialect,
  options: {
    billing?: BillingConfigInput
    stripe?: BillingConfigInput['stripe']
    environment?: 'web' | 'console' | 'test'
    /** Reuse a running fake (a second app on the same Stripe account) */
    fake?: import('../src/testing/main.ts').StripeFake
  } = {}
) {
  const { StripeFake } = await import('../src/testing/main.ts')
  const fake = options.fake ?? (await StripeFake.start())
  if (!options.fake) getActiveTest()?.cleanup(() => fake.close())
  const catalog = options.billing ?? testCatalog()
  catalog.stripe = {
    ...catalog.stripe,
    secretKey: 'sk_test_fake',
    ...fake.clientOptions,
    maxNetworkRetries: 0,
    timeout: 1500,
    ...options.stripe,
  }
  const testApp = await setupApp(dialect, { billing: catalog, environment: options.environment })
  return { ...testApp, fake }
}
