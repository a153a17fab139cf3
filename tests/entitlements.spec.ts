import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { DIALECTS, setupApp } from './helpers.ts'
import { testCatalog } from './fixtures/catalog.ts'
import { User } from './fixtures/user.ts'
import Subscription, { type SubscriptionStatus } from '../src/models/subscription.ts'
import EntitlementGrant from '../src/models/entitlement_grant.ts'
import AuditLog from '../src/models/audit_log.ts'
import BillingGrant from '../commands/billing_grant.ts'

type Grant = 'none' | 'sso' | 'seats+5' | 'seats expired' | 'seats future' | 'seats revoked'
type AddOn = 'none' | 'active' | 'canceled'
type StatusCase = { label: string; status: SubscriptionStatus; pastDueDays?: number; grants: boolean }

/**
 * Each subscription status under a policy, with whether it grants its plan (pastDueGraceDays: 7).
 */
function statusCases(policyGrants: boolean): StatusCase[] {
  return [
    { label: 'active', status: 'active', grants: true },
    { label: 'trialing', status: 'trialing', grants: true },
    { label: 'past_due 6 days (in grace)', status: 'past_due', pastDueDays: 6, grants: true },
    { label: 'past_due 8 days (grace over)', status: 'past_due', pastDueDays: 8, grants: false },
    { label: 'incomplete', status: 'incomplete', grants: policyGrants },
    { label: 'incomplete_expired', status: 'incomplete_expired', grants: false },
    { label: 'unpaid', status: 'unpaid', grants: policyGrants },
    { label: 'paused', status: 'paused', grants: policyGrants },
    { label: 'canceled', status: 'canceled', grants: false },
  ]
}

const GRANTS: Grant[] = ['none', 'sso', 'seats+5', 'seats expired', 'seats future', 'seats revoked']
const ADD_ONS: AddOn[] = ['none', 'active', 'canceled']

