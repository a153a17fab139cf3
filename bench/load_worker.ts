/**
 * Load generator, run in a worker thread so its event loop does not share time with the server's:
 * sends the given requests with a fixed concurrency over keep-alive connections and reports each
 * request's latency. Plain Node 24 TypeScript (type stripping only).
 */
import { parentPort, workerData } from 'node:worker_threads'

interface Job {
  url: string
  concurrency: number
  requests: Array<{ body: string; headers: Record<string, string> }>
}

const { url, concurrency, requests } = workerData as Job
const latencies: number[] = new Array(requests.length)
const statuses: Record<string, number> = {}
let next = 0

async function lane() {
  for (;;) {
    const index = next++
    if (index >= requests.length) return
    const { body, headers } = requests[index]
    const started = performance.now()
    const response = await fetch(url, { method: 'POST', headers, body })
    await response.arrayBuffer()
    latencies[index] = performance.now() - started
    statuses[response.status] = (statuses[response.status] ?? 0) + 1
  }
}

const started = performance.now()
await Promise.all(Array.from({ length: concurrency }, lane))
parentPort!.postMessage({ latencies, statuses, elapsedMs: performance.now() - started })
