/**
 * Serves a test app over real HTTP on loopback: the app's own AdonisJS server (router, bodyparser,
 * exception handling) behind node:http, as `node ace serve` would run it.
 */
import { createServer } from 'node:http'
import { getActiveTest } from '@japa/runner'
import type { ApplicationService } from '@adonisjs/core/types'
import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { User } from './fixtures/user.ts'

/**
 * Test stand-in for the host's auth: `x-test-user: <id>` loads that user as `ctx.auth.user`
 * (the host-app end-to-end test uses the real @adonisjs/auth).
 */
export async function headerAuth(ctx: HttpContext, next: NextFn) {
  const id = ctx.request.header('x-test-user')
  ;(ctx as any).auth = { user: id ? await User.find(Number(id)) : null }
  return next()
}

export async function serve(app: ApplicationService, define: (router: any) => void | Promise<void>) {
  const router = await app.container.make('router')
  const server = await app.container.make('server')
  server.errorHandler(() => import('./fixtures/exception_handler.ts'))
  router.use([() => import('@adonisjs/core/bodyparser_middleware')])
  await define(router)
  await server.boot()
  const httpServer = createServer(server.handle.bind(server))
  server.setNodeServer(httpServer)
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve))
  const { port } = httpServer.address() as { port: number }
  getActiveTest()?.cleanup(() => new Promise<void>((resolve) => httpServer.close(() => resolve())))
  return { url: `http://127.0.0.1:${port}` }
}
