import { test } from '@japa/runner'
import { DIALECTS, setupApp } from './helpers.ts'
import BillingAuditVerify from '../commands/billing_audit_verify.ts'
import { dropAuditGuards } from './audit_helpers.ts'

for (const dialect of DIALECTS) {
  test.group(`billing:audit:verify [${dialect}]`, () => {
    test('exits 0 on an intact chain and 1 naming the row when it is broken', async ({ assert }) => {
      const { app, billing, db } = await setupApp(dialect, { environment: 'console' })
      const rows = []
      for (let i = 0; i < 3; i++) rows.push(await billing.audit.record({ action: 'x', metadata: { i } }))
      const ace = await app.container.make('ace')
      ace.ui.switchMode('raw')

      const ok = await ace.create(BillingAuditVerify, [])
      await ok.exec()
      assert.equal(ok.exitCode, 0)
      ok.assertLog('[ green(success) ] audit chain intact: 3 rows verified')

      await dropAuditGuards(db, dialect)
      await db.from('billing_audit_logs').where('id', rows[1].id).update({ action: 'forged' })
      const broken = await ace.create(BillingAuditVerify, ['--json'])
      await broken.exec()
      assert.equal(broken.exitCode, 1)
      assert.deepEqual(JSON.parse(broken.ui.logger.getLogs().at(-1)!.message), {
        ok: false,
        checked: 1,
        brokenAt: rows[1].id,
        reason: 'hash_mismatch',
      })
    })
  })
}
