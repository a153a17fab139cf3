/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { debuglog } from 'node:util'

/**
 * Debug channel of the package. Enable with `NODE_DEBUG=adonis-billing`.
 */
export default debuglog('adonis-billing')
