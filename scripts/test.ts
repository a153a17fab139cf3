/**
 * `npm test`: starts a throwaway PostgreSQL cluster and a throwaway Redis server, runs the whole Japa suite (every database test
 * runs on SQLite and on PostgreSQL), stops the cluster, and exits with the suite's code. Extra
 * arguments go to Japa (`npm test -- --files customers`).
 */
import { spawn } from 'node:child_process'
import { startPostgres } from './postgres_cluster.ts'
import { startRedis } from './redis_server.ts'

const started = Date.now()
const cluster = await startPostgres()
console.log(`[postgres] throwaway cluster on ${cluster.host}:${cluster.port} (${Date.now() - started} ms)`)
const redis = await startRedis()
console.log(`[redis] throwaway server on ${redis.host}:${redis.port}`)

const stop = () => {
  cluster.stop()
  redis.stop()
}
process.on('exit', stop)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stop()
    process.exit(130)
  })
}

const child = spawn(
  process.execPath,
  ['--import=@poppinss/ts-exec', '--enable-source-maps', 'bin/test.ts', ...process.argv.slice(2)],
  {
    stdio: 'inherit',
    env: {
      ...process.env,
      BILLING_TEST_PG_HOST: cluster.host,
      BILLING_TEST_PG_PORT: String(cluster.port),
      BILLING_TEST_PG_USER: cluster.user,
      BILLING_TEST_REDIS_HOST: redis.host,
      BILLING_TEST_REDIS_PORT: String(redis.port),
    },
  }
)
const code: number = await new Promise((resolve) => child.on('exit', (status, signal) => resolve(status ?? (signal ? 1 : 0))))
stop()
console.log(`[test] finished in ${((Date.now() - started) / 1000).toFixed(1)} s`)
process.exit(code)
