/**
 * A real AdonisJS 7 host app with adonis-billing installed from its packed tarball, shared by the
 * end-to-end test (tests/host_app.spec.ts) and `npm run demo` (scripts/demo.ts).
 *
 * Steps, each timed:
 * 1. `npm pack` the repository (its `prepack` runs `npm run compile`), so what is tested is the artifact
 *    a user installs: the `files` list, the `exports` map, the compiled stubs and commands index;
 * 2. copy the fixture app (tests/fixtures/host_app) into a fresh directory under `<repo>/tmp/`, and write
 *    its `.env` from `.env.example` with a fresh APP_KEY (like `npm init adonisjs` does);
 * 3. `npm install <tarball>` into the copy;
 * 4. `node ace configure adonis-billing` (the package's real codemods) and `node ace migration:run`;
 * 5. start `node --import=@poppinss/ts-exec bin/server.ts` (what `node ace serve` runs) on a free loopback
 *    port and wait until `GET /health` answers.
 *
 * Why the copy lives INSIDE the repository: Node resolves a bare import by walking up the directory tree,
 * so `@adonisjs/core`, `@adonisjs/lucid`, `@adonisjs/auth`, better-sqlite3, @poppinss/ts-exec, … imported by
 * the host app, and the package's peer dependencies imported from `node_modules/adonis-billing`, all fall
 * back to `<repo>/node_modules`. Nothing of the framework is downloaded or copied: preparing an app stays
 * fast and works offline, and host and package share one instance of each framework module (one
 * container, one BaseModel, one HttpContext), exactly as in a real install where npm dedupes them.
 * It lives under `<repo>/tmp/` (git-ignored) rather than `tests/tmp/`, because @japa/file-system wipes
 * `tests/tmp/` whenever a test using its `fs` fixture finishes, including in other engineers' test runs.
 *
 * npm, however, would install every dependency the host's package.json lists (about 150 packages for
 * @adonisjs/core alone). So during step 3 the host's package.json is swapped for one without dependencies, and put
 * back afterwards with `adonis-billing` added, as `npm install adonis-billing` would have saved it. npm then
 * adds just the tarball and its own dependencies (luxon, stripe), from the npm cache when it has them
 * (`--prefer-offline`); peers are not auto-installed (`--legacy-peer-deps`): they come from the repo.
 *
 * Measured on the dev VM: about 9 s in all (pack 3.5 s, most of it tsc; install 2 s, also with an empty npm
 * cache; configure 1.8 s; migrate 0.8 s; boot 0.8 s). `npm pack` recompiles `build/` in place, so two
 * preparations should not pack at the same moment; pass `tarball` to reuse one.
 *
 * A failed preparation removes its folder; set KEEP_HOST_APP=1 to keep it for a look.
 *
 * Plain Node 24 TypeScript (type stripping only): no decorators, enums or parameter properties.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { freePort } from './local_services.ts'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stripVTControlCharacters } from 'node:util'

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url)).replace(/\/$/, '')
export const FIXTURE_DIR = join(REPO_ROOT, 'tests/fixtures/host_app')
/**
 * Parent of every prepared host app (git-ignored).
 */
export const HOST_APPS_DIR = join(REPO_ROOT, 'tmp/host_apps')

/**
 * Outcome of one child process.
 */
export interface CommandResult {
  /** The command line, for messages */
  command: string
  /** Exit code (1 when killed by a signal or the timeout) */
  code: number
  stdout: string
  stderr: string
  /** stdout and stderr interleaved as they arrived, without ANSI colors */
  output: string
  ms: number
}

export interface RunOptions {
  cwd: string
  env?: NodeJS.ProcessEnv
  timeoutMs?: number
}

/**
 * Runs a command to completion and captures its output. Never throws for a non-zero exit: callers
 * decide (see `expectSuccess`).
 */
export function run(command: string, args: string[], options: RunOptions): Promise<CommandResult> {
  const started = Date.now()
  const line = [command === process.execPath ? 'node' : command, ...args].join(' ')
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let output = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      output += chunk
    })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
      output += chunk
    })
    const timer = setTimeout(() => {
      output += `\n[host_app] "${line}" timed out after ${options.timeoutMs} ms, killed\n`
      child.kill('SIGKILL')
    }, options.timeoutMs ?? 180_000)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(new Error(`cannot run "${line}": ${error.message}`))
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({
        command: line,
        code: code ?? 1,
        stdout: stripVTControlCharacters(stdout),
        stderr: stripVTControlCharacters(stderr),
        output: stripVTControlCharacters(output),
        ms: Date.now() - started,
      })
    })
  })
}

