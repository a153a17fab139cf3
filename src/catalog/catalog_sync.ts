/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Stripe } from 'stripe'
import type { BillingManager } from '../billing_manager.ts'
import { actors } from '../audit/actor.ts'
import { StripeGateway } from '../stripe/stripe_gateway.ts'
import type { AuditActor, MeterDefinition } from '../types.ts'
import { PLAN_METADATA_KEY, type PriceParams, planPriceParams, priceChanges } from './price_params.ts'
import { usageIntervals, usageLookupKey } from './catalog.ts'
import debug from '../debug.ts'

export { PLAN_METADATA_KEY }

/**
 * One change `billing:sync` makes to Stripe.
 */
export type SyncAction =
  | { type: 'meter.create'; key: string; params: Stripe.Billing.MeterCreateParams }
  | { type: 'meter.update'; key: string; id: string; params: Stripe.Billing.MeterUpdateParams; changes: string[] }
  | { type: 'feature.create'; key: string; params: Stripe.Entitlements.FeatureCreateParams }
  | { type: 'feature.update'; key: string; id: string; params: Stripe.Entitlements.FeatureUpdateParams; changes: string[] }
  | { type: 'product.create'; key: string; params: Stripe.ProductCreateParams }
  | { type: 'product.update'; key: string; id: string; params: Stripe.ProductUpdateParams; changes: string[] }
  | { type: 'price.create'; key: string; plan: string; params: PriceParams }
  | { type: 'price.replace'; key: string; plan: string; oldId: string; params: PriceParams; changes: string[] }
  | { type: 'product_feature.attach'; key: string; plan: string; feature: string }

/**
 * The diff between the catalog and Stripe.
 */
export interface SyncPlan {
  actions: SyncAction[]
  /** Objects already in sync, by kind */
  unchanged: { meters: number; features: number; products: number; prices: number }
}

/**
 * A one-line description of an action, for `--dry-run` and progress output.
 */
export function describeAction(action: SyncAction): string {
  switch (action.type) {
    case 'meter.create':
      return `create meter "${action.key}" (event ${action.params.event_name}, ${action.params.default_aggregation.formula})`
    case 'meter.update':
      return `update meter "${action.key}": ${action.changes.join(', ')}`
    case 'feature.create':
      return `create entitlement feature "${action.key}"`
    case 'feature.update':
      return `update entitlement feature "${action.key}": ${action.changes.join(', ')}`
    case 'product.create':
      return `create product for plan "${action.key}"`
    case 'product.update':
      return `update product of plan "${action.key}": ${action.changes.join(', ')}`
    case 'price.create':
      return `create price "${action.key}" (${describePrice(action.params)})`
    case 'price.replace':
      return `replace price "${action.key}" (${action.changes.join(', ')}); the old price is archived, the lookup key moves`
    case 'product_feature.attach':
      return `attach feature "${action.feature}" to the product of plan "${action.plan}"`
  }
}

function describePrice(params: PriceParams) {
  const count = params.recurring?.interval_count ?? 1
  const interval = params.recurring ? `/${count > 1 ? `${count} ` : ''}${params.recurring.interval}` : ''
  if (params.unit_amount !== undefined) return `${params.unit_amount} ${params.currency}${interval}`
  return `${params.billing_scheme === 'tiered' ? `${params.tiers_mode} tiers` : 'metered'} ${params.currency}${interval}`
}

/**
 * Stripe meters aggregate by sum, count or last. Locally aggregated `max` and `unique_count` are
 * reported as the running value of the billing period, so Stripe keeps the `last` one.
 */
function meterFormula(meter: MeterDefinition): 'sum' | 'count' | 'last' {
  if (meter.aggregation === 'sum' || meter.aggregation === 'count') return 'sum'
  return 'last'
}

async function listAll<T>(list: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = []
  for await (const item of list) items.push(item)
  return items
}

/**
 * Makes Stripe match the catalog: meters, entitlement features, one product per plan with its
 * features, and prices identified by lookup key. Idempotent (a second run finds nothing to do);
 * never deletes: a changed price is replaced by a new one that takes over the lookup key
 * (`transfer_lookup_key`), and the old one is archived. Every change is audited.
 */
export class CatalogSync {
  #manager: BillingManager

  constructor(manager: BillingManager) {
    this.#manager = manager
  }

