/**
 * `npm run bench:usage`: rows/s of `billing.usage.recordMany()` (validation, idempotent insert and
 * rollups, one transaction per batch) in batches of 100 and 1000 on PostgreSQL, next to a raw `COPY`
 * of the same rows into the same table and a loop of single-row INSERTs, in the same run. Last two
 * lines: `usage copy ratio: X.XX` (recordMany at 1000 / COPY, goal ≥ 0.40) and
 * `usage single-row factor: X.X` (recordMany at 1000 / single-row loop, goal ≥ 10).
 * Environment: BENCH_ROWS (rows per method, default 20000).
 */
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { withPostgres } from './harness.ts'

const ROWS = Number(process.env.BENCH_ROWS ?? 20000)

await withPostgres(async () => {
  const { setupApp } = await import('../tests/helpers.ts')
  const { User } = await import('../tests/fixtures/user.ts')
  const { DateTime } = await import('luxon')
  const { from: copyFrom } = await import('pg-copy-streams')

  const world = await setupApp('pg')
  const customers: number[] = []
  for (let index = 0; index < 50; index++) {
    const user = await User.create({ email: `u${index}@example.com`, name: null })
    customers.push((await world.billing.for(user).customer()).id)
  }
  const start = DateTime.utc().minus({ days: 2 }).startOf('hour')
  const rows = (tag: string) =>
    Array.from({ length: ROWS }, (_, index) => ({
      customerId: customers[index % customers.length],
      meter: 'api_calls',
      quantity: 1 + (index % 7),
      idempotencyKey: `${tag}-${index}`,
      at: start.plus({ seconds: index * 7 }),
    }))
  const truncate = () => world.db.rawQuery('truncate billing_usage_events, billing_usage_rollups')
  const pool = (world.db.connection() as any).getWriteClient().client.pool
  const rate = (count: number, ms: number) => (count / ms) * 1000

  const recordMany = async (batch: number) => {
    await truncate()
    const data = rows(`rm${batch}`)
    const started = performance.now()
    for (let index = 0; index < data.length; index += batch) await world.billing.usage.recordMany(data.slice(index, index + batch))
    return rate(data.length, performance.now() - started)
  }

  const copy = async () => {
    await truncate()
    const data = rows('copy')
    const connection = await pool.acquire().promise
    try {
      const started = performance.now()
      const now = DateTime.utc().toISO()
      const lines = data.map((row) => `${row.customerId}\tapi_calls\t${row.quantity}\t${row.at.toUTC().toISO()}\t${row.idempotencyKey}\t\\N\t${now}\n`)
      await pipeline(
        Readable.from(lines),
        connection.query(copyFrom('copy billing_usage_events (customer_id, meter, quantity, occurred_at, idempotency_key, properties, created_at) from stdin'))
      )
      return rate(data.length, performance.now() - started)
    } finally {
      pool.release(connection)
    }
  }

  const singleRow = async () => {
    await truncate()
    const data = rows('single').slice(0, Math.min(ROWS, 5000))
    const started = performance.now()
    for (const row of data) {
      await world.db.rawQuery(
        'insert into billing_usage_events (customer_id, meter, quantity, occurred_at, idempotency_key, created_at) values (?, ?, ?, ?, ?, ?)',
        [row.customerId, row.meter, String(row.quantity), row.at.toUTC().toISO(), row.idempotencyKey, DateTime.utc().toISO()]
      )
    }
    return rate(data.length, performance.now() - started)
  }

  await recordMany(1000)
  await copy()
  const results: Record<string, number[]> = { rm100: [], rm1000: [], copy: [], single: [] }
  for (let round = 0; round < 3; round++) {
    results.rm100.push(await recordMany(100))
    results.rm1000.push(await recordMany(1000))
    results.copy.push(await copy())
    results.single.push(await singleRow())
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
  for (const [name, values] of Object.entries(results)) {
    console.log(`${name.padEnd(7)} ${median(values).toFixed(0).padStart(8)} rows/s  (rounds: ${values.map((value) => value.toFixed(0)).join(', ')})`)
  }
  await world.app.terminate()
  console.log(`${ROWS} rows per method (single-row loop: ${Math.min(ROWS, 5000)}), 50 customers, PostgreSQL, median of 3 rounds`)
  console.log(`usage copy ratio: ${(median(results.rm1000) / median(results.copy)).toFixed(2)}`)
  console.log(`usage single-row factor: ${(median(results.rm1000) / median(results.single)).toFixed(1)}`)
})
