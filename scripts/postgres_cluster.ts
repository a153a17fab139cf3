/**
 * A throwaway PostgreSQL cluster on loopback for tests and benchmarks. Finds the server binaries
 * (installing Debian's `postgresql` package when absent and running as root), runs `initdb`/`pg_ctl`
 * directly, or through `runuser -u postgres` when running as root (PostgreSQL refuses root), on a
 * random free port with fsync off. Nothing is assumed to be running.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, installDebianPackage } from './local_services.ts'

export interface PostgresCluster {
  host: string
  port: number
  user: string
  stop(): void
}

function findBinDir(): string | null {
  const base = '/usr/lib/postgresql'
  if (!existsSync(base)) return null
  const versions = readdirSync(base)
    .filter((name) => existsSync(join(base, name, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a))
  return versions.length ? join(base, versions[0], 'bin') : null
}

/**
 * Starts a new cluster and returns how to reach it. Call `stop()` to shut it down and delete it.
 */
export async function startPostgres(): Promise<PostgresCluster> {
  let bin = findBinDir()
  if (!bin) {
    installDebianPackage('postgresql', 'PostgreSQL server binaries not found')
    bin = findBinDir()
    if (!bin) throw new Error('PostgreSQL installed but no server binaries under /usr/lib/postgresql')
  }
  const asRoot = process.getuid?.() === 0
  const dir = mkdtempSync(join(tmpdir(), 'adonis-billing-pg-'))
  const run = (command: string, args: string[]) => {
    const file = join(bin!, command)
    const result = asRoot
      ? spawnSync('runuser', ['-u', 'postgres', '--', file, ...args], { encoding: 'utf8' })
      : spawnSync(file, args, { encoding: 'utf8' })
    if (result.status !== 0) {
      throw new Error(`${command} failed (${result.status}): ${result.stderr || result.stdout}`)
    }
  }
  if (asRoot) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), Number(execFileSync('id', ['-g', 'postgres']).toString().trim()))

  const data = join(dir, 'data')
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'])
  const port = await freePort()
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    `-c listen_addresses=127.0.0.1`,
    `-c fsync=off`,
    `-c synchronous_commit=off`,
    `-c full_page_writes=off`,
    `-c max_connections=300`,
    `-c shared_buffers=256MB`,
  ].join(' ')
  run('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start'])

  let stopped = false
  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    stop() {
      if (stopped) return
      stopped = true
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'])
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}
