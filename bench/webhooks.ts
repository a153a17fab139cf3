/**
 * `npm run bench:webhooks`: webhook deliveries per second and p99 latency on PostgreSQL, half of them
 * duplicates, next to a baseline route that only reads the raw body, measured in the same process run
 * against the same server with the same bodies, headers and concurrency. Last line:
 * `webhooks p99 ratio: X.XX` (webhook p99 / baseline p99; goal ≤ 3.00).
 *
 * Environment: BENCH_EVENTS (distinct events per round, default 1000), BENCH_CONCURRENCY (default 16),
 * BENCH_ROUNDS (default 5; the median round decides, one noisy round does not), BENCH_TYPE (event type, default customer.updated; an unhandled type such as
 * product.created measures the store-and-mark skeleton alone).
 */
import { Worker } from 'node:worker_threads'
import { withPostgres } from './harness.ts'

const DISTINCT = Number(process.env.BENCH_EVENTS ?? 1000)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const SECRET = 'whsec_test_secret'

await withPostgres(async () => {
  const { setupStripeApp } = await import('../tests/helpers.ts')
  const { serve } = await import('../tests/http.ts')
  const { User } = await import('../tests/fixtures/user.ts')
  const { StripeFake } = await import('../src/testing/main.ts')

  const world = await setupStripeApp('pg')
  const { url } = await serve(world.app, async (router: any) => {
    await world.billing.registerRoutes()
    router.post('/bench/raw', async ({ request }: any) => ({ received: true, bytes: Buffer.byteLength(request.raw() ?? '') }))
  })

  /**
   * Distinct customer.updated events for 100 linked customers, built from a real event of the fake
   */
  const customers: Array<{ stripeId: string; localId: string }> = []
  for (let index = 0; index < 100; index++) {
    const user = await User.create({ email: `bench${index}@example.com`, name: `Bench ${index}` })
    const stripeId = await world.billing.for(user).stripeCustomerId()
    customers.push({ stripeId, localId: String((await world.billing.for(user).customer()).id) })
  }
  const template = world.fake.store.events('customer.created')[0] as any
  const created = Math.floor(Date.now() / 1000) - 60
  /**
   * One batch per round: DISTINCT fresh events, each delivered twice (half of the deliveries are
   * duplicates, interleaved as Stripe's retries would be), signed like Stripe signs them.
   */
  let serial = 0
  const batch = async () => {
    const bodies: string[] = []
    for (let index = 0; index < DISTINCT; index++) {
      const n = serial++
      const owner = customers[n % customers.length]
      const customer = { ...template.data.object, id: owner.stripeId, name: `Name ${n}`, metadata: { ...template.data.object.metadata, adonis_billing_customer_id: owner.localId } }
      bodies.push(JSON.stringify({ ...template, id: `evt_bench${String(n).padStart(8, '0')}`, type: process.env.BENCH_TYPE ?? 'customer.updated', created: created + n, data: { object: customer } }, null, 2))
    }
    const order = [...bodies.map((_, index) => index), ...bodies.map((_, index) => index)]
    for (let i = order.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1)
      ;[order[i], order[j]] = [order[j], order[i]]
    }
    const requests = []
    for (const index of order) {
      const body = bodies[index]
      requests.push({ body, headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': await StripeFake.signPayload(body, SECRET) } })
    }
    return requests
  }

  const run = (path: string, requests: Array<{ body: string; headers: Record<string, string> }>) =>
    new Promise<{ latencies: number[]; statuses: Record<string, number>; elapsedMs: number }>((resolve, reject) => {
      const worker = new Worker(new URL('./load_worker.ts', import.meta.url), { workerData: { url: `${url}${path}`, concurrency: CONCURRENCY, requests } })
      worker.once('message', resolve)
      worker.once('error', reject)
    })
  const summarize = (name: string, result: { latencies: number[]; statuses: Record<string, number>; elapsedMs: number }) => {
    const sorted = [...result.latencies].sort((a, b) => a - b)
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
    const perSecond = (result.latencies.length / result.elapsedMs) * 1000
    console.log(
      `${name.padEnd(10)} ${String(result.latencies.length).padStart(6)} req  ${perSecond.toFixed(0).padStart(6)} req/s  p50 ${at(0.5).toFixed(2)} ms  p99 ${at(0.99).toFixed(2)} ms  statuses ${JSON.stringify(result.statuses)}`
    )
    return { p99: at(0.99), perSecond }
  }

  /**
   * Warm both paths (JIT, pools), then alternate baseline and webhook rounds on fresh events; the
   * ratio of each round pair is taken and the median reported, so one noisy round does not decide.
   */
  const warm = await batch()
  await run('/bench/raw', warm)
  await run('/billing/webhooks/stripe', warm)
  const ratios: number[] = []
  const throughput: number[] = []
  for (let round = 1; round <= ROUNDS; round++) {
    const requests = await batch()
    const baseline = summarize(`baseline${round}`, await run('/bench/raw', requests))
    const webhooks = summarize(`webhooks${round}`, await run('/billing/webhooks/stripe', requests))
    ratios.push(webhooks.p99 / baseline.p99)
    throughput.push(webhooks.perSecond / baseline.perSecond)
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
  const processed = await world.billing.db().from('billing_webhook_events').where('status', 'processed').count('* as total')
  console.log(`${ROUNDS} rounds of ${DISTINCT} distinct events / ${DISTINCT * 2} deliveries (50% duplicates), concurrency ${CONCURRENCY}; ${processed[0].total} events processed in all`)
  console.log(`round p99 ratios: ${ratios.map((ratio) => ratio.toFixed(2)).join(', ')}`)
  console.log(`webhooks throughput ratio: ${median(throughput).toFixed(2)}`)
  await world.app.terminate()
  await world.fake.close()
  console.log(`webhooks p99 ratio: ${median(ratios).toFixed(2)}`)
})
