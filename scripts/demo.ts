/**
 * `npm run demo`: a guided tour of adonis-billing inside a real AdonisJS 7 app.
 *
 * Packs the package, installs it into a fresh copy of the fixture app (tmp/demo_host_app, replaced on
 * every run), runs `node ace configure adonis-billing` and `node ace migration:run`, serves the app on a
 * loopback port (see scripts/host_app.ts), then walks through what the package can do so far, through
 * its public surface only: HTTP requests to the app's routes and `node ace` commands.
 *
 * Stripe: with STRIPE_SECRET_KEY set (a test-mode key) the app talks to your Stripe test account;
 * without it, the package's loopback Stripe fake is started and the app is pointed at it.
 *
 * The tour is the `STEPS` list below: later capabilities (checkout, webhooks, usage, dashboard) add a
 * step there. A step throws `DemoError` when the app does not behave as shown, so the demo exits 1 with
 * the reason; it always stops the processes it started.
 *
 * Plain Node 24 TypeScript (type stripping only): no decorators, enums or parameter properties.
 */
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { styleText } from 'node:util'
import {
  createHostApp,
  REPO_ROOT,
  tail,
  type CommandResult,
  type HostApp,
  type HttpAnswer,
  type RunningServer,
} from './host_app.ts'

/**
 * Where the demo's app lives (git-ignored, replaced on every run).
 */
const DEMO_DIR = join(REPO_ROOT, 'tmp/demo_host_app')

/* -------------------------------------------------------------------------------------------------
 * Output helpers
 * -----------------------------------------------------------------------------------------------*/

const bold = (text: string) => styleText('bold', text)
const dim = (text: string) => styleText('dim', text)
const green = (text: string) => styleText('green', text)
const red = (text: string) => styleText('red', text)
const cyan = (text: string) => styleText('cyan', text)

function section(title: string) {
  console.log('')
  console.log(bold(cyan(title)))
  console.log(cyan('─'.repeat(Math.min(title.length, 100))))
}

function say(text = '') {
  console.log(text ? `  ${text}` : '')
}

/**
 * Visible width of a cell (ANSI colors do not count)
 */
