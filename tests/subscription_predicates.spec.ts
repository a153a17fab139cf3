import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import Subscription, { type SubscriptionStatus } from '../src/models/subscription.ts'

const NOW = DateTime.fromISO('2026-06-15T12:00:00Z', { zone: 'utc' })
const FUTURE = NOW.plus({ days: 10 })
const PAST = NOW.minus({ days: 1 })

function subscription(status: SubscriptionStatus, extra: Partial<Subscription> = {}) {
  const row = new Subscription()
  row.merge({ status, cancelAtPeriodEnd: false, trialEndsAt: null, endsAt: null, cancelAt: null, pausedAt: null, ...extra })
  return row
}

type Row = [string, SubscriptionStatus, Partial<Subscription>, { active: boolean; onTrial: boolean; onGracePeriod: boolean; pastDue: boolean; hasIncompletePayment: boolean; paused: boolean; ended: boolean }]

/**
 * Every Stripe status, plus the trial, grace-period and pause variants. Unlike a peer package,
 * `incomplete` and `past_due` are not active, and a running trial is a trial.
 */
const TABLE: Row[] = [
  ['active', 'active', {}, { active: true, onTrial: false, onGracePeriod: false, pastDue: false, hasIncompletePayment: false, paused: false, ended: false }],
  ['trialing', 'trialing', { trialEndsAt: FUTURE }, { active: true, onTrial: true, onGracePeriod: false, pastDue: false, hasIncompletePayment: false, paused: false, ended: false }],
  ['trialing, trial date passed (webhook pending)', 'trialing', { trialEndsAt: PAST }, { active: true, onTrial: false, onGracePeriod: false, pastDue: false, hasIncompletePayment: false, paused: false, ended: false }],
  ['incomplete', 'incomplete', {}, { active: false, onTrial: false, onGracePeriod: false, pastDue: false, hasIncompletePayment: true, paused: false, ended: false }],
  ['incomplete_expired', 'incomplete_expired', {}, { active: false, onTrial: false, onGracePeriod: false, pastDue: false, hasIncompletePayment: false, paused: false, ended: true }],
  ['past_due', 'past_due', {}, { active: false, onTrial: false, onGracePeriod: false, pastDue: true, hasIncompletePayment: true, paused: false, ended: false }],
  ['unpaid', 'unpaid', {}, { active: false, onTrial: false, onGracePeriod: false, pastDue: false, hasIncompletePayment: true, paused: false, ended: false }],
  ['paused', 'paused', {}, { active: false, onTrial: false, onGracePeriod: false, pastDue: false, hasIncompletePayment: false, paused: true, ended: false }],
  ['canceled', 'canceled', { endsAt: PAST }, { active: false, onTrial: false, onGracePeriod: false, pastDue: false, hasIncompletePayment: false, paused: false, ended: true }],
  ['active, cancel at period end', 'active', { cancelAtPeriodEnd: true, endsAt: FUTURE }, { active: true, onTrial: false, onGracePeriod: true, pastDue: false, hasIncompletePayment: false, paused: false, ended: false }],
  ['trialing, cancel at period end', 'trialing', { trialEndsAt: FUTURE, cancelAtPeriodEnd: true, endsAt: FUTURE }, { active: true, onTrial: true, onGracePeriod: true, pastDue: false, hasIncompletePayment: false, paused: false, ended: false }],
  ['active, grace over (webhook pending)', 'active', { cancelAtPeriodEnd: true, endsAt: PAST }, { active: false, onTrial: false, onGracePeriod: false, pastDue: false, hasIncompletePayment: false, paused: false, ended: true }],
  ['active, collection paused', 'active', { pausedAt: PAST }, { active: true, onTrial: false, onGracePeriod: false, pastDue: false, hasIncompletePayment: false, paused: true, ended: false }],
]

test.group('subscription status predicates', () => {
  for (const [label, status, extra, expected] of TABLE) {
    test(label, ({ assert }) => {
      const row = subscription(status, extra)
      assert.deepEqual(
        {
          active: row.active(NOW),
          onTrial: row.onTrial(NOW),
          onGracePeriod: row.onGracePeriod(NOW),
          pastDue: row.pastDue(),
          hasIncompletePayment: row.hasIncompletePayment(),
          paused: row.paused(),
          ended: row.ended(NOW),
        },
        expected
      )
    })
  }
})
