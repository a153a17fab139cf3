/**
 * Japa entry point. `npm test` (scripts/test.ts) starts a throwaway PostgreSQL cluster and exports
 * BILLING_TEST_PG_* before it runs this file; without them the PostgreSQL groups are reported as failing
 * with a clear message instead of silently skipped.
 */
import { assert } from '@japa/assert'
import { fileSystem } from '@japa/file-system'
import { configure, processCLIArgs, run } from '@japa/runner'

processCLIArgs(process.argv.slice(2))
configure({
  files: ['tests/**/*.spec.ts', 'tests/**/*.spec.tsx'],
  plugins: [assert(), fileSystem({ basePath: new URL('../tests/tmp/', import.meta.url) })],
  timeout: 30_000,
})

run()