  /**
   * Reads Stripe and computes the actions needed, without writing anything.
   */
  async plan(): Promise<SyncPlan> {
    const config = this.#manager.config
    return this.#manager.stripe.call(async (stripe) => {
      const decimal = (value: string) => (stripe.constructor as any).Decimal?.from?.(value) ?? value
      const actions: SyncAction[] = []
      const unchanged = { meters: 0, features: 0, products: 0, prices: 0 }

      /**
       * Meters, matched by event name
       */
      const meters = await listAll(stripe.billing.meters.list({ limit: 100 }))
      for (const [key, meter] of Object.entries(config.meters)) {
        const live = meters.find((candidate) => candidate.event_name === meter.eventName)
        if (!live) {
          actions.push({
            type: 'meter.create',
            key,
            params: {
              display_name: meter.name,
              event_name: meter.eventName,
              default_aggregation: { formula: meterFormula(meter) },
              customer_mapping: { type: 'by_id', event_payload_key: 'stripe_customer_id' },
              value_settings: { event_payload_key: 'value' },
            },
          })
        } else if (live.display_name !== meter.name) {
          actions.push({ type: 'meter.update', key, id: live.id, params: { display_name: meter.name }, changes: [`name "${live.display_name}" → "${meter.name}"`] })
        } else {
          unchanged.meters++
        }
      }

      /**
       * Entitlement features, matched by lookup key
       */
      const features = await listAll(stripe.entitlements.features.list({ limit: 100 }))
      for (const [key, feature] of Object.entries(config.features)) {
        const name = feature.description ?? key
        const live = features.find((candidate) => candidate.lookup_key === key)
        if (!live) actions.push({ type: 'feature.create', key, params: { lookup_key: key, name } })
        else if (live.name !== name || !live.active) {
          actions.push({ type: 'feature.update', key, id: live.id, params: { name, active: true }, changes: [`name "${live.name}" → "${name}"`] })
        } else unchanged.features++
      }

      /**
       * Products, matched by plan metadata
       */
      const products = await listAll(stripe.products.list({ limit: 100 }))
      const lookupKeys = Object.values(config.plans).flatMap((plan) => [
        ...plan.prices.map((price) => price.lookupKey),
        ...plan.usagePrices.flatMap((price) => usageIntervals(plan).map((interval) => usageLookupKey(plan, price, interval))),
      ])
      const livePrices: Stripe.Price[] = []
      for (let index = 0; index < lookupKeys.length; index += 10) {
        const page = await stripe.prices.list({ lookup_keys: lookupKeys.slice(index, index + 10), limit: 100, expand: ['data.tiers'] })
        livePrices.push(...page.data)
      }

      for (const plan of Object.values(config.plans)) {
        if (plan.free) continue
        const product = products.find((candidate) => candidate.metadata?.[PLAN_METADATA_KEY] === plan.key)
        const productParams = { name: plan.name, description: plan.description ?? undefined }
        if (!product) {
          actions.push({
            type: 'product.create',
            key: plan.key,
            params: { ...productParams, metadata: { [PLAN_METADATA_KEY]: plan.key } },
          })
        } else {
          const changes: string[] = []
          if (product.name !== plan.name) changes.push(`name "${product.name}" → "${plan.name}"`)
          if ((product.description ?? null) !== (plan.description ?? null)) changes.push('description')
          if (!product.active) changes.push('reactivate')
          /**
           * A cleared description is sent as '' (Stripe's way to unset it): undefined would be dropped
           * and the same update planned forever
           */
          if (changes.length) {
            actions.push({ type: 'product.update', key: plan.key, id: product.id, params: { ...productParams, description: plan.description ?? '', active: true }, changes })
          }
          else unchanged.products++
        }

        const wanted = planPriceParams(plan, decimal)
        for (const params of wanted) {
          const live = livePrices.find((candidate) => candidate.lookup_key === params.lookup_key)
          if (!live) {
            actions.push({ type: 'price.create', key: params.lookup_key!, plan: plan.key, params })
            continue
          }
          /**
           * A usage price must bill the meter the catalog names (null when that meter is created in this run)
           */
          const meterId = params.meterKey ? (meters.find((candidate) => candidate.event_name === config.meters[params.meterKey!].eventName)?.id ?? null) : undefined
          const changes = priceChanges(live, params, product?.id ?? null, meterId)
          if (!live.active) changes.push('reactivate')
          if (changes.length) actions.push({ type: 'price.replace', key: params.lookup_key!, plan: plan.key, oldId: live.id, params, changes })
          else unchanged.prices++
        }

        /**
         * Features the plan grants, attached to its product (Stripe Entitlements)
         */
        const attached = product ? await listAll(stripe.products.listFeatures(product.id, { limit: 100 })) : []
        for (const [feature, value] of Object.entries(plan.features)) {
          if (value === false || value === 0) continue
          if (attached.some((item) => item.entitlement_feature.lookup_key === feature)) continue
          actions.push({ type: 'product_feature.attach', key: `${plan.key}:${feature}`, plan: plan.key, feature })
        }
      }
      return { actions, unchanged }
    })
  }

  /**
   * Applies a plan, calling `onProgress` after each action. Each action is audited; POSTs carry
   * deterministic idempotency keys so a rerun after a crash does not create duplicates.
   */
  async apply(plan: SyncPlan, options: { actor?: AuditActor; onProgress?: (action: SyncAction, index: number) => void } = {}) {
    const actor = options.actor ?? actors.system()
    return this.#manager.stripe.call(async (stripe) => {
      const meterIds = new Map<string, string>()
      const featureIds = new Map<string, string>()
      const productIds = new Map<string, string>()
      const needsLookup = plan.actions.some((action) => action.type === 'price.create' || action.type === 'price.replace' || action.type === 'product_feature.attach')
      if (needsLookup) {
        for (const meter of await listAll(stripe.billing.meters.list({ limit: 100 }))) {
          const key = Object.entries(this.#manager.config.meters).find(([, definition]) => definition.eventName === meter.event_name)?.[0]
          if (key) meterIds.set(key, meter.id)
        }
        for (const feature of await listAll(stripe.entitlements.features.list({ limit: 100 }))) featureIds.set(feature.lookup_key, feature.id)
        for (const product of await listAll(stripe.products.list({ limit: 100 }))) {
          const key = product.metadata?.[PLAN_METADATA_KEY]
          if (key) productIds.set(key, product.id)
        }
      }
      const key = (action: SyncAction) => ({ idempotencyKey: StripeGateway.idempotencyKey(`sync.${action.type}`, action.key, action) })

      for (const [index, action] of plan.actions.entries()) {
        let result: { id: string } | null = null
        switch (action.type) {
          case 'meter.create':
            result = await stripe.billing.meters.create(action.params, key(action))
            meterIds.set(action.key, result.id)
            break
          case 'meter.update':
            result = await stripe.billing.meters.update(action.id, action.params)
            break
          case 'feature.create':
            result = await stripe.entitlements.features.create(action.params, key(action))
            featureIds.set(action.key, result.id)
            break
          case 'feature.update':
            result = await stripe.entitlements.features.update(action.id, action.params)
            break
          case 'product.create':
            result = await stripe.products.create(action.params, key(action))
            productIds.set(action.key, result.id)
            break
          case 'product.update':
            result = await stripe.products.update(action.id, action.params)
            break
          case 'price.create':
          case 'price.replace': {
            const { meterKey, ...params } = action.params
            const body: Stripe.PriceCreateParams = { ...params, product: productIds.get(action.plan)! }
            if (meterKey) body.recurring = { ...body.recurring!, meter: meterIds.get(meterKey) }
            if (action.type === 'price.replace') body.transfer_lookup_key = true
            result = await stripe.prices.create(body, key(action))
            if (action.type === 'price.replace') await stripe.prices.update(action.oldId, { active: false })
            break
          }
          case 'product_feature.attach':
            result = await stripe.products.createFeature(productIds.get(action.plan)!, { entitlement_feature: featureIds.get(action.feature)! }, key(action))
            break
        }
        await this.#manager.audit.record({
          action: `catalog.${action.type}`,
          actor,
          subject: { type: action.type.split('.')[0], id: result?.id ?? null },
          after: { key: action.key, ...('changes' in action ? { changes: action.changes } : {}) },
          metadata: 'oldId' in action ? { archived: action.oldId } : null,
        })
        debug('sync %s', describeAction(action))
        options.onProgress?.(action, index)
      }
      /**
       * This process resolves the new prices from now on (other processes drop theirs when Stripe
       * rejects an archived price, or when their cache expires)
       */
      if (plan.actions.length) this.#manager.prices.clear()
      return { applied: plan.actions.length }
    })
  }
}
