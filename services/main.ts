/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import app from '@adonisjs/core/services/app'
import type { BillingManager } from '../src/billing_manager.ts'

let billing: BillingManager

/**
 * The billing manager singleton, available once the app has booted.
 */
await app.booted(async () => {
  billing = await app.container.make('billing.manager')
})

export { billing as default }