function width(text: string): number {
  return text.replace(/\x1b\[[0-9;]*m/g, '').length
}

/**
 * An aligned table. Columns whose title starts with '>' are right-aligned.
 */
function table(headers: string[], rows: string[][]) {
  const right = headers.map((header) => header.startsWith('>'))
  const titles = headers.map((header) => header.replace(/^>/, ''))
  const widths = titles.map((title, column) => Math.max(width(title), ...rows.map((row) => width(row[column] ?? ''))))
  const pad = (cell: string, column: number) => {
    const fill = ' '.repeat(widths[column] - width(cell))
    return right[column] ? fill + cell : cell + fill
  }
  const line = (cells: string[]) => '  ' + cells.map((cell, column) => pad(cell, column)).join('   ').trimEnd()
  console.log(bold(line(titles)))
  console.log(dim('  ' + widths.map((size) => '─'.repeat(size)).join('   ')))
  for (const row of rows) console.log(line(row))
}

function shortHash(hash: string | null | undefined): string {
  if (!hash) return '–'
  return /^0+$/.test(hash) ? '0000…(genesis)' : `${hash.slice(0, 12)}…`
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '–' : `${(ms / 1000).toFixed(1)} s`
}

/**
 * Amounts are integers (or decimal strings, for sub-cent unit prices) in minor units: 2900 is 29.00.
 * Formatted exactly, without going through floating point.
 */
function money(minor: number | string, currency: string): string {
  const format = new Intl.NumberFormat('en-US', { style: 'currency', currency: currency.toUpperCase() })
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2
  const text = String(minor)
  const negative = text.startsWith('-')
  const [integer, fraction = ''] = (negative ? text.slice(1) : text).split('.')
  const padded = integer.padStart(digits + 1, '0')
  const major = `${negative ? '-' : ''}${padded.slice(0, padded.length - digits)}.${padded.slice(padded.length - digits)}${fraction}`
  return new Intl.NumberFormat('en-US', {
    style: 'currency',
    currency: currency.toUpperCase(),
    minimumFractionDigits: digits,
    maximumFractionDigits: 20,
  }).format(major as unknown as number)
}

function quantity(value: number | string): string {
  return value === 'inf' ? '∞' : Number(value).toLocaleString('en-US')
}

/* -------------------------------------------------------------------------------------------------
 * The tour
 * -----------------------------------------------------------------------------------------------*/

/**
 * The app does not behave as the demo expects.
 */
class DemoError extends Error {
  details?: string
  constructor(message: string, details?: string) {
    super(message)
    this.name = 'DemoError'
    this.details = details
  }
}

function expectStatus(answer: HttpAnswer, status: number, what: string) {
  if (answer.status !== status) {
    throw new DemoError(`${what}: expected HTTP ${status}, got ${answer.status}`, answer.text.slice(0, 2000))
  }
}

function expectCommand(result: CommandResult, code: number) {
  if (result.code !== code) {
    throw new DemoError(`"${result.command}": expected exit code ${code}, got ${result.code}`, tail(result.output))
  }
}

/**
 * Stripe as the demo app sees it.
 */
interface StripeSetup {
  mode: 'account' | 'fake' | 'none'
  /** Environment of the app's processes */
  env: Record<string, string | undefined>
  /** Stops the fake */
  close(): Promise<void>
  description: string
  /** The loopback fake, when the demo started one (its clock drives renewals and prorations) */
  fake?: any
}

/**
 * State shared by the steps. Steps add what later steps need.
 */
interface Demo {
  stripe: StripeSetup
  host?: HostApp
  server?: RunningServer
  users: { label: string; email: string; id: number; token: string; customerId?: number }[]
}

interface Step {
  title: string
  run(demo: Demo): Promise<void>
}

/**
 * Runs `node ace` in the demo app with the demo's Stripe environment.
 */
function ace(demo: Demo, args: string[]): Promise<CommandResult> {
  return demo.host!.ace(args, { env: demo.stripe.env })
}

/**
 * Prints what an ace command said, indented.
 */
function echo(result: CommandResult, filter: (line: string) => boolean = () => true) {
  for (const line of result.output.trim().split('\n').filter(filter)) say(dim('│ ') + line)
}

/**
 * Points the Stripe client of the published config/billing.ts at the fake through STRIPE_API_* env
 * variables (what a developer does to use stripe-mock or a proxy). Only the demo's copy is changed.
 */
async function pointConfigAtStripeFake(host: HostApp) {
  const path = join(host.dir, 'config/billing.ts')
  const source = await readFile(path, 'utf8')
  const anchor = /^([ \t]*)stripe: \{\n/m
  const match = anchor.exec(source)
  if (!match) throw new DemoError('cannot find "stripe: {" in the published config/billing.ts to point it at the Stripe fake')
  const indent = `${match[1]}  `
  const lines = [
    `${indent}/**`,
    `${indent} * Added by scripts/demo.ts: the loopback Stripe fake`,
    `${indent} */`,
    `${indent}host: env.get('STRIPE_API_HOST'),`,
    `${indent}port: env.get('STRIPE_API_PORT') ? Number(env.get('STRIPE_API_PORT')) : undefined,`,
    `${indent}protocol: env.get('STRIPE_API_PROTOCOL') as 'http' | 'https' | undefined,`,
  ]
  await writeFile(path, source.replace(anchor, (found) => `${found}${lines.join('\n')}\n`))
}

const STEPS: Step[] = [
  {
    title: 'A fresh AdonisJS 7 app with adonis-billing installed',
    async run(demo) {
      say(`Stripe: ${demo.stripe.description}`)
      say('')
      const host = await createHostApp({ dir: DEMO_DIR, log: (message) => say(dim(`… ${message}`)) })
      demo.host = host

      say(dim('… node ace configure adonis-billing'))
      echo(await host.configure({ env: demo.stripe.env }))

      if (demo.stripe.mode === 'fake') {
        say(dim('… pointing config/billing.ts at the Stripe fake'))
        await pointConfigAtStripeFake(host)
      }

      say(dim('… node ace migration:run'))
      echo(await host.migrate({ env: demo.stripe.env }), (line) => /\bmigrated\b/.test(line))

      say(dim('… node --import=@poppinss/ts-exec bin/server.ts'))
      demo.server = await host.start({ env: demo.stripe.env })

      say('')
      table(
        ['Preparation', '>Time'],
        [
          ['npm pack (compile included)', seconds(host.timings.pack)],
          ['copy tests/fixtures/host_app', seconds(host.timings.copy)],
          ['npm install <tarball>', seconds(host.timings.install)],
          ['node ace configure adonis-billing', seconds(host.timings.configure)],
          ['node ace migration:run', seconds(host.timings.migrate)],
          ['boot until GET /health answers', seconds(host.timings.boot)],
        ]
      )
      say('')
      say(`App: ${bold(relative(REPO_ROOT, host.dir))}, serving ${bold(demo.server.url)}`)
    },
  },

  {
    title: 'The catalog (config/billing.ts, served by GET /plans)',
    async run(demo) {
      const answer = await demo.server!.request('GET', '/plans')
      expectStatus(answer, 200, 'GET /plans')
      const { plans, features, meters } = answer.json as {
        plans: any[]
        features: Record<string, { type: string; description?: string; meter?: string }>
        meters: Record<string, { name: string; unit?: string; aggregation: string; eventName: string }>
      }
      if (!plans?.length) throw new DemoError('GET /plans listed no plan', answer.text)

      table(
        ['Plan', 'Key', 'Recurring prices', 'Trial', 'Lookup keys'],
        plans.map((plan) => [
          plan.name + (plan.addOn ? dim(' (add-on)') : ''),
          plan.key,
          plan.prices.length ? plan.prices.map((price: any) => `${money(price.amount, price.currency)} / ${price.interval}`).join(', ') : green('free'),
          plan.prices
            .filter((price: any) => price.trialDays)
            .map((price: any) => `${price.trialDays} days (${price.interval})`)
            .join(', ') || '–',
          [...plan.prices, ...plan.usagePrices].map((price: any) => price.lookupKey).join(', ') || '–',
        ])
      )

      say('')
      table(
        ['Meter', 'Name', 'Unit', 'Aggregation', 'Stripe event name'],
        Object.entries(meters).map(([key, meter]) => [key, meter.name, meter.unit ?? '–', meter.aggregation, meter.eventName])
      )

      const usage = plans.flatMap((plan) => plan.usagePrices.map((price: any) => ({ plan, price })))
      if (usage.length) {
        say('')
        table(
          ['Usage price', 'Meter', 'Model', 'Pricing'],
          usage.map(({ plan, price }) => [plan.key, price.meter, price.model, describeUsagePrice(price)])
        )
      }

      say('')
      table(
        ['Feature', 'Description', 'Type', ...plans.map((plan) => `>${plan.key}`)],
        Object.entries(features).map(([key, feature]) => [
          key,
          feature.description ?? '–',
          feature.type + (feature.meter ? dim(` (${feature.meter})`) : ''),
          ...plans.map((plan) => describeFeatureValue(plan.features[key])),
        ])
      )
    },
  },

  {
    title: 'Customers, created through HTTP requests',
    async run(demo) {
      const server = demo.server!
      const suffix = randomBytes(2).toString('hex')
      for (const [label, name] of [
        ['ada', 'Ada Lovelace'],
        ['grace', 'Grace Hopper'],
      ]) {
        const email = `${label}.${suffix}@example.com`
        const signup = await server.request('POST', '/signup', { body: { email, fullName: name, password: 'correct horse battery' } })
        expectStatus(signup, 201, 'POST /signup')
        demo.users.push({ label, email, id: signup.json.id, token: signup.json.token })
      }
      say(`POST /signup created ${demo.users.map((user) => `${user.label} (user #${user.id})`).join(' and ')}`)
      say('')

      const rows: string[][] = []
      for (const user of demo.users) {
        const answer = await server.request('GET', '/me/billing', { token: user.token })
        expectStatus(answer, 200, `GET /me/billing as ${user.label}`)
        user.customerId = answer.json.customer.id
        rows.push([
          `GET /me/billing as ${user.label}`,
          `#${answer.json.customer.id}`,
          `${answer.json.customer.billableType}:${answer.json.customer.billableId}`,
          answer.json.customer.email,
          answer.json.customer.currency,
          answer.json.entitlements.live ? green('yes') : 'no',
        ])
      }
      const ada = demo.users[0]
      const again = await server.request('GET', '/me/billing', { token: ada.token })
      expectStatus(again, 200, 'GET /me/billing again')
      if (again.json.customer.id !== ada.customerId) {
        throw new DemoError(`a second GET /me/billing gave customer #${again.json.customer.id}, not #${ada.customerId}`)
      }
      rows.push([`GET /me/billing as ${ada.label}, again`, `#${again.json.customer.id}`, dim('same row, nothing created'), '', '', ''])

      table(['Request', 'Customer', 'Billable', 'Email', 'Currency', 'Live subscription'], rows)
      say('')
      say(dim('billing.for(user).customer() creates the row on first use, exactly once (unique billable key).'))
    },
  },

  {
    title: 'Entitlements: GET /reports needs the "sso" feature',
    async run(demo) {
      const server = demo.server!
      const ada = demo.users[0]
      const anonymous = await server.request('GET', '/reports')
      expectStatus(anonymous, 401, 'GET /reports without a token')
      const noPlan = await server.request('GET', '/reports', { token: ada.token })
      expectStatus(noPlan, 402, `GET /reports as ${ada.label} (no subscription)`)
      if (!noPlan.contentType.startsWith('application/problem+json') || noPlan.json?.code !== 'E_BILLING_PAYMENT_REQUIRED') {
        throw new DemoError('the 402 answer is not the E_BILLING_PAYMENT_REQUIRED problem document', `${noPlan.contentType}\n${noPlan.text}`)
      }

      table(
        ['Request', '>Status', 'Code', 'Detail'],
        [
          ['GET /reports, no token', String(anonymous.status), anonymous.json?.errors?.[0]?.code ?? anonymous.json?.code ?? '–', anonymous.json?.errors?.[0]?.message ?? ''],
          [`GET /reports as ${ada.label}, no subscription`, String(noPlan.status), noPlan.json.code, noPlan.json.detail],
        ]
      )
      say('')
      say(`The 402 answer is ${bold(noPlan.contentType.split(';')[0])}:`)
      say(dim(JSON.stringify(noPlan.json)))
    },
  },

  {
    title: 'The catalog pushed to Stripe: node ace billing:sync',
    async run(demo) {
      say(dim('… node ace billing:sync --dry-run'))
      const dry = await ace(demo, ['billing:sync', '--dry-run'])
      expectCommand(dry, 0)
      echo(dry)
      say('')
      say(dim('… node ace billing:sync'))
      const applied = await ace(demo, ['billing:sync'])
      expectCommand(applied, 0)
      echo(applied, (line) => !line.includes('~'))
      say('')
      say(dim('… node ace billing:sync (again)'))
      const again = await ace(demo, ['billing:sync'])
      expectCommand(again, 0)
      if (!again.output.includes('nothing to do')) throw new DemoError('a second billing:sync still found changes', again.output)
      echo(again)
    },
  },

  {
    title: 'Checkout, a subscription, a swap with its proration preview, a cancellation with grace',
    async run(demo) {
      const server = demo.server!
      const ada = demo.users[0]
      const checkout = await server.request('POST', '/billing/checkout', { token: ada.token, body: { plan: 'pro', interval: 'month' } })
      expectStatus(checkout, 200, 'POST /billing/checkout')
      say(`Checkout Session for Pro (monthly): ${bold(checkout.json.url)}`)
      say(dim('  subscription mode, flat price + metered API calls, 14-day trial, customer linked by a signed proof in the session metadata'))
      say('')

      const subscribed = await server.request('POST', '/billing/subscription', {
        token: ada.token,
        body: { plan: 'pro', paymentMethod: 'pm_card_visa', trialDays: 0 },
      })
      expectStatus(subscribed, 200, 'POST /billing/subscription')
      const reports = await server.request('GET', '/reports', { token: ada.token })
      expectStatus(reports, 200, 'GET /reports with Pro')
      table(
        ['Step', 'Plan', 'Status', 'Active', 'Grace', 'Ends'],
        [['subscribe to Pro with a test Visa', subscribed.json.subscription.plan, subscribed.json.subscription.status, green('yes'), 'no', '–']]
      )
      say(`GET /reports is now ${green(String(reports.status))}: Pro grants "sso".`)
      say('')

      demo.stripe.fake?.advance(10 * 86400)
      const preview = await server.request('GET', '/billing/preview?swapTo=team', { token: ada.token })
      expectStatus(preview, 200, 'GET /billing/preview?swapTo=team')
      say(`Preview of the next invoice if Ada moves to Team ${dim('(10 days into the period, invoices.create_preview)')}:`)
      table(
        ['Line', '>Amount', 'Proration'],
        [
          ...preview.json.lines.map((line: any) => [line.description ?? '–', money(line.amount, preview.json.currency), line.proration ? 'yes' : '']),
          [bold('Total'), bold(money(preview.json.total, preview.json.currency)), ''],
        ]
      )
      say('')

      const swapped = await server.request('POST', '/billing/swap', { token: ada.token, body: { plan: 'team' } })
      expectStatus(swapped, 200, 'POST /billing/swap')
      const canceled = await server.request('POST', '/billing/cancel', { token: ada.token })
      expectStatus(canceled, 200, 'POST /billing/cancel')
      if (!canceled.json.onGracePeriod) throw new DemoError('a canceled subscription should be on its grace period', canceled.text)
      const stillIn = await server.request('GET', '/reports', { token: ada.token })
      expectStatus(stillIn, 200, 'GET /reports during the grace period')
      table(
        ['Step', 'Plan', 'Status', 'Active', 'Grace', 'Ends'],
        [
          ['swap to Team (prorated)', swapped.json.plan, swapped.json.status, green('yes'), 'no', '–'],
          ['cancel (at period end)', canceled.json.plan, canceled.json.status, green('yes'), green('yes'), String(canceled.json.endsAt).slice(0, 10)],
        ]
      )
      say(`GET /reports during the grace period: ${green(String(stillIn.status))}; features last until the period ends.`)
      say('')

      const invoices = await server.request('GET', '/billing/invoices', { token: ada.token })
      expectStatus(invoices, 200, 'GET /billing/invoices')
      table(
        ['Invoice', 'Status', '>Subtotal', '>Tax', '>Total'],
        invoices.json.map((invoice: any) => [
          invoice.number ?? '–',
          invoice.status,
          money(invoice.subtotal, invoice.currency),
          money(invoice.tax, invoice.currency),
          money(invoice.total, invoice.currency),
        ])
      )
    },
  },

  {
    title: 'Webhooks: a checkout paid on Stripe reaches the app, exactly once',
    async run(demo) {
      const fake = demo.stripe.fake
      if (!fake) {
        say(dim('Skipped: needs the loopback Stripe fake (STRIPE_SECRET_KEY is set).'))
        return
      }
      const server = demo.server!
      const grace = demo.users[1]
      fake.addWebhookEndpoint(`${server.url}/billing/webhooks/stripe`, demo.stripe.env.STRIPE_WEBHOOK_SECRET)
      const checkout = await server.request('POST', '/billing/checkout', { token: grace.token, body: { plan: 'pro', interval: 'month' } })
      expectStatus(checkout, 200, 'POST /billing/checkout as grace')
      say(`Grace opens Checkout (${dim(checkout.json.id)}) and pays; Stripe sends signed webhooks to POST /billing/webhooks/stripe.`)
      fake.completeCheckout(checkout.json.id)
      await fake.flushWebhooks()

      const deliveries = fake.webhookDeliveries as Array<{ eventId: string; eventType: string; status: number | null }>
      table(
        ['Event', 'Type', '>HTTP'],
        deliveries.slice(-12).map((delivery) => [delivery.eventId, delivery.eventType, String(delivery.status)])
      )
      const billingState = await server.request('GET', '/me/billing', { token: grace.token })
      expectStatus(billingState, 200, 'GET /me/billing as grace')
      if (!billingState.json.entitlements.live) throw new DemoError('the checkout webhook did not give Grace a live subscription', billingState.text)
      const reports = await server.request('GET', '/reports', { token: grace.token })
      expectStatus(reports, 200, 'GET /reports as grace after checkout')
      say('')
      say(`Grace's subscription arrived by webhook only: GET /reports answers ${green(String(reports.status))}.`)

      const first = deliveries.find((delivery) => delivery.eventType === 'checkout.session.completed')!
      const again = await fake.deliver(`${server.url}/billing/webhooks/stripe`, first.eventId, { secret: demo.stripe.env.STRIPE_WEBHOOK_SECRET })
      say(`Redelivering ${first.eventId}: HTTP ${again.status} ${dim(again.body)}`)
      const forged = await fake.deliver(`${server.url}/billing/webhooks/stripe`, first.eventId, { secret: 'whsec_not_ours' })
      say(`The same event signed with another secret: HTTP ${forged.status} ${dim(JSON.parse(forged.body).code)}`)
      say('')
      say(dim('… node ace billing:webhooks:status'))
      const status = await ace(demo, ['billing:webhooks:status'])
      expectCommand(status, 0)
      echo(status)
    },
  },

  {
    title: 'The audit trail (GET /admin/audit) and its hash chain',
    async run(demo) {
      const server = demo.server!
      const answer = await server.request('GET', '/admin/audit?limit=20', { token: demo.users[0].token })
      expectStatus(answer, 200, 'GET /admin/audit')
      const rows = [...answer.json.rows].reverse()
      if (!rows.length) throw new DemoError('the audit trail is empty after creating customers')
      const byUser = new Map(demo.users.map((user) => [String(user.id), user.label]))

      table(
        ['>#', 'When (UTC)', 'Actor', 'Action', 'Subject', 'prev_hash', 'hash'],
        rows.map((row: any, index: number) => [
          String(row.id),
          String(row.occurredAt).replace('T', ' ').slice(0, 19),
          `${row.actorType}:${row.actorId ?? '–'}${row.actorType === 'user' && byUser.has(row.actorId) ? dim(` (${byUser.get(row.actorId)})`) : ''}`,
          row.action,
          row.subjectType ? `${row.subjectType}:${row.subjectId}` : '–',
          (index > 0 && rows[index - 1].hash === row.prevHash ? green('↳ ') : '  ') + shortHash(row.prevHash),
          shortHash(row.hash),
        ])
      )
      say('')
      say(dim('Each hash is SHA-256 over the previous hash and the row content hash; every row also carries an HMAC chain keyed from the app key (never in the database). ↳ marks a prev_hash equal to the row above.'))
      for (const row of rows) {
        if (row.action === 'customer.created' && row.actorType !== 'user') {
          throw new DemoError(`audit row #${row.id} was recorded as ${row.actorType}, not as the signed-in user`)
        }
      }

      say('')
      say(dim('… node ace billing:audit:verify'))
      const verify = await ace(demo, ['billing:audit:verify'])
      expectCommand(verify, 0)
      echo(verify)

      /**
       * What the check catches: an edited row (done with SQL behind the package's back, then undone)
       */
      const { default: Database } = await import('better-sqlite3')
      const db = new Database(join(demo.host!.dir, 'tmp/db.sqlite3'))
      const target = rows[0]
      say('')
      say(`Simulated tampering: ${bold(`UPDATE billing_audit_logs SET actor_id = '999' WHERE id = ${target.id}`)}`)
      try {
        db.prepare('update billing_audit_logs set actor_id = ? where id = ?').run('999', target.id)
      } catch (error: any) {
        say(`  ${green('refused by the database:')} ${error.message}`)
      }
      say(`As the tables' owner: ${bold('DROP TRIGGER billing_audit_append_only_update')}, then the same UPDATE`)
      db.exec('drop trigger billing_audit_append_only_update')
      try {
        db.prepare('update billing_audit_logs set actor_id = ? where id = ?').run('999', target.id)
        const tampered = await ace(demo, ['billing:audit:verify'])
        expectCommand(tampered, 1)
        echo(tampered)
      } finally {
        db.prepare('update billing_audit_logs set actor_id = ? where id = ?').run(target.actorId, target.id)
        db.close()
      }
      const restored = await ace(demo, ['billing:audit:verify'])
      expectCommand(restored, 0)
      say(`Row restored: ${restored.output.trim().split('\n').pop()}`)
    },
  },
]

function describeUsagePrice(price: any): string {
  const currency = price.currency
  switch (price.model) {
    case 'per_unit':
      return `${money(price.unitAmount, currency)} per unit`
    case 'package':
      return `${money(price.amount, currency)} per ${quantity(price.packageSize)} units (rounded ${price.round ?? 'up'})`
    case 'graduated':
    case 'volume': {
      let from = 0
      const tiers = price.tiers.map((tier: any) => {
        const range = tier.upTo === 'inf' ? `${quantity(from)}+` : `${quantity(from)}–${quantity(tier.upTo)}`
        if (tier.upTo !== 'inf') from = Number(tier.upTo)
        const parts = [
          tier.unitAmount !== undefined ? `${money(tier.unitAmount, currency)} each` : null,
          tier.flatAmount ? `${money(tier.flatAmount, currency)} flat` : null,
        ].filter(Boolean)
        return `${range}: ${parts.join(' + ') || 'free'}`
      })
      return tiers.join('; ')
    }
    default:
      return dim('(unknown model)')
  }
}

function describeFeatureValue(value: unknown): string {
  if (value === undefined || value === false) return dim('–')
  if (value === true) return green('✓')
  if (value === 'unlimited') return 'unlimited'
  return quantity(value as number)
}

/* -------------------------------------------------------------------------------------------------
 * Stripe: your test account, or the loopback fake
 * -----------------------------------------------------------------------------------------------*/

async function setUpStripe(): Promise<StripeSetup> {
  const secretKey = process.env.STRIPE_SECRET_KEY
  if (secretKey) {
    if (/^(sk|rk)_live_/.test(secretKey)) {
      throw new DemoError('STRIPE_SECRET_KEY is a live-mode key: the demo only runs against test mode (sk_test_...)')
    }
    return {
      mode: 'account',
      env: { STRIPE_SECRET_KEY: secretKey, STRIPE_WEBHOOK_SECRET: process.env.STRIPE_WEBHOOK_SECRET },
      close: async () => {},
      description: 'your Stripe test account (STRIPE_SECRET_KEY is set)',
    }
  }

  /**
   * The package sources use decorators: load them through @poppinss/ts-exec
   */
  await import('@poppinss/ts-exec')
  const { StripeFake } = await import(new URL('../src/testing/main.ts', import.meta.url).href)
  const fake = await StripeFake.start()
  const { host, port, protocol } = fake.clientOptions as { host: string; port: number; protocol: 'http' | 'https' }
  return {
    mode: 'fake',
    env: {
      STRIPE_SECRET_KEY: `sk_test_demo_${randomBytes(8).toString('hex')}`,
      STRIPE_WEBHOOK_SECRET: `whsec_demo_${randomBytes(16).toString('hex')}`,
      STRIPE_API_HOST: host,
      STRIPE_API_PORT: String(port),
      STRIPE_API_PROTOCOL: protocol,
    },
    close: () => fake.close(),
    fake,
    description: `the loopback Stripe fake at ${protocol}://${host}:${port} (STRIPE_SECRET_KEY unset)`,
  }
}

/* -------------------------------------------------------------------------------------------------
 * Main
 * -----------------------------------------------------------------------------------------------*/

const started = Date.now()
const demo: Demo = {
  stripe: { mode: 'none', env: {}, close: async () => {}, description: '' },
  users: [],
}

let cleaning: Promise<void> | undefined
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await demo.server?.stop().catch((error) => console.error(red(`could not stop the app: ${error.message}`)))
    await demo.stripe.close().catch((error) => console.error(red(`could not stop the Stripe fake: ${error.message}`)))
  })()
  return cleaning
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(red(`\n${signal}: stopping`))
    void cleanUp().finally(() => process.exit(130))
  })
}

