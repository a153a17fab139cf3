/**
 * Shared by the throwaway servers of tests and benchmarks (PostgreSQL, Redis): installing a Debian
 * package the machine lacks, and finding a free loopback port.
 */
import { execFileSync } from 'node:child_process'
import { createServer } from 'node:net'

/**
 * Installs a Debian package with apt when running as root; otherwise explains what to install.
 */
export function installDebianPackage(pkg: string, missing: string) {
  if (process.getuid?.() !== 0) {
    throw new Error(`${missing}: install it (apt-get install ${pkg}) and rerun`)
  }
  console.error(`[${pkg}] ${missing}: installing Debian package "${pkg}"`)
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' })
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  })
}

/**
 * A TCP port free on 127.0.0.1 right now.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}
