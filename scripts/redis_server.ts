/**
 * A throwaway Redis server on loopback for the tests that prove cross-instance cache invalidation
 * (the `@adonisjs/cache` bus). Installs Debian's `redis-server` package when absent and running as
 * root, then starts one on a random free port with persistence off. Nothing is assumed to be running.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, installDebianPackage } from './local_services.ts'

export interface RedisServer {
  host: string
  port: number
  stop(): void
}

const BINARY = '/usr/bin/redis-server'

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
  if (!existsSync(BINARY)) installDebianPackage('redis-server', 'redis-server not found')
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
