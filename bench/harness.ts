/**
 * Shared by the benchmarks: runs `body` against a throwaway PostgreSQL cluster (the same one the test
 * suite uses), with the package sources loadable (@poppinss/ts-exec), then stops the cluster and exits.
 */
import { startPostgres } from '../scripts/postgres_cluster.ts'

export async function withPostgres(body: () => Promise<void>) {
  const cluster = await startPostgres()
  process.env.BILLING_TEST_PG_HOST = cluster.host
  process.env.BILLING_TEST_PG_PORT = String(cluster.port)
  process.env.BILLING_TEST_PG_USER = cluster.user
  try {
    await import('@poppinss/ts-exec')
    await body()
  } finally {
    cluster.stop()
  }
  process.exit(0)
}
