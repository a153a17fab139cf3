/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { checkoutHandlers } from './checkout_handlers.ts'
import { customerHandlers } from './customer_handlers.ts'
import { invoiceHandlers } from './invoice_handlers.ts'
import { subscriptionHandlers } from './subscription_handlers.ts'
import type { WebhookHandler } from '../webhook_context.ts'

/**
 * `billing.meter.*`: catalog drift worth an audit row (no customer).
 */
const meterHandler: WebhookHandler = async (context) => {
  const meter = context.event.data.object as { id: string; event_name?: string; status?: string }
  await context.manager.audit.record(
    {
      action: context.event.type,
      actor: context.actor,
      subject: { type: 'billing_meter', id: meter.id },
      after: { event_name: meter.event_name ?? null, status: meter.status ?? null },
    },
    { client: context.trx }
  )
  return 'processed'
}

/**
 * The package's built-in handlers by event type. Any other type is stored and marked `ignored`
 * unless the host registered a handler for it.
 */
export const builtInHandlers: Record<string, WebhookHandler> = {
  ...checkoutHandlers,
  ...subscriptionHandlers,
  ...invoiceHandlers,
  ...customerHandlers,
  'billing.meter.created': meterHandler,
  'billing.meter.updated': meterHandler,
  'billing.meter.deactivated': meterHandler,
  'billing.meter.reactivated': meterHandler,
}