console.log(bold('adonis-billing demo'))
let current = 'setting up Stripe'
try {
  demo.stripe = await setUpStripe()
  for (const [index, step] of STEPS.entries()) {
    current = step.title
    section(`${index + 1}. ${step.title}`)
    await step.run(demo)
  }
  await cleanUp()
  section('Done')
  say(`${green('✓')} ${STEPS.length} steps in ${seconds(Date.now() - started)}. The app stays in ${relative(REPO_ROOT, DEMO_DIR)} (server stopped).`)
} catch (error: any) {
  console.error('')
  console.error(red(bold(`✗ The demo failed during "${current}"`)))
  console.error(red(`  ${error?.message ?? error}`))
  if (error?.details) console.error(dim(error.details.replace(/^/gm, '    ')))
  else if (!(error instanceof DemoError) && !String(error?.message).includes('\n') && error?.stack) {
    console.error(dim(String(error.stack).split('\n').slice(1, 6).join('\n')))
  }
  const serverOutput = demo.server?.output()
  if (serverOutput) {
    console.error(dim('  Last lines the app printed:'))
    console.error(dim(tail(serverOutput, 15).replace(/^/gm, '    ')))
  }
  await cleanUp()
  process.exitCode = 1
}

/**
 * Everything is stopped; do not let a stray keep-alive socket hold the exit
 */
setTimeout(() => process.exit(), 2_000).unref()
