/**
 * Load generator in its own process (so the server's CPU time is the server's alone): reads
 * `{ url, method, headers, count, concurrency }` as JSON from argv[2], sends the requests with a fixed
 * concurrency over keep-alive connections and prints `{ latencies, statuses, elapsedMs }` as JSON.
 */
const { url, method, headers, count, concurrency } = JSON.parse(process.argv[2])
const latencies: number[] = []
const statuses: Record<string, number> = {}
let sent = 0

async function lane() {
  while (sent < count) {
    sent++
    const started = performance.now()
    const response = await fetch(url, { method, headers })
    await response.arrayBuffer()
    latencies.push(performance.now() - started)
    statuses[response.status] = (statuses[response.status] ?? 0) + 1
  }
}

const started = performance.now()
await Promise.all(Array.from({ length: concurrency }, lane))
process.stdout.write(JSON.stringify({ latencies, statuses, elapsedMs: performance.now() - started }))
