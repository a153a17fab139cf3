/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { invalidRequest, missingParameter } from '../errors.ts'
import type { Engine, MeterEventRecord, Route } from '../engine.ts'
import { int, oneOf, stableId, str, type Obj } from '../util.ts'

const DAY = 86_400
/**
 * Meter event timestamps may be this far in the past (35 days) ...
 */
export const METER_EVENT_MAX_AGE = 35 * DAY
/**
 * ... and this far in the future (5 minutes).
 */
export const METER_EVENT_MAX_SKEW = 300
/**
 * Identifiers are deduplicated for (at least) this long.
 */
export const METER_EVENT_DEDUP_WINDOW = DAY

/**
 * Aggregates a customer's meter events in `[start, end)` with the meter's formula (sum/count/last).
 */
export function aggregateUsage(engine: Engine, meter: Obj, customer: string, start: number, end: number): number {
  const events = engine.meterEvents.filter(
    (r) => r.meter === meter.id && r.customer === customer && !r.canceled && r.event.timestamp >= start && r.event.timestamp < end
  )
  const formula = meter.default_aggregation?.formula ?? 'sum'
  if (formula === 'count') return events.length
  if (formula === 'last') {
    if (!events.length) return 0
    const last = events.reduce((a, b) => (b.event.timestamp >= a.event.timestamp ? b : a))
    return last.value
  }
  return events.reduce((total, r) => total + r.value, 0)
}

/**
 * Routes of `/v1/billing/meters`, `/v1/billing/meter_events` and `/v1/billing/meter_event_adjustments`.
 */
