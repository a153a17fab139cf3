/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { HttpContext } from '@adonisjs/core/http'
import { WebhookPayloadInvalidException } from './stripe_signature.ts'
import { WebhookProcessingException } from './webhook_processor.ts'

/**
 * `POST <prefix>/webhooks/stripe`: hands the raw body (kept by the host's bodyparser as
 * `request.raw()`) to the webhook processor. 200 for processed, ignored and duplicate events; 400/413
 * problem+json for refused deliveries; 500 when a handler failed (Stripe retries).
 */
export async function handleStripeWebhook(ctx: HttpContext) {
  const billing = await ctx.containerResolver.make('billing.manager')
  const raw = ctx.request.raw()
  if (raw === null || raw === undefined || raw === '') {
    throw new WebhookPayloadInvalidException('Empty body, or a content type the bodyparser does not keep raw (send application/json)')
  }
  try {
    const result = await billing.webhooks.receive(Buffer.from(raw, 'utf8'), ctx.request.header('stripe-signature'))
    return ctx.response.ok({ received: true, ...result })
  } catch (error) {
    /**
     * The handler's own message (which may hold anything: ids, secrets) stays in the event row for
     * admins (`billing:webhooks:status`, the health route); the caller gets a generic detail
     */
    if (error instanceof WebhookProcessingException) throw new WebhookProcessingException('Processing this event failed; it is stored and will be processed again when redelivered', { cause: error })
    throw error
  }
}

/**
 * `GET <prefix>/webhooks/health`: backlog, failures, last event per type and lag (JSON), for the
 * admins the `admin.authorize` of `registerRoutes()` admits (handler error text included).
 */
export async function webhookHealth(ctx: HttpContext) {
  const billing = await ctx.containerResolver.make('billing.manager')
  const status = await billing.webhookStatus()
  return ctx.response.status(status.healthy ? 200 : 503).send(status)
}
