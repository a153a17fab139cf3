/**
 * `npm run bench:entitlements`: server CPU per request of entitlement gating on PostgreSQL, measured
 * with process.cpuUsage() in the server process while a separate load process drives it:
 * - warm: a route gated by `entitled({ feature: 'sso' })` with a warm cache, over the same route ungated;
 * - cold: the gated route with the entitlement cache cleared before each request, over a route doing
 *   one primary-key select.
 * Every route authenticates the same way (one user lookup). The last two lines are
 * `gating warm ratio: X.XX` and `gating cold ratio: X.XX` (ungated or select CPU / gated CPU;
 * goal ≥ 0.90 each). Environment: BENCH_REQUESTS (default 4000), BENCH_CONCURRENCY (default 8),
 * BENCH_ROUNDS (default 5; the median round decides, since syscall costs vary from run to run).
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { withPostgres } from './harness.ts'

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const run = promisify(execFile)

await withPostgres(async () => {
  const { setupApp } = await import('../tests/helpers.ts')
  const { serve, headerAuth } = await import('../tests/http.ts')
  const { User } = await import('../tests/fixtures/user.ts')
  const { default: Subscription } = await import('../src/models/subscription.ts')

  const world = await setupApp('pg')
  const user = await User.create({ email: 'bench@example.com', name: 'Bench' })
  const customer = await world.billing.for(user).customer()
  await Subscription.create({ customerId: customer.id, name: 'default', plan: 'pro', status: 'active', cancelAtPeriodEnd: false })

  const clearCache = async (_: unknown, next: () => Promise<void>) => {
    world.billing.entitlementCache.clear()
    return next()
  }
  const { url } = await serve(world.app, (router: any) => {
    const middleware = router.named({ entitled: () => import('../src/middleware/entitled_middleware.ts') })
    router.get('/ungated', async () => ({ ok: true })).use([headerAuth])
    router.get('/gated', async () => ({ ok: true })).use([headerAuth, middleware.entitled({ feature: 'sso' })])
    router.get('/gated-cold', async () => ({ ok: true })).use([headerAuth, clearCache, middleware.entitled({ feature: 'sso' })])
    router.get('/select', async () => ({ ok: !!(await world.db.from('billing_customers').where('id', customer.id).first()) })).use([headerAuth])
  })

  const measure = async (path: string) => {
    const before = process.cpuUsage()
    const { stdout } = await run(process.execPath, [
      new URL('./load_client.ts', import.meta.url).pathname,
      JSON.stringify({ url: `${url}${path}`, method: 'GET', headers: { 'x-test-user': String(user.id) }, count: REQUESTS, concurrency: CONCURRENCY }),
    ], { maxBuffer: 64 * 1024 * 1024 })
    const cpu = process.cpuUsage(before)
    const result = JSON.parse(stdout) as { latencies: number[]; statuses: Record<string, number>; elapsedMs: number }
    const perRequestUs = (cpu.user + cpu.system) / result.latencies.length
    const sorted = [...result.latencies].sort((a, b) => a - b)
    console.log(
      `${path.padEnd(12)} ${String(result.latencies.length).padStart(6)} req  ${((result.latencies.length / result.elapsedMs) * 1000).toFixed(0).padStart(6)} req/s  ` +
        `server CPU ${perRequestUs.toFixed(0).padStart(5)} µs/req  p50 ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} ms  statuses ${JSON.stringify(result.statuses)}`
    )
    return perRequestUs
  }

  /**
   * Warm-up, then alternate the pairs ROUNDS times and keep the median ratio of each pair
   */
  for (const path of ['/ungated', '/gated', '/gated-cold', '/select']) await measure(path)
  const warm: number[] = []
  const cold: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const ungated = await measure('/ungated')
    const gated = await measure('/gated')
    warm.push(ungated / gated)
    const select = await measure('/select')
    const gatedCold = await measure('/gated-cold')
    cold.push(select / gatedCold)
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
  await world.app.terminate()
  console.log(`${REQUESTS} requests per run, concurrency ${CONCURRENCY}, PostgreSQL; warm ratios ${warm.map((r) => r.toFixed(2)).join(', ')}; cold ratios ${cold.map((r) => r.toFixed(2)).join(', ')}`)
  console.log(`gating warm ratio: ${median(warm).toFixed(2)}`)
  console.log(`gating cold ratio: ${median(cold).toFixed(2)}`)
})