export function meterRoutes(engine: Engine): Route[] {
  const requireMeter = (id: unknown, param = 'id') => engine.require(id, 'billing.meter', 'billing.meter', param)

  const createMeter = (params: Obj) => {
    const eventName = str(params.event_name, 'event_name')!
    if (engine.all('billing.meter').some((m) => m.event_name === eventName && m.status === 'active')) {
      throw invalidRequest(`An active meter with event_name \`${eventName}\` already exists.`, { param: 'event_name' })
    }
    const now = engine.now()
    const meter = engine.fixture('billing.meter')
    Object.assign(meter, {
      id: engine.id('mtr_test_61', 20),
      object: 'billing.meter',
      created: now,
      customer_mapping: {
        event_payload_key: str(params.customer_mapping?.event_payload_key, 'customer_mapping[event_payload_key]') ?? 'stripe_customer_id',
        type: 'by_id',
      },
      default_aggregation: { formula: oneOf(params.default_aggregation?.formula, 'default_aggregation[formula]', ['sum', 'count', 'last'])! },
      display_name: str(params.display_name, 'display_name'),
      event_name: eventName,
      event_time_window: str(params.event_time_window, 'event_time_window') ?? null,
      livemode: false,
      status: 'active',
      status_transitions: { deactivated_at: null },
      updated: now,
      value_settings: {
        event_payload_key: str(params.value_settings?.event_payload_key, 'value_settings[event_payload_key]') ?? 'value',
      },
    })
    engine.save(meter)
    engine.emit('billing.meter.created', meter)
    return engine.render(meter)
  }

  const setStatus = (id: string, status: 'active' | 'inactive') => {
    const meter = requireMeter(id)
    if (meter.status === status) {
      throw invalidRequest(`This meter is already ${status === 'active' ? 'active' : 'inactive'}.`, { param: 'id' })
    }
    engine.change(
      meter,
      (m) => {
        m.status = status
        m.status_transitions = { deactivated_at: status === 'inactive' ? engine.now() : null }
        m.updated = engine.now()
      },
      null
    )
    engine.emit(status === 'active' ? 'billing.meter.reactivated' : 'billing.meter.deactivated', meter)
    return engine.render(meter)
  }

  const createMeterEvent = (params: Obj) => {
    const eventName = str(params.event_name, 'event_name')!
    const meter = engine.all('billing.meter').find((m) => m.event_name === eventName && m.status === 'active')
    if (!meter) {
      throw invalidRequest(`No active meter was found for event_name \`${eventName}\`.`, { param: 'event_name' })
    }
    const payload = params.payload as Obj
    if (!payload || typeof payload !== 'object') throw missingParameter('payload')
    const customerKey = meter.customer_mapping.event_payload_key
    const valueKey = meter.value_settings.event_payload_key
    const customerId = payload[customerKey]
    if (customerId === undefined || customerId === '') throw missingParameter(`payload[${customerKey}]`)
    if (!engine.find(customerId, 'customer')) {
      throw invalidRequest(`No such customer: '${customerId}'`, { param: `payload[${customerKey}]`, code: 'resource_missing' })
    }
    let value = 1
    if (payload[valueKey] === undefined || payload[valueKey] === '') {
      if (meter.default_aggregation.formula !== 'count') throw missingParameter(`payload[${valueKey}]`)
    } else if (!/^\d+$/.test(String(payload[valueKey]))) {
      throw invalidRequest(`The value \`${payload[valueKey]}\` of payload[${valueKey}] must be a whole number.`, {
        param: `payload[${valueKey}]`,
      })
    } else {
      value = Number(payload[valueKey])
    }
    const now = engine.now()
    const timestamp = params.timestamp === undefined ? now : int(params.timestamp, 'timestamp')!
    if (timestamp < now - METER_EVENT_MAX_AGE) {
      throw invalidRequest('Timestamp must be within the past 35 calendar days.', { param: 'timestamp' })
    }
    if (timestamp > now + METER_EVENT_MAX_SKEW) {
      throw invalidRequest('Timestamp must not be more than 5 minutes in the future.', { param: 'timestamp' })
    }
    const identifier = str(params.identifier, 'identifier') ?? engine.id('', 20)
    const duplicate = engine.meterEvents.find(
      (r) => r.event.identifier === identifier && now - r.receivedAt < METER_EVENT_DEDUP_WINDOW
    )
    if (duplicate) {
      throw invalidRequest(
        `An event with identifier \`${identifier}\` already exists. Identifiers must be unique within a rolling 24 hour period.`,
        { param: 'identifier' }
      )
    }
    const event = engine.fixture('billing.meter_event')
    Object.assign(event, {
      object: 'billing.meter_event',
      created: now,
      event_name: eventName,
      identifier,
      livemode: false,
      payload: Object.fromEntries(Object.entries(payload).map(([k, v]) => [k, String(v)])),
      timestamp,
    })
    const record: MeterEventRecord = { event, meter: meter.id, customer: customerId, value, receivedAt: now, canceled: false }
    engine.meterEvents.push(record)
    return structuredClone(event)
  }

  const createAdjustment = (params: Obj) => {
    const eventName = str(params.event_name, 'event_name')!
    const identifier = str(params.cancel?.identifier, 'cancel[identifier]')
    if (!identifier) throw missingParameter('cancel[identifier]')
    const record = engine.meterEvents.find((r) => r.event.identifier === identifier && r.event.event_name === eventName)
    if (!record) {
      throw invalidRequest(`No meter event with identifier \`${identifier}\` was found.`, { param: 'cancel[identifier]', code: 'resource_missing' })
    }
    record.canceled = true
    const adjustment = engine.fixture('billing.meter_event_adjustment')
    Object.assign(adjustment, {
      object: 'billing.meter_event_adjustment',
      cancel: { identifier },
      event_name: eventName,
      livemode: false,
      status: 'pending',
      type: 'cancel',
    })
    return adjustment
  }

  const summaries = (id: string, params: Obj) => {
    const meter = requireMeter(id)
    const customer = str(params.customer, 'customer')!
    if (!engine.find(customer, 'customer')) {
      throw invalidRequest(`No such customer: '${customer}'`, { param: 'customer', code: 'resource_missing' })
    }
    const start = int(params.start_time, 'start_time')!
    const end = int(params.end_time, 'end_time')!
    if (start % 60 !== 0) throw invalidRequest('start_time must be aligned with minute boundaries.', { param: 'start_time' })
    if (end % 60 !== 0) throw invalidRequest('end_time must be aligned with minute boundaries.', { param: 'end_time' })
    if (end <= start) throw invalidRequest('end_time must be after start_time.', { param: 'end_time' })
    const window = oneOf(params.value_grouping_window, 'value_grouping_window', ['hour', 'day'])
    const windows: Array<[number, number]> = []
    if (!window) {
      windows.push([start, end])
    } else {
      const size = window === 'hour' ? 3600 : DAY
      if (start % size !== 0 || end % size !== 0) {
        throw invalidRequest(`start_time and end_time must be aligned with ${window} boundaries when value_grouping_window=${window}.`, {
          param: 'start_time',
        })
      }
      for (let t = start; t < end; t += size) windows.push([t, t + size])
    }
    const items = windows
      .map(([s, e]) =>
        Object.assign(engine.fixture('billing.meter_event_summary'), {
          id: stableId('mtrusg_test_', meter.id, customer, s, e),
          object: 'billing.meter_event_summary',
          aggregated_value: aggregateUsage(engine, meter, customer, s, e),
          end_time: e,
          livemode: false,
          meter: meter.id,
          start_time: s,
        })
      )
      .reverse()
    return engine.list(items, params, `/v1/billing/meters/${meter.id}/event_summaries`, false)
  }

  return [
    { method: 'POST', path: '/v1/billing/meters', schema: 'Billing.MeterCreateParams', handler: (r) => createMeter(r.params) },
    {
      method: 'GET',
      path: '/v1/billing/meters',
      schema: 'Billing.MeterListParams',
      handler: (r) => {
        const status = oneOf(r.params.status, 'status', ['active', 'inactive'])
        const items = engine.all('billing.meter').filter((m) => !status || m.status === status)
        return engine.list(items, r.params, '/v1/billing/meters')
      },
    },
    {
      method: 'GET',
      path: '/v1/billing/meters/:id',
      schema: 'Billing.MeterRetrieveParams',
      handler: (r) => engine.render(requireMeter(r.ids.id)),
    },
    {
      method: 'POST',
      path: '/v1/billing/meters/:id',
      schema: 'Billing.MeterUpdateParams',
      handler: (r) => {
        const meter = requireMeter(r.ids.id)
        engine.change(
          meter,
          (m) => {
            if (r.params.display_name !== undefined) m.display_name = str(r.params.display_name, 'display_name')
            m.updated = engine.now()
          },
          'billing.meter.updated'
        )
        return engine.render(meter)
      },
    },
    {
      method: 'POST',
      path: '/v1/billing/meters/:id/deactivate',
      schema: 'Billing.MeterDeactivateParams',
      handler: (r) => setStatus(r.ids.id, 'inactive'),
    },
    {
      method: 'POST',
      path: '/v1/billing/meters/:id/reactivate',
      schema: 'Billing.MeterReactivateParams',
      handler: (r) => setStatus(r.ids.id, 'active'),
    },
    {
      method: 'GET',
      path: '/v1/billing/meters/:id/event_summaries',
      schema: 'Billing.MeterListEventSummariesParams',
      handler: (r) => summaries(r.ids.id, r.params),
    },
    {
      method: 'POST',
      path: '/v1/billing/meter_events',
      schema: 'Billing.MeterEventCreateParams',
      handler: (r) => createMeterEvent(r.params),
    },
    {
      method: 'POST',
      path: '/v1/billing/meter_event_adjustments',
      schema: 'Billing.MeterEventAdjustmentCreateParams',
      handler: (r) => createAdjustment(r.params),
    },
  ]
}
