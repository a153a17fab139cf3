import { test } from '@japa/runner'
import { DIALECTS, setupApp } from './helpers.ts'
import { User, Team } from './fixtures/user.ts'
import Customer from '../src/models/customer.ts'
import AuditLog from '../src/models/audit_log.ts'
import { errors } from '../index.ts'

for (const dialect of DIALECTS) {
  test.group(`customers [${dialect}]`, () => {
    test('billing.for(user).customer() creates the customer row lazily, once', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'ada@example.com', name: 'Ada' })

      assert.isNull(await billing.for(user).find())
      const customer = await billing.for(user).customer()
      assert.equal(customer.billableType, 'user')
      assert.equal(customer.billableId, String(user.id))
      assert.equal(customer.email, 'ada@example.com')
      assert.equal(customer.name, 'Ada')
      assert.equal(customer.currency, 'usd')
      assert.equal(customer.balance, 0)
      assert.isTrue(customer.createdAt.isValid)
      assert.equal(customer.createdAt.zoneName, 'UTC')

      const again = await billing.for(user).customer()
      assert.equal(again.id, customer.id)
      assert.equal(await Customer.query().count('* as total').first().then((row) => Number(row!.$extras.total)), 1)

      const audit = await AuditLog.query().where('action', 'customer.created')
      assert.lengthOf(audit, 1)
      assert.equal(audit[0].customerId, customer.id)
      const [revealed] = await billing.audit.reveal(audit)
      assert.deepEqual(revealed.after, { billable_type: 'user', billable_id: String(user.id), email: 'ada@example.com' })
    })

    test('users and teams with the same id are different customers', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'a@example.com', name: null })
      const team = await Team.create({ name: 'Acme' })
      assert.equal(user.id, team.id)
      const a = await billing.for(user).customer()
      const b = await billing.for(team).customer()
      assert.notEqual(a.id, b.id)
      assert.equal(b.billableType, 'Team')
      assert.equal(b.name, 'Acme')
      assert.isNull(b.email)
    })

    test('concurrent first calls create exactly one customer and one audit row', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      const user = await User.create({ email: 'race@example.com', name: null })
      const customers = await Promise.all(Array.from({ length: 24 }, () => billing.for(user).customer()))
      assert.lengthOf(new Set(customers.map((customer) => customer.id)), 1)
      const rows = await Customer.query().where('billable_id', String(user.id))
      assert.lengthOf(rows, 1)
      assert.lengthOf(await AuditLog.query().where('action', 'customer.created'), 1)
      assert.deepEqual(await billing.audit.verify(), { ok: true, checked: 1 })
    })

    test('refuses unsaved and non-billable models', async ({ assert }) => {
      const { billing } = await setupApp(dialect)
      assert.throws(() => billing.for(new User()), errors.NotBillableException as any)
      assert.throws(() => billing.for({} as any), errors.NotBillableException as any)
    })
  })
}
