/**
 * A throwaway Redis server on loopback for the tests that prove cross-instance cache invalidation
 * (the `@adonisjs/cache` bus). Installs Debian's `redis-server` package when absent and running as
 * root, then starts one on a random free port with persistence off. Nothing is assumed to be running.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface RedisServer {
  host: string
  port: number
  stop(): void
}

const BINARY = '/usr/bin/redis-server'

function installRedis() {
  if (process.getuid?.() !== 0) {
    throw new Error('redis-server not found: install it (apt-get install redis-server) and rerun')
  }
  console.error('[redis] redis-server not found: installing Debian package "redis-server"')
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' })
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'redis-server'], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  })
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'))
    socket.setTimeout(500, () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('data', (data) => {
      socket.destroy()
      resolve(data.toString().startsWith('+PONG'))
    })
    socket.once('error', () => resolve(false))
  })
}

/**
 * Starts a new server and returns how to reach it. Call `stop()` to shut it down.
 */
export async function startRedis(): Promise<RedisServer> {
  if (!existsSync(BINARY)) installRedis()
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'billing-redis-'))
  const child = spawn(BINARY, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
    detached: true,
  })
  child.unref()
  const deadline = Date.now() + 10_000
  while (!(await answersPing(port))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`redis-server did not start on port ${port}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  let stopped = false
  return {
    host: '127.0.0.1',
    port,
    stop() {
      if (stopped) return
      stopped = true
      try {
        process.kill(child.pid!, 'SIGKILL')
      } catch {}
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
