/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { DateTime } from 'luxon'
import type { QueryClientContract } from '@adonisjs/lucid/types/database'
import { fromDbDateTime } from '../models/columns.ts'
import type { SubscriptionStatus } from '../models/subscription.ts'
import type { FeatureValue } from '../types.ts'

/**
 * The subscription fields entitlements depend on.
 */
export interface EntitlementSubscription {
  plan: string
  status: SubscriptionStatus
  endsAt: DateTime | null
  pastDueSince: DateTime | null
  updatedAt: DateTime
  currentPeriodStart: DateTime | null
  currentPeriodEnd: DateTime | null
}

/**
 * The grant fields entitlements depend on.
 */
export interface EntitlementGrantRow {
  feature: string
  value: FeatureValue
  startsAt: DateTime
  expiresAt: DateTime | null
}

/**
 * A subscription row whose timestamps are parsed only when read: a check reads `endsAt` and, for
 * past_due subscriptions, the grace fields; the period only matters for quotas.
 */
function toSubscription(row: any): EntitlementSubscription {
  const lazy = (value: unknown) => {
    let parsed: DateTime | null | undefined
    return () => (parsed === undefined ? (parsed = fromDbDateTime(value)) : parsed)
  }
  const endsAt = lazy(row.t1)
  const pastDueSince = lazy(row.t2)
  const updatedAt = lazy(row.t3)
  const start = lazy(row.t4)
  const end = lazy(row.t5)
  return {
    plan: row.a,
    status: row.b,
    get endsAt() {
      return endsAt()
    },
    get pastDueSince() {
      return pastDueSince()
    },
    get updatedAt() {
      return updatedAt()!
    },
    get currentPeriodStart() {
      return start()
    },
    get currentPeriodEnd() {
      return end()
    },
  }
}

function parseValue(text: unknown): FeatureValue {
  if (typeof text !== 'string') return text as FeatureValue
  try {
    return JSON.parse(text)
  } catch {
    return text as FeatureValue
  }
}

/**
 * The customer (`c`), its subscriptions and unrevoked grants as rows of one shape. The customer is
 * matched once, in a CTE, so the statement has one or two parameters.
 */
function entitlementRowsSql(match: string) {
  return (
    `with c as (select id, stripe_customer_id, stripe_entitlements from billing_customers where ${match}) ` +
    `select 'c' as kind, c.id as customer_id, c.stripe_customer_id as a, cast(c.stripe_entitlements as text) as b, null as t1, null as t2, null as t3, null as t4, null as t5 from c ` +
    `union all select 's', c.id, s.plan, s.status, s.ends_at, s.past_due_since, s.updated_at, s.current_period_start, s.current_period_end ` +
    `from c join billing_subscriptions s on s.customer_id = c.id ` +
    `union all select 'g', c.id, g.feature, cast(g.value as text), g.starts_at, g.expires_at, null, null, null ` +
    `from c join billing_entitlement_grants g on g.customer_id = c.id where g.revoked_at is null`
  )
}

interface Statement {
  /** Name of the PostgreSQL prepared statement */
  name: string
  /** With `?` placeholders (Lucid) */
  sql: string
  /** With `$n` placeholders (PostgreSQL) */
  text: string
}

function statement(name: string, match: string): Statement {
  const sql = entitlementRowsSql(match)
  let n = 0
  return { name, sql, text: sql.replace(/\?/g, () => `$${++n}`) }
}

const BY_ID = statement('adonis_billing_entitlement_rows_by_id', 'id = ?')
const BY_BILLABLE = statement('adonis_billing_entitlement_rows_by_billable', 'billable_type = ? and billable_id = ?')

/**
 * Runs one of the statements above. On PostgreSQL, outside a transaction, it goes straight to a
 * pooled `pg` connection as a named prepared statement: parsed and planned once per connection, then
 * only bound and executed, with none of the query builder's work on the request path (the cold-cache
 * gate). Such queries do not appear in Lucid's query debug log. Elsewhere, Lucid's raw query.
 */
async function runStatement(client: QueryClientContract, statement: Statement, bindings: unknown[]): Promise<any[]> {
  if (client.dialect.name === 'postgres' && !client.isTransaction) {
    const knexClient = (client.getReadClient() as any).client
    const connection = await knexClient.acquireConnection()
    try {
      const result = await connection.query({ name: statement.name, text: statement.text, values: bindings })
      return result.rows
    } finally {
      await knexClient.releaseConnection(connection)
    }
  }
  const result = await client.rawQuery(statement.sql, bindings as any[])
  return Array.isArray(result) ? result : (result.rows ?? [])
}

/**
 * Everything entitlements need for one customer — found by id or by billable identity — in ONE
 * round trip (`UNION ALL` of the customer, its subscriptions and its unrevoked grants), so a
 * cold-cache check costs about what one primary-key select does.
 */
export async function loadEntitlementRows(
  client: QueryClientContract,
  by: { customerId: number } | { billableType: string; billableId: string }
): Promise<{
  customerId: number
  stripeCustomerId: string | null
  stripeEntitlements: string[] | null
  subscriptions: EntitlementSubscription[]
  grants: EntitlementGrantRow[]
} | null> {
  const statement = 'customerId' in by ? BY_ID : BY_BILLABLE
  const bindings = 'customerId' in by ? [by.customerId] : [by.billableType, by.billableId]
  const rows = await runStatement(client, statement, bindings)
  const customer = rows.find((row) => row.kind === 'c')
  if (!customer) return null
  return {
    customerId: Number(customer.customer_id),
    stripeCustomerId: customer.a ?? null,
    stripeEntitlements: customer.b === null || customer.b === undefined ? null : (parseValue(customer.b) as unknown as string[]),
    subscriptions: rows.filter((row) => row.kind === 's').map(toSubscription),
    grants: rows
      .filter((row) => row.kind === 'g')
      .map((row) => ({ feature: row.a, value: parseValue(row.b), startsAt: fromDbDateTime(row.t1)!, expiresAt: fromDbDateTime(row.t2) })),
  }
}
