import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { DIALECTS, setupApp } from './helpers.ts'
import { headerAuth, serve } from './http.ts'
import { User } from './fixtures/user.ts'
import AuditLog from '../src/models/audit_log.ts'
import { AuditTrail, GENESIS_HASH } from '../src/audit/audit_trail.ts'
import { documentedContentHash, documentedContentMac, documentedLinkHash, documentedMac, dropAuditGuards } from './audit_helpers.ts'
import { actors } from '../index.ts'

for (const dialect of DIALECTS) {
  test.group(`audit trail [${dialect}]`, () => {
    test('rows are hash-chained and verify', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const first = await billing.audit.record({
        action: 'settings.changed',
        actor: actors.user(7),
        subject: { type: 'team', id: 3 },
        before: { tax: { automatic: false } },
        after: { tax: { automatic: true } },
        metadata: { reason: 'EU launch' },
      })
      const second = await billing.audit.record({ action: 'grant.created', actor: actors.webhook('evt_123'), customerId: 42 })
      const third = await billing.audit.record({ action: 'sync.ran' })

      assert.equal(first.prevHash, GENESIS_HASH)
      assert.equal(second.prevHash, first.hash)
      assert.equal(third.prevHash, second.hash)
      assert.match(first.hash, /^[0-9a-f]{64}$/)
      assert.equal(second.eventId, 'evt_123')
      assert.equal(second.actorType, 'webhook')
      assert.equal(third.actorType, 'system')

      const stored = await AuditLog.findOrFail(first.id)
      assert.deepEqual(stored.after, { tax: { automatic: true } })
      assert.equal(stored.occurredAt.toMillis(), first.occurredAt.toMillis())
      assert.equal(stored.seq, 1)
      assert.equal(stored.keyId, 'app')
      await billing.audit.seal()
      let previousMac = GENESIS_HASH
      for (const row of await AuditLog.query().orderBy('seq')) {
        assert.equal(documentedContentHash(row), row.contentHash)
        assert.equal(documentedLinkHash(row), row.hash)
        assert.equal(documentedContentMac(row), row.contentMac, `row ${row.seq}: the documented content MAC`)
        assert.equal(documentedMac(row, previousMac), row.mac, `row ${row.seq}: the chain is the documented HMAC`)
        previousMac = row.mac!
      }
      assert.deepEqual(await billing.audit.verify(), { ok: true, checked: 3 })
    })

    test('verify detects an edited row', async ({ assert }) => {
      const { billing, db } = await setupApp(dialect)
      for (let i = 0; i < 5; i++) await billing.audit.record({ action: 'x', metadata: { i } })
      const target = (await AuditLog.query().orderBy('id').offset(2).firstOrFail()).id
      await dropAuditGuards(db, dialect)
      await db.from('billing_audit_logs').where('id', target).update({ metadata: JSON.stringify({ i: 99 }) })
      assert.deepEqual(await billing.audit.verify(), { ok: false, checked: 2, brokenAt: target, reason: 'hash_mismatch' })
    })

    test('verify detects a removed row and an edited timestamp', async ({ assert }) => {
      const { billing, db } = await setupApp(dialect)
      const rows = []
      for (let i = 0; i < 4; i++) rows.push(await billing.audit.record({ action: 'x', metadata: { i } }))
      await dropAuditGuards(db, dialect)
      await db.from('billing_audit_logs').where('id', rows[1].id).delete()
      assert.deepEqual(await billing.audit.verify(), { ok: false, checked: 1, brokenAt: rows[2].id, reason: 'chain_break' })

      const other = await setupApp(dialect)
      const row = await other.billing.audit.record({ action: 'y', occurredAt: DateTime.fromISO('2026-01-01T00:00:00Z') })
      await dropAuditGuards(other.db, dialect)
      await other.db.from('billing_audit_logs').where('id', row.id).update({ occurred_at: '2026-01-02T00:00:00.000Z' })
      assert.equal((await other.billing.audit.verify()).reason, 'hash_mismatch')
    })

    test('verify detects removed newest rows through the chain head', async ({ assert }) => {
      const { billing, db } = await setupApp(dialect)
      const rows = []
      for (let i = 0; i < 3; i++) rows.push(await billing.audit.record({ action: 'x', metadata: { i } }))
      assert.deepEqual(await db.from('billing_audit_head').select('hash', 'rows').first().then((head) => ({ hash: head.hash, rows: Number(head.rows) })), {
        hash: rows[2].hash,
        rows: 3,
      })
      await dropAuditGuards(db, dialect)
      await db.from('billing_audit_logs').where('id', rows[2].id).delete()
      assert.deepEqual(await billing.audit.verify(), { ok: false, checked: 2, reason: 'head_mismatch' })
    })

    test('a row recorded in a rolled-back transaction leaves no trace', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      await billing.audit.record({ action: 'kept' })
      await assert.rejects(() =>
        billing.db().transaction(async (trx) => {
          await billing.audit.record({ action: 'lost' }, { client: trx })
          throw new Error('boom')
        })
      )
      await billing.audit.record({ action: 'after' })
      const actions = (await AuditLog.query().orderBy('id')).map((row) => row.action)
      assert.deepEqual(actions, ['kept', 'after'])
      assert.isTrue((await billing.audit.verify()).ok)
    })

    test('a transaction in progress does not hold the chain head; rows join it in commit order', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      if (dialect === 'sqlite') {
        /**
         * One writer: the row is linked at once
         */
        const row = await billing.db().transaction((trx) => billing.audit.record({ action: 'inline' }, { client: trx }))
        assert.equal(row.seq, 1)
        assert.equal(row.prevHash, GENESIS_HASH)
        return
      }
      let releaseSlow!: () => void
      const slowMayCommit = new Promise<void>((resolve) => (releaseSlow = resolve))
      let slowRow: AuditLog | undefined
      const slow = billing.db().transaction(async (trx) => {
        slowRow = await billing.audit.record({ action: 'slow' }, { client: trx })
        await slowMayCommit
      })
      while (!slowRow) await new Promise((resolve) => setTimeout(resolve, 5))
      assert.isNull(slowRow.hash)
      assert.isNull(slowRow.seq)
      /**
       * Another writer records and commits while the slow transaction is still open
       */
      const fast = await billing.audit.record({ action: 'fast' })
      assert.equal(fast.seq, 1)
      assert.equal(fast.prevHash, GENESIS_HASH)
      releaseSlow()
      await slow
      const rows = await AuditLog.query().orderBy('seq')
      assert.deepEqual(
        rows.map((row) => [row.action, row.seq]),
        [
          ['fast', 1],
          ['slow', 2],
        ]
      )
      assert.isAbove(rows[1].id, 0)
      assert.isBelow(rows[1].id, rows[0].id)
      assert.equal(rows[1].prevHash, fast.hash)
      assert.deepEqual(await billing.audit.verify(), { ok: true, checked: 2 })
    })

    test('a row written around the package is reported, even with a correct content hash (#10.14)', async ({ assert }) => {
      const { billing, db } = await setupApp(dialect)
      await billing.audit.record({ action: 'kept' })
      await billing.audit.seal()
      const kept = await AuditLog.query().firstOrFail()
      /**
       * A forger who computes the content hash right: only the key makes the content MAC
       */
      const occurredAt = DateTime.utc().startOf('second')
      const forged = { occurredAt, actorType: 'system', actorId: null, action: 'sneaked', subjectType: null, subjectId: null, customerId: null, before: null, after: null, metadata: null, requestId: null, eventId: null }
      const { contentHash } = await import('../src/audit/audit_trail.ts')
      const [inserted] = await db
        .table('billing_audit_logs')
        .insert({ occurred_at: occurredAt.toISO(), actor_type: 'system', action: 'sneaked', content_hash: contentHash(forged as any), key_id: kept.keyId, content_mac: 'f'.repeat(64) })
        .returning('id')
      const id = Number(typeof inserted === 'object' ? inserted.id : inserted)
      if (dialect === 'sqlite') {
        assert.deepEqual(await billing.audit.verify(), { ok: false, checked: 1, brokenAt: id, reason: 'unsealed' })
      } else {
        /**
         * Linked by the trigger at commit, but never MACed: the app refuses to seal it
         */
        assert.equal((await AuditLog.findOrFail(id)).seq, 2)
        assert.equal(await billing.audit.seal(), 0)
        assert.deepEqual(await billing.audit.verify(), { ok: false, checked: 1, brokenAt: id, reason: 'hash_mismatch' })
      }
    })

    test('a batched transaction writes its rows at flush, in chunks, in the order recorded', async ({ assert }) => {
      const { billing, db } = await setupApp(dialect)
      const previous = AuditTrail.BATCH_ROWS
      AuditTrail.BATCH_ROWS = 3
      try {
        await db.table('teams').insert({ name: 'before' })
        const rows = await billing.db().transaction(async (trx) => {
          billing.audit.batch(trx)
          const recorded = []
          for (let i = 0; i < 7; i++) recorded.push(await billing.audit.record({ action: `batched.${i}` }, { client: trx }))
          if (dialect === 'pg') assert.isNull(recorded[0].id)
          await billing.audit.flushBatch(trx, { sql: 'update teams set name = ? where name = ?', bindings: ['after', 'before'] })
          return recorded
        })
        assert.deepEqual(
          rows.map((row) => typeof row.id),
          Array(7).fill('number')
        )
        const stored = await AuditLog.query().orderBy('seq')
        assert.deepEqual(
          stored.map((row) => [row.id, row.action]),
          rows.map((row) => [row.id, row.action])
        )
        assert.equal((await db.from('teams').select('name').first()).name, 'after')
        assert.deepEqual(await billing.audit.verify(), { ok: true, checked: 7 })
      } finally {
        AuditTrail.BATCH_ROWS = previous
      }
    })

    test('concurrent writers never fork the chain', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const writers = 40
      await Promise.all(
        Array.from({ length: writers }, (_, i) =>
          billing.db().transaction(async (trx) => {
            await billing.audit.record({ action: 'parallel', metadata: { i } }, { client: trx })
            /**
             * Keep the transaction open a little so writers overlap.
             */
            await new Promise((resolve) => setTimeout(resolve, 2))
          })
        )
      )
      const rows = await AuditLog.query().orderBy('id')
      assert.lengthOf(rows, writers)
      assert.lengthOf(new Set(rows.map((row) => row.prevHash)), writers)
      assert.sameMembers(
        rows.map((row) => row.seq),
        Array.from({ length: writers }, (_, i) => i + 1)
      )
      assert.deepEqual(await billing.audit.verify({ pageSize: 7 }), { ok: true, checked: writers })
    })

    test('the actor is the auth user of the current HTTP request', async ({ assert }) => {
      const { app, billing } = await setupApp(dialect)
      const user = await User.create({ email: 'grace@example.com', name: 'Grace' })
      const { url } = await serve(app, (router) => {
        router
          .post('/customer', async ({ auth }: any) => {
            const customer = await billing.for(auth.user).customer()
            return { id: customer.id }
          })
          .use(headerAuth)
        router.post('/anonymous', async () => (await billing.audit.record({ action: 'ping' })).actorType)
      })
      const response = await fetch(`${url}/customer`, {
        method: 'POST',
        headers: { 'x-test-user': String(user.id), 'x-request-id': 'req-abc' },
      })
      assert.equal(response.status, 200, await response.clone().text())
      const row = await AuditLog.query().where('action', 'customer.created').firstOrFail()
      assert.equal(row.actorType, 'user')
      assert.equal(row.actorId, String(user.id))
      assert.equal(row.requestId, 'req-abc')

      assert.equal(await (await fetch(`${url}/anonymous`, { method: 'POST' })).text(), 'anonymous')
    })

    test('inside ace commands the actor is the OS user; BILLING_CLI_USER is kept as a claim, not the identity (#10.15)', async ({ assert }) => {
      const { billing } = await setupApp(dialect, { environment: 'console' })
      const { userInfo } = await import('node:os')
      process.env.BILLING_CLI_USER = 'ops-alice'
      try {
        const row = await billing.audit.record({ action: 'cli.action', metadata: { note: 'x' } })
        assert.equal(row.actorType, 'cli')
        assert.equal(row.actorId, userInfo().username)
        assert.deepEqual(row.metadata, { note: 'x', claimedBy: 'ops-alice' })
      } finally {
        delete process.env.BILLING_CLI_USER
      }
    })
  })
}