/**
 * Throws with the command's output when it failed.
 */
export function expectSuccess(result: CommandResult): CommandResult {
  if (result.code !== 0) {
    throw new Error(`"${result.command}" exited with code ${result.code}:\n${tail(result.output, 60)}`)
  }
  return result
}

/**
 * The last `lines` lines of a text, for error messages.
 */
export function tail(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

/**
 * Variables that would override the host app's `.env` (process env wins over `.env` in AdonisJS) or
 * redirect npm (when the caller itself runs under `npm run`). Callers pass what they want explicitly.
 */
const SCRUBBED_ENV = [
  'NODE_ENV',
  'PORT',
  'HOST',
  'APP_KEY',
  'APP_URL',
  'LOG_LEVEL',
  'DB_PATH',
  'TZ',
  'STRIPE_SECRET_KEY',
  'STRIPE_WEBHOOK_SECRET',
  'npm_config_prefix',
  'npm_config_local_prefix',
  'npm_config_global',
  'npm_config_save',
  'npm_config_package_lock',
]

/**
 * Environment of the host app's processes: the caller's, minus what would override the app's `.env`,
 * without colors, plus `extra`.
 */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const key of SCRUBBED_ENV) delete env[key]
  for (const key of Object.keys(env)) {
    if (key.startsWith('npm_package_') || key.startsWith('npm_lifecycle_')) delete env[key]
  }
  env.FORCE_COLOR = '0'
  env.NO_COLOR = '1'
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key]
    else env[key] = value
  }
  return env
}

export { freePort }

/**
 * `npm pack` of the repository into a fresh folder (`prepack` compiles the package first). Returns the
 * tarball path.
 */
export async function packPackage(destination: string): Promise<{ tarball: string; ms: number }> {
  await mkdir(destination, { recursive: true })
  const result = expectSuccess(
    await run('npm', ['pack', '--pack-destination', destination, '--loglevel=error'], {
      cwd: REPO_ROOT,
      env: childEnv(),
      timeoutMs: 300_000,
    })
  )
  const tarballs = (await readdir(destination)).filter((file) => file.endsWith('.tgz'))
  if (tarballs.length !== 1) {
    throw new Error(`npm pack left ${tarballs.length} tarballs in ${destination}:\n${tail(result.output)}`)
  }
  return { tarball: join(destination, tarballs[0]), ms: result.ms }
}

/**
 * How long each preparation step took, in milliseconds.
 */
export interface HostAppTimings {
  pack?: number
  copy?: number
  install?: number
  configure?: number
  migrate?: number
  boot?: number
}

/**
 * Fixture folders never copied (local leftovers of someone running the fixture in place)
 */
const LEFT_BEHIND = new Set(['node_modules', 'tmp', 'build'])

export interface CreateHostAppOptions {
  /**
   * Folder to create (removed first when it exists); a fresh one under tmp/host_apps/ by default.
   * Must be inside the repository (see the comment at the top).
   */
  dir?: string
  /**
   * A tarball packed already (skips `npm pack`)
   */
  tarball?: string
  /**
   * Progress messages (quiet by default)
   */
  log?: (message: string) => void
}


/**
 * Steps 1 to 3: a copy of the fixture app with the packed package installed, not configured yet.
 */
