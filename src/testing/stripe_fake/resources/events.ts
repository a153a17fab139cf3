/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { invalidRequest } from '../errors.ts'
import type { Engine, Route } from '../engine.ts'
import { arr, bool, matchesRange } from '../util.ts'

/**
 * Whether an event type matches a filter (`customer.*` wildcards allowed).
 */
function typeMatches(type: string, filter: string) {
  if (filter.endsWith('*')) return type.startsWith(filter.slice(0, -1))
  return type === filter
}

/**
 * Routes of `/v1/events`. `deliverySuccess(id)` says whether every webhook delivery of an event
 * succeeded (false while one failed or is pending).
 */
export function eventRoutes(engine: Engine, deliverySuccess: (eventId: string) => boolean): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/events',
      schema: 'EventListParams',
      handler: (r) => {
        const types = arr(r.params.types)?.map(String)
        if (types && types.length > 20) throw invalidRequest('You may pass at most 20 types.', { param: 'types' })
        if (types && r.params.type !== undefined) {
          throw invalidRequest('You may only specify one of these parameters: type, types.', { param: 'types' })
        }
        const success = bool(r.params.delivery_success, 'delivery_success')
        const items = engine
          .all('event')
          .filter(
            (e) =>
              (r.params.type === undefined || typeMatches(e.type, String(r.params.type))) &&
              (!types || types.some((t) => typeMatches(e.type, t))) &&
              (success === undefined || deliverySuccess(e.id) === success) &&
              matchesRange(e.created, r.params.created, 'created')
          )
        return engine.list(items, r.params, '/v1/events', false)
      },
    },
    {
      method: 'GET',
      path: '/v1/events/:id',
      schema: 'EventRetrieveParams',
      handler: (r) => structuredClone(engine.require(r.ids.id, 'event', 'event')),
    },
  ]
}
