/**
 * End to end: the packed package installed into a real AdonisJS 7 app (tests/fixtures/host_app), set up
 * with `node ace configure adonis-billing`, migrated with `node ace migration:run`, served by
 * `bin/server.ts` and exercised over real HTTP and real ace commands. See scripts/host_app.ts.
 *
 * The tests run in order and share one app; the group bails at the first failure because every step
 * needs the previous ones. Set KEEP_HOST_APP=1 to keep the app folder (under tmp/host_apps/) afterwards.
 */
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from '@japa/runner'
import Database from 'better-sqlite3'
import { createHostApp, tail, type CommandResult, type HostApp, type RunningServer } from '../scripts/host_app.ts'

/**
 * Files configure writes, compared before and after a second run.
 */
const CONFIGURED_FILES = ['adonisrc.ts', 'start/kernel.ts', 'start/env.ts', '.env', '.env.example', 'config/billing.ts']

/**
 * Stripe secret used to prove configure never overwrites one a developer filled in.
 */
const FILLED_SECRET = 'sk_test_e2e_filled_in_by_the_developer'

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1
}

/**
 * Lines `KEY=...` of a dotenv file.
 */
function envLines(contents: string, key: string): string[] {
  return contents.split('\n').filter((line) => line.startsWith(`${key}=`))
}

async function billingMigrations(host: HostApp): Promise<string[]> {
  return (await readdir(join(host.dir, 'database/migrations'))).filter((file) => file.endsWith('_create_billing_tables.ts'))
}

function explain(result: CommandResult): string {
  return `"${result.command}" exited ${result.code}:\n${tail(result.output)}`
}

/**
 * Signs up through the app and returns the user id and access token.
 */
async function signup(server: RunningServer, email: string, fullName: string) {
  const response = await server.request('POST', '/signup', { body: { email, password: 'correct horse battery', fullName } })
  if (response.status !== 201 || typeof response.json?.token !== 'string' || typeof response.json?.id !== 'number') {
    throw new Error(`POST /signup answered ${response.status}: ${response.text}`)
  }
  return { id: response.json.id as number, token: response.json.token as string }
}