export async function createHostApp(options: CreateHostAppOptions = {}): Promise<HostApp> {
  const log = options.log ?? (() => {})
  const dir = options.dir ?? join(HOST_APPS_DIR, `app_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`)
  if (relative(REPO_ROOT, dir).startsWith('..')) {
    throw new Error(`the host app must live inside ${REPO_ROOT} to resolve the framework from its node_modules (got ${dir})`)
  }
  const timings: HostAppTimings = {}
  await rm(dir, { recursive: true, force: true })
  await mkdir(HOST_APPS_DIR, { recursive: true })

  let tarball = options.tarball
  let packDir: string | undefined
  try {
    /**
     * 1. Pack
     */
    if (!tarball) {
      log('packing adonis-billing (npm pack, runs prepack = compile)')
      packDir = await mkdtemp(join(HOST_APPS_DIR, 'pack_'))
      const packed = await packPackage(packDir)
      tarball = packed.tarball
      timings.pack = packed.ms
    }

    /**
     * 2. Copy the fixture and write its .env
     */
    log(`copying the fixture app into ${relative(REPO_ROOT, dir)}`)
    let started = Date.now()
    await cp(FIXTURE_DIR, dir, {
      recursive: true,
      filter: (source) => !relative(FIXTURE_DIR, source).split(sep).some((part) => LEFT_BEHIND.has(part)),
    })
    await mkdir(join(dir, 'tmp'), { recursive: true })
    const example = await readFile(join(dir, '.env.example'), 'utf8')
    await writeFile(join(dir, '.env'), example.replace(/^APP_KEY=.*$/m, `APP_KEY=${randomBytes(24).toString('base64url')}`))
    timings.copy = Date.now() - started

    /**
     * 3. Install the tarball (the framework is not installed: see the comment at the top)
     */
    log(`installing ${relative(REPO_ROOT, tarball)} with npm`)
    started = Date.now()
    const packageJsonPath = join(dir, 'package.json')
    const packageJson = JSON.parse(await readFile(packageJsonPath, 'utf8'))
    const { dependencies: _dependencies, devDependencies: _devDependencies, ...withoutDependencies } = packageJson
    await writeFile(packageJsonPath, JSON.stringify(withoutDependencies, null, 2) + '\n')
    let install: CommandResult
    try {
      install = await run(
        'npm',
        [
          'install',
          tarball,
          '--prefix',
          dir,
          '--no-save',
          '--legacy-peer-deps',
          '--prefer-offline',
          '--no-audit',
          '--no-fund',
          '--loglevel=error',
        ],
        { cwd: dir, env: childEnv(), timeoutMs: 300_000 }
      )
    } finally {
      const installed = JSON.parse(await readFile(join(dir, 'node_modules/adonis-billing/package.json'), 'utf8').catch(() => '{}'))
      packageJson.dependencies = { ...packageJson.dependencies, 'adonis-billing': installed.version ? `^${installed.version}` : 'latest' }
      await writeFile(packageJsonPath, JSON.stringify(packageJson, null, 2) + '\n')
    }
    expectSuccess(install)
    timings.install = Date.now() - started
  } catch (error) {
    /**
     * Leave nothing half-prepared behind, unless asked to keep it for a look
     */
    if (!process.env.KEEP_HOST_APP) await rm(dir, { recursive: true, force: true })
    throw new Error(`preparing the host app in ${relative(REPO_ROOT, dir)} failed: ${(error as Error).message}`, { cause: error })
  } finally {
    if (packDir) await rm(packDir, { recursive: true, force: true })
  }

  return new HostApp(dir, timings)
}

/**
 * A prepared host app on disk.
 */
export class HostApp {
  readonly dir: string
  readonly timings: HostAppTimings

  constructor(dir: string, timings: HostAppTimings) {
    this.dir = dir
    this.timings = timings
  }

  /**
   * `node ace <args>` in the app, to completion. `env` adds or (with `undefined`) removes variables.
   */
  ace(args: string[], options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<CommandResult> {
    return run(process.execPath, ['ace', ...args], {
      cwd: this.dir,
      env: childEnv(options.env),
      timeoutMs: options.timeoutMs ?? 120_000,
    })
  }

  /**
   * `node ace configure adonis-billing`; throws when it fails.
   */
  async configure(options: { env?: Record<string, string | undefined> } = {}): Promise<CommandResult> {
    const result = expectSuccess(await this.ace(['configure', 'adonis-billing'], options))
    this.timings.configure = result.ms
    return result
  }

  /**
   * `node ace migration:run`; throws when it fails.
   */
  async migrate(options: { env?: Record<string, string | undefined> } = {}): Promise<CommandResult> {
    const result = expectSuccess(await this.ace(['migration:run'], options))
    this.timings.migrate = result.ms
    return result
  }

  /**
   * A file of the app, as text.
   */
  read(path: string): Promise<string> {
    return readFile(join(this.dir, path), 'utf8')
  }

  /**
   * Starts the HTTP server on a free loopback port and waits for `GET /health`.
   */
  async start(options: { port?: number; env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<RunningServer> {
    const server = await startServer(this.dir, options)
    this.timings.boot = server.bootMs
    return server
  }

  /**
   * Deletes the app folder.
   */
  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true })
  }
}

