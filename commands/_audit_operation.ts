/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { BillingManager } from '../src/billing_manager.ts'

/**
 * Most event outcomes one audit row lists (the count is always complete).
 */
const MAX_LISTED = 500

/**
 * The audit row of an admin operation run from the CLI (replay, sweep): the operator is the OS user
 * (`BILLING_CLI_USER` kept as a claim), with what was asked and what happened to each event.
 */
export async function auditOperation(billing: BillingManager, action: string, request: Record<string, unknown>, outcomes: Record<string, string>) {
  const { actors } = await import('../src/audit/actor.ts')
  const ids = Object.keys(outcomes)
  const counts: Record<string, number> = {}
  for (const outcome of Object.values(outcomes)) counts[outcome] = (counts[outcome] ?? 0) + 1
  await billing.audit.record({
    action,
    actor: actors.cli(),
    subject: { type: 'webhook_events', id: ids.length === 1 ? ids[0] : null },
    after: { events: ids.length, outcomes: counts },
    metadata: { request, events: Object.fromEntries(ids.slice(0, MAX_LISTED).map((id) => [id, outcomes[id]])), ...(ids.length > MAX_LISTED ? { listed: MAX_LISTED } : {}) },
  })
}