for (const dialect of DIALECTS) {
  for (const policyGrants of [false, true]) {
    test.group(`entitlement resolution, policy ${policyGrants ? "'plan'" : "'none'"} for incomplete/unpaid/paused [${dialect}]`, (group) => {
      group.tap((t) => t.timeout(120_000))

      test('every status × grant × add-on combination', async ({ assert }) => {
        const policy = policyGrants ? { pastDueGraceDays: 7, incomplete: 'plan', unpaid: 'plan', paused: 'plan' } : { pastDueGraceDays: 7 }
        const { billing } = await setupApp(dialect, { billing: testCatalog({ policy: policy as any }) })
        const now = DateTime.utc()
        let index = 0
        for (const statusCase of statusCases(policyGrants)) {
          for (const grant of GRANTS) {
            for (const addOn of ADD_ONS) {
              const user = await User.create({ email: `u${index++}@example.com`, name: null })
              const scope = billing.for(user)
              const customer = await scope.customer()
              await Subscription.create({
                customerId: customer.id,
                name: 'default',
                plan: 'pro',
                status: statusCase.status,
                cancelAtPeriodEnd: false,
                pastDueSince: statusCase.pastDueDays ? now.minus({ days: statusCase.pastDueDays }) : null,
                endsAt: statusCase.status === 'canceled' ? now.minus({ days: 1 }) : null,
              })
              if (addOn !== 'none') {
                await Subscription.create({
                  customerId: customer.id,
                  name: 'addons',
                  plan: 'extra_seats',
                  status: addOn === 'active' ? 'active' : 'canceled',
                  cancelAtPeriodEnd: false,
                })
              }
              if (grant === 'sso') await scope.grant('sso', true, { reason: 'pilot' })
              if (grant === 'seats+5') await scope.grant('seats', 5, { expiresAt: now.plus({ days: 30 }) })
              if (grant === 'seats expired') {
                await EntitlementGrant.create({ customerId: customer.id, feature: 'seats', value: 5, startsAt: now.minus({ days: 30 }), expiresAt: now.minus({ days: 1 }) })
              }
              if (grant === 'seats future') await scope.grant('seats', 5, { startsAt: now.plus({ days: 1 }) })
              if (grant === 'seats revoked') {
                await scope.grant('seats', 5)
                await scope.revoke('seats', { reason: 'mistake' })
              }

              /**
               * The expected answer, stated per dimension
               */
              const base = statusCase.grants
              const addOnLive = addOn === 'active'
              const seats = (base ? 10 : 0) + (addOnLive ? 5 : 0) + (grant === 'seats+5' ? 5 : 0)
              const sso = base || grant === 'sso'
              const label = `${statusCase.label} / grant ${grant} / add-on ${addOn}`

              const { live, features } = await scope.features()
              assert.equal(live, base || addOnLive, label)
              assert.equal(features.sso === true, sso, `${label}: sso`)
              assert.equal(features.seats ?? 0, seats, `${label}: seats`)
              assert.equal(features.api_calls ?? 0, base ? 10000 : 0, `${label}: api_calls`)
              assert.equal(await scope.check('sso'), sso ? 'granted' : base || addOnLive ? 'not_included' : 'no_plan', `${label}: check(sso)`)
              assert.equal(await scope.can('seats'), seats > 0, `${label}: can(seats)`)
            }
          }
        }
      })
    })
  }

  test.group(`grants [${dialect}]`, () => {
    test('grant and revoke are validated, audited and bump the entitlement version', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'g@example.com', name: null })
      const scope = billing.for(user)
      const before = (await scope.customer()).entitlementVersion
      const grant = await scope.grant('seats', 'unlimited', { reason: 'enterprise trial', actor: { type: 'user', id: '7' } })
      assert.equal(grant.grantedBy, 'user:7')
      assert.equal((await scope.features()).features.seats, 'unlimited')
      await assert.rejects(() => scope.grant('sso', 3 as any), /boolean feature/)
      await assert.rejects(() => scope.grant('seats', -1), /positive integer/)
      await assert.rejects(() => scope.grant('teleport', true), /Unknown feature/)
      await assert.rejects(() => scope.grant('seats', 1, { startsAt: DateTime.utc(), expiresAt: DateTime.utc().minus({ days: 1 }) }), /expiresAt/)
      assert.equal(await scope.revoke('seats', { reason: 'ended' }), 1)
      assert.equal(await scope.revoke('seats'), 0)
      assert.isUndefined((await scope.features()).features.seats)

      const customer = await scope.customer()
      await customer.refresh()
      assert.equal(customer.entitlementVersion, before + 2)
      const audit = await AuditLog.query().whereIn('action', ['entitlement.granted', 'entitlement.revoked']).orderBy('id')
      assert.deepEqual(audit.map((row) => [row.action, row.actorType, row.actorId]), [
        ['entitlement.granted', 'user', '7'],
        ['entitlement.revoked', 'system', null],
      ])
      assert.deepInclude(audit[0].after!, { feature: 'seats', value: 'unlimited', reason: 'enterprise trial' })
    })

    test('node ace billing:grant for support staff', async ({ assert }) => {
      const { app, billing } = await setupApp(dialect, { environment: 'console' })
      const user = await User.create({ email: 'support@example.com', name: null })
      await billing.for(user).customer()
      const ace = await app.container.make('ace')
      ace.ui.switchMode('raw')
      const run = async (argv: string[]) => {
        const command = await ace.create(BillingGrant, argv)
        await command.exec()
        return { code: command.exitCode, last: command.ui.logger.getLogs().at(-1)!.message as string }
      }
      const granted = await run(['user', String(user.id), 'seats', '5', '--expires', '2099-01-01', '--reason', 'promo'])
      assert.equal(granted.code, 0, granted.last)
      assert.include(granted.last, 'Granted seats=5 to user:')
      assert.equal((await billing.for(user).features()).features.seats, 5)
      const row = await AuditLog.query().where('action', 'entitlement.granted').firstOrFail()
      assert.equal(row.actorType, 'cli')

      assert.equal((await run(['user', String(user.id), 'seats', 'lots'])).code, 1)
      assert.equal((await run(['user', String(user.id), 'teleport', 'true'])).code, 1)
      assert.equal((await run(['user', '999999', 'seats', '5'])).code, 1)
      assert.equal((await run(['user', String(user.id), 'seats', '5', '--expires', 'soon'])).code, 1)
      const revoked = await run(['user', String(user.id), 'seats', '--revoke'])
      assert.equal(revoked.code, 0)
      assert.include(revoked.last, '1 grant(s) of "seats" revoked')
      assert.isUndefined((await billing.for(user).features()).features.seats)
    })
  })
}