test.group('host app | packed package in a real AdonisJS 7 app', (group) => {
  let host: HostApp
  let server: RunningServer | undefined

  group.bail(true)
  group.each.timeout(240_000)

  group.setup(async () => {
    host = await createHostApp()
    return async () => {
      await server?.stop()
      if (process.env.KEEP_HOST_APP) {
        console.log(`[host_app] kept ${host.dir} (timings ${JSON.stringify(host.timings)})`)
      } else {
        await host.remove()
      }
    }
  })

  test('configure publishes config, migration, provider, commands, middleware and env variables', async ({ assert }) => {
    assert.isFalse(await host.read('config/billing.ts').then(() => true, () => false), 'the fixture must not ship config/billing.ts')
    assert.lengthOf(await billingMigrations(host), 0, 'the fixture must not ship the billing migration')

    const result = await host.ace(['configure', 'adonis-billing'])
    assert.equal(result.code, 0, explain(result))

    const billingConfig = await host.read('config/billing.ts')
    assert.include(billingConfig, "import { defineConfig } from 'adonis-billing'")
    assert.match(billingConfig, /=\s*defineConfig\(\{/)
    assert.include(billingConfig, "env.get('STRIPE_SECRET_KEY')")

    const migrations = await billingMigrations(host)
    assert.lengthOf(migrations, 1)
    const migration = await host.read(`database/migrations/${migrations[0]}`)
    assert.include(migration, "this.schema.createTable('billing_customers'")
    assert.include(migration, "this.schema.createTable('billing_audit_logs'")

    const rc = await host.read('adonisrc.ts')
    assert.include(rc, "() => import('adonis-billing/billing_provider')")
    assert.include(rc, "() => import('adonis-billing/commands')")

    const kernel = await host.read('start/kernel.ts')
    assert.include(kernel, "entitled: () => import('adonis-billing/entitled_middleware')")

    const envTs = await host.read('start/env.ts')
    assert.include(envTs, 'STRIPE_SECRET_KEY: Env.schema.string.optional()')
    assert.include(envTs, 'STRIPE_WEBHOOK_SECRET: Env.schema.string.optional()')

    /**
     * .env gets the keys; .env.example lists them without a value (AdonisJS' `omitFromExample`
     * semantics: the key is documented, a value never lands in the committed file)
     */
    const dotenv = await host.read('.env')
    assert.deepEqual(envLines(dotenv, 'STRIPE_SECRET_KEY'), ['STRIPE_SECRET_KEY='])
    assert.deepEqual(envLines(dotenv, 'STRIPE_WEBHOOK_SECRET'), ['STRIPE_WEBHOOK_SECRET='])
    const example = await host.read('.env.example')
    assert.deepEqual(envLines(example, 'STRIPE_SECRET_KEY'), ['STRIPE_SECRET_KEY='])
    assert.deepEqual(envLines(example, 'STRIPE_WEBHOOK_SECRET'), ['STRIPE_WEBHOOK_SECRET='])
  })

  test('configure again duplicates nothing and keeps a secret filled in .env', async ({ assert }) => {
    /**
     * The developer fills in the Stripe key, then configures again
     */
    const dotenv = await host.read('.env')
    await writeFile(join(host.dir, '.env'), dotenv.replace(/^STRIPE_SECRET_KEY=.*$/m, `STRIPE_SECRET_KEY=${FILLED_SECRET}`))
    const before: Record<string, string> = {}
    for (const file of CONFIGURED_FILES) before[file] = await host.read(file)
    const migrationsBefore = await billingMigrations(host)

    const result = await host.ace(['configure', 'adonis-billing'])
    assert.equal(result.code, 0, explain(result))

    assert.deepEqual(await billingMigrations(host), migrationsBefore)
    const rc = await host.read('adonisrc.ts')
    assert.equal(count(rc, 'adonis-billing/billing_provider'), 1)
    assert.equal(count(rc, 'adonis-billing/commands'), 1)
    assert.equal(count(await host.read('start/kernel.ts'), 'adonis-billing/entitled_middleware'), 1)
    const envTs = await host.read('start/env.ts')
    assert.equal(count(envTs, 'STRIPE_SECRET_KEY:'), 1)
    assert.equal(count(envTs, 'STRIPE_WEBHOOK_SECRET:'), 1)
    assert.equal(count(envTs, 'Variables for configuring adonis-billing'), 1)

    const after = await host.read('.env')
    assert.deepEqual(envLines(after, 'STRIPE_SECRET_KEY'), [`STRIPE_SECRET_KEY=${FILLED_SECRET}`])
    assert.deepEqual(envLines(after, 'STRIPE_WEBHOOK_SECRET'), ['STRIPE_WEBHOOK_SECRET='])
    const example = await host.read('.env.example')
    assert.deepEqual(envLines(example, 'STRIPE_SECRET_KEY'), ['STRIPE_SECRET_KEY='])
    assert.notInclude(example, FILLED_SECRET)

    for (const file of CONFIGURED_FILES) {
      assert.equal(await host.read(file), before[file], `${file} changed on the second configure`)
    }
  })

  test('migration:run creates the billing tables and ace lists the billing commands', async ({ assert }) => {
    const migrate = await host.ace(['migration:run'])
    assert.equal(migrate.code, 0, explain(migrate))
    assert.match(migrate.output, /_create_billing_tables/)

    const db = new Database(join(host.dir, 'tmp/db.sqlite3'), { readonly: true })
    try {
      const tables = db
        .prepare("select name from sqlite_master where type = 'table' and name like 'billing_%' order by name")
        .all()
        .map((row: any) => row.name)
      assert.includeMembers(tables, ['billing_audit_logs', 'billing_customers', 'billing_subscriptions', 'billing_webhook_events'])
    } finally {
      db.close()
    }

    const list = await host.ace(['list'])
    assert.equal(list.code, 0, explain(list))
    assert.match(list.output, /billing:audit:verify\s+Verify the hash chain of the billing audit trail/)
  })

  test('serves billing over HTTP: customers, entitlement gate and audit actor', async ({ assert }) => {
    const app = (server = await host.start())

    const health = await app.request('GET', '/health')
    assert.deepEqual([health.status, health.json], [200, { ok: true }])

    const ada = await signup(app, 'ada@example.com', 'Ada Lovelace')
    const grace = await signup(app, 'grace@example.com', 'Grace Hopper')
    assert.notEqual(ada.id, grace.id)

    /**
     * /me/billing creates the customer once; the second call finds the same row
     */
    const first = await app.request('GET', '/me/billing', { token: ada.token })
    assert.equal(first.status, 200, first.text)
    const customer = first.json.customer
    assert.isNumber(customer.id)
    assert.equal(customer.billableType, 'user')
    assert.equal(customer.billableId, String(ada.id))
    assert.equal(customer.email, 'ada@example.com')
    assert.equal(customer.name, 'Ada Lovelace')
    assert.deepEqual(first.json.entitlements, { live: false, features: {} })

    const again = await app.request('GET', '/me/billing', { token: ada.token })
    assert.equal(again.status, 200, again.text)
    assert.equal(again.json.customer.id, customer.id)

    const graceBilling = await app.request('GET', '/me/billing', { token: grace.token })
    assert.equal(graceBilling.status, 200, graceBilling.text)
    assert.notEqual(graceBilling.json.customer.id, customer.id)
    assert.equal(graceBilling.json.customer.billableId, String(grace.id))

    const anonymous = await app.request('GET', '/me/billing')
    assert.equal(anonymous.status, 401)

    /**
     * The `entitled` middleware: no subscription → 402 problem+json
     */
    const reports = await app.request('GET', '/reports', { token: ada.token })
    assert.equal(reports.status, 402, reports.text)
    assert.match(reports.contentType, /^application\/problem\+json\b/)
    assert.equal(reports.json.code, 'E_BILLING_PAYMENT_REQUIRED')
    assert.equal(reports.json.status, 402)
    assert.include(reports.json.detail, 'sso')

    /**
     * The audit rows name the signed-in user who caused them (HttpContext via async local storage)
     */
    const audit = await app.request('GET', '/admin/audit', { token: grace.token })
    assert.equal(audit.status, 200, audit.text)
    const created = audit.json.rows.filter((row: any) => row.action === 'customer.created')
    assert.lengthOf(created, 2, 'one customer.created row per customer, none for the repeated visit')
    const adaRow = created.find((row: any) => row.customerId === customer.id)
    assert.exists(adaRow, `no customer.created row for customer #${customer.id}`)
    assert.equal(adaRow.actorType, 'user')
    assert.equal(adaRow.actorId, String(ada.id))
    assert.isString(adaRow.requestId)
    const graceRow = created.find((row: any) => row.customerId === graceBilling.json.customer.id)
    assert.equal(graceRow?.actorType, 'user')
    assert.equal(graceRow?.actorId, String(grace.id))

    /**
     * The same, straight from the table the package writes
     */
    const db = new Database(join(host.dir, 'tmp/db.sqlite3'), { readonly: true })
    try {
      const rows = db
        .prepare("select actor_type, actor_id, customer_id from billing_audit_logs where action = 'customer.created' order by id")
        .all()
      assert.deepEqual(rows, [
        { actor_type: 'user', actor_id: String(ada.id), customer_id: customer.id },
        { actor_type: 'user', actor_id: String(grace.id), customer_id: graceBilling.json.customer.id },
      ])
    } finally {
      db.close()
    }
  })

  test('billing:audit:verify passes on the rows written over HTTP and fails on an edited row', async ({ assert }) => {
    const verify = await host.ace(['billing:audit:verify'])
    assert.equal(verify.code, 0, explain(verify))
    assert.match(verify.output, /audit chain intact: 2 rows verified/)

    /**
     * Edit a row behind the package's back: the command must notice and exit 1
     */
    const db = new Database(join(host.dir, 'tmp/db.sqlite3'))
    const original = db.prepare('select id, actor_id from billing_audit_logs order by id limit 1').get() as { id: number; actor_id: string }
    /**
     * The published migrations made the rows append-only; the tables' owner drops that guard first
     */
    assert.throws(() => db.prepare('update billing_audit_logs set actor_id = ? where id = ?').run('999', original.id), /append-only/)
    db.exec('drop trigger billing_audit_append_only_update')
    try {
      db.prepare('update billing_audit_logs set actor_id = ? where id = ?').run('999', original.id)
      const tampered = await host.ace(['billing:audit:verify'])
      assert.equal(tampered.code, 1, explain(tampered))
      assert.match(tampered.output, new RegExp(`audit chain broken at row #${original.id}`))
    } finally {
      db.prepare('update billing_audit_logs set actor_id = ? where id = ?').run(original.actor_id, original.id)
      db.close()
    }

    const restored = await host.ace(['billing:audit:verify'])
    assert.equal(restored.code, 0, explain(restored))
  })
})