/**
 * Answer of `RunningServer.request()`.
 */
export interface HttpAnswer {
  status: number
  contentType: string
  /** Parsed body, or null when it is not JSON */
  json: any
  text: string
}

/**
 * A host app's HTTP server, running.
 */
export interface RunningServer {
  dir: string
  port: number
  /** Base URL without trailing slash, e.g. http://127.0.0.1:41234 */
  url: string
  pid: number
  bootMs: number
  /** Everything the server printed so far (JSON log lines) */
  output(): string
  /** One JSON request, with an optional bearer token */
  request(method: string, path: string, options?: { token?: string; body?: unknown }): Promise<HttpAnswer>
  /** SIGTERM (graceful: the app terminates its providers), SIGKILL after 10 s; idempotent */
  stop(): Promise<void>
}

/**
 * Servers still running, killed if this process exits without stopping them.
 */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/**
 * Step 5: `node --import=@poppinss/ts-exec bin/server.ts` in `dir`, ready when `/health` answers.
 */
export async function startServer(
  dir: string,
  options: { port?: number; env?: Record<string, string | undefined>; timeoutMs?: number } = {}
): Promise<RunningServer> {
  const started = Date.now()
  const port = options.port ?? (await freePort())
  const url = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, ['--import=@poppinss/ts-exec', '--enable-source-maps', 'bin/server.ts'], {
    cwd: dir,
    env: childEnv({ ...options.env, PORT: String(port), HOST: '127.0.0.1' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let output = ''
  const collect = (chunk: string) => {
    output += chunk
    if (output.length > 200_000) output = output.slice(-100_000)
  }
  child.stdout!.setEncoding('utf8').on('data', collect)
  child.stderr!.setEncoding('utf8').on('data', collect)
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child)
      resolve(code ?? (signal ? 1 : 0))
    })
  })
  let hasExited = false
  void exited.then(() => (hasExited = true))

  const stop = async () => {
    if (hasExited) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }

  /**
   * Poll /health until it answers { ok: true }, the server exits, or the timeout passes
   */
  const deadline = started + (options.timeoutMs ?? 60_000)
  for (;;) {
    if (hasExited) {
      throw new Error(`the host app exited (code ${await exited}) before answering /health:\n${tail(stripVTControlCharacters(output))}`)
    }
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) })
      const body: any = await response.json().catch(() => null)
      if (response.ok && body?.ok === true) break
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`the host app did not answer ${url}/health within ${options.timeoutMs ?? 60_000} ms:\n${tail(stripVTControlCharacters(output))}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }

  return {
    dir,
    port,
    url,
    pid: child.pid!,
    bootMs: Date.now() - started,
    output: () => stripVTControlCharacters(output),
    request: (method, path, requestOptions) => httpRequest(url, method, path, requestOptions),
    stop,
  }
}

/**
 * One JSON request to `baseUrl`. Never throws for an HTTP error status.
 */
export async function httpRequest(
  baseUrl: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown } = {}
): Promise<HttpAnswer> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      accept: 'application/json',
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: AbortSignal.timeout(30_000),
  })
  const text = await response.text()
  let json: any = null
  try {
    json = JSON.parse(text)
  } catch {
    /* not JSON: callers look at `text` */
  }
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', json, text }
}

export interface StartHostAppOptions extends CreateHostAppOptions {
  /** Extra environment of the app's processes (e.g. STRIPE_SECRET_KEY) */
  env?: Record<string, string | undefined>
  port?: number
}

/**
 * Every step: pack, copy, install, configure, migrate and serve. Returns the running app.
 *
 * @example
 * const host = await startHostApp()
 * await fetch(`${host.url}/health`)
 * await host.stop()
 */
export async function startHostApp(options: StartHostAppOptions = {}): Promise<{
  dir: string
  port: number
  url: string
  app: HostApp
  server: RunningServer
  timings: HostAppTimings
  stop(): Promise<void>
}> {
  const log = options.log ?? (() => {})
  const app = await createHostApp(options)
  log('node ace configure adonis-billing')
  await app.configure({ env: options.env })
  log('node ace migration:run')
  await app.migrate({ env: options.env })
  log('starting the HTTP server')
  const server = await app.start({ env: options.env, port: options.port })
  return { dir: app.dir, port: server.port, url: server.url, app, server, timings: app.timings, stop: () => server.stop() }
}
