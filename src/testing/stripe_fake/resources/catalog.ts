/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { Billing } from '../billing.ts'
import { invalidRequest, missingParameter } from '../errors.ts'
import type { Engine, Route } from '../engine.ts'
import { search } from '../search.ts'
import {
  applyMetadata,
  arr,
  bool,
  decimal,
  int,
  matchesRange,
  nullableStr,
  oneOf,
  PICO,
  picoToDecimal,
  randomToken,
  str,
  toPico,
  type Obj,
} from '../util.ts'

/**
 * Names a parameter nested under `prefix` (`price_data` + `recurring[interval]` gives
 * `price_data[recurring][interval]`).
 */
function nested(prefix: string) {
  return (name: string) => {
    if (!prefix) return name
    const i = name.indexOf('[')
    return i === -1 ? `${prefix}[${name}]` : `${prefix}[${name.slice(0, i)}]${name.slice(i)}`
  }
}

/**
 * Creates and stores a product (`POST /v1/products`, `product_data`).
 */
export function createProduct(engine: Engine, params: Obj, prefix = ''): Obj {
  const p = nested(prefix)
  const name = str(params.name, p('name'))
  if (!name) throw missingParameter(p('name'))
  const id = str(params.id, p('id')) ?? engine.id('prod_', 14)
  if (engine.store.has(id)) {
    throw invalidRequest('Product already exists.', { param: p('id'), code: 'resource_already_exists' })
  }
  const now = engine.now()
  const product = engine.fixture('product')
  Object.assign(product, {
    id,
    object: 'product',
    active: bool(params.active, p('active')) ?? true,
    created: now,
    default_price: null,
    description: nullableStr(params.description, p('description')) ?? null,
    images: (arr(params.images) ?? []).map(String),
    livemode: false,
    marketing_features: ((arr(params.marketing_features) ?? []) as Obj[]).map((f) => ({ name: f?.name ?? null })),
    metadata: applyMetadata({}, params.metadata, p('metadata')),
    name,
    package_dimensions: null,
    shippable: bool(params.shippable, p('shippable')) ?? null,
    statement_descriptor: nullableStr(params.statement_descriptor, p('statement_descriptor')) ?? null,
    tax_code: nullableStr(params.tax_code, p('tax_code')) ?? null,
    type: 'service',
    unit_label: nullableStr(params.unit_label, p('unit_label')) ?? null,
    updated: now,
    url: nullableStr(params.url, p('url')) ?? null,
  })
  engine.save(product)
  engine.emit('product.created', product)
  return product
}

/**
 * Reads an amount given either as an integer (`unit_amount`) or a decimal string in minor units
 * (`unit_amount_decimal`, up to 12 decimals): `amount` is set only when it is a whole number.
 */
function amountPair(amount: unknown, decimalValue: unknown, param: string): { amount: number | null; decimal: string | null } {
  if (amount !== undefined && amount !== '') {
    const value = int(amount, param)!
    if (value < 0) throw invalidRequest('This value must be greater than or equal to 0.', { param })
    return { amount: value, decimal: String(value) }
  }
  if (decimalValue !== undefined && decimalValue !== '') {
    const pico = toPico(decimalValue as string, `${param}_decimal`)
    const text = picoToDecimal(pico)
    return { amount: pico % PICO === 0n ? Number(pico / PICO) : null, decimal: text }
  }
  return { amount: null, decimal: null }
}

/**
 * Moves `lookupKey` to `target` when `transfer` is set, or rejects a duplicate like Stripe.
 */
function claimLookupKey(engine: Engine, lookupKey: string, target: string | null, transfer: boolean, param: string) {
  const owner = engine.all('price').find((p) => p.lookup_key === lookupKey && p.id !== target)
  if (!owner) return
  if (!transfer) {
    throw invalidRequest(
      `A price (\`${owner.id}\`) already uses that lookup key. Use \`transfer_lookup_key=true\` to transfer it to this price.`,
      { param }
    )
  }
  engine.change(owner, (p) => (p.lookup_key = null), 'price.updated')
}

/**
 * Creates and stores a price (`POST /v1/prices` and inline `price_data`).
 */
export function createPrice(engine: Engine, params: Obj, param = '', inline = false): Obj {
  const p = nested(param)
  const currency = str(params.currency, p('currency'))?.toLowerCase()
  if (!currency) throw missingParameter(p('currency'))
  let productId: string
  if (params.product !== undefined && params.product !== '') {
    productId = engine.require(params.product, 'product', 'product', p('product'), 400).id
  } else if (params.product_data) {
    productId = createProduct(engine, params.product_data, p('product_data')).id
  } else {
    throw missingParameter(p('product'))
  }
  const billingScheme = oneOf(params.billing_scheme, p('billing_scheme'), ['per_unit', 'tiered']) ?? 'per_unit'
  let unitAmount: number | null = null
  let unitAmountDecimal: string | null = null
  let tiers: Obj[] | null = null
  let tiersMode: string | null = null
  if (params.unit_amount !== undefined && params.unit_amount_decimal !== undefined) {
    throw invalidRequest('You may only specify one of these parameters: unit_amount, unit_amount_decimal.', { param: p('unit_amount_decimal') })
  }
  if (billingScheme === 'tiered') {
    tiersMode = oneOf(params.tiers_mode, p('tiers_mode'), ['graduated', 'volume']) ?? null
    if (!tiersMode) throw missingParameter(p('tiers_mode'))
    const raw = (arr(params.tiers) ?? []) as Obj[]
    if (!raw.length) throw missingParameter(p('tiers'))
    tiers = raw.map((t, i) => {
      const tp = `${p('tiers')}[${i}]`
      const upTo = t?.up_to === 'inf' ? null : int(t?.up_to, `${tp}[up_to]`)
      if (upTo === undefined) throw missingParameter(`${tp}[up_to]`)
      const unit = amountPair(t?.unit_amount, t?.unit_amount_decimal, `${tp}[unit_amount]`)
      const flat = amountPair(t?.flat_amount, t?.flat_amount_decimal, `${tp}[flat_amount]`)
      return {
        flat_amount: flat.amount,
        flat_amount_decimal: flat.decimal,
        unit_amount: unit.amount,
        unit_amount_decimal: unit.decimal,
        up_to: upTo,
      }
    })
    if (tiers[tiers.length - 1].up_to !== null) {
      throw invalidRequest('The last tier must have `up_to` set to `inf`.', { param: p('tiers') })
    }
  } else if (params.unit_amount !== undefined || params.unit_amount_decimal !== undefined) {
    const unit = amountPair(params.unit_amount, params.unit_amount_decimal, p('unit_amount'))
    unitAmount = unit.amount
    unitAmountDecimal = unit.decimal
  } else if (!params.custom_unit_amount) {
    throw missingParameter(p('unit_amount'))
  }
  let recurring: Obj | null = null
  if (params.recurring) {
    const r = params.recurring as Obj
    const interval = oneOf(r.interval, p('recurring[interval]'), ['day', 'week', 'month', 'year'])
    if (!interval) throw missingParameter(p('recurring[interval]'))
    const usageType = oneOf(r.usage_type, p('recurring[usage_type]'), ['licensed', 'metered']) ?? 'licensed'
    let meter: string | null = null
    if (r.meter !== undefined && r.meter !== '') {
      meter = engine.require(r.meter, 'billing.meter', 'billing.meter', p('recurring[meter]'), 400).id
    }
    if (usageType === 'metered' && !meter) {
      throw invalidRequest('Metered prices must be backed by a meter: set `recurring[meter]`.', { param: p('recurring[meter]') })
    }
    recurring = {
      interval,
      interval_count: int(r.interval_count, p('recurring[interval_count]')) ?? 1,
      meter,
      trial_period_days: int(r.trial_period_days, p('recurring[trial_period_days]')) ?? null,
      usage_type: usageType,
    }
  }
  const lookupKey = inline ? null : nullableStr(params.lookup_key, 'lookup_key') ?? null
  if (lookupKey) claimLookupKey(engine, lookupKey, null, bool(params.transfer_lookup_key, 'transfer_lookup_key') ?? false, 'lookup_key')
  const price = engine.fixture('price')
  Object.assign(price, {
    id: engine.id('price_'),
    object: 'price',
    active: inline ? false : bool(params.active, 'active') ?? true,
    billing_scheme: billingScheme,
    created: engine.now(),
    currency,
    custom_unit_amount: params.custom_unit_amount
      ? {
          maximum: int(params.custom_unit_amount.maximum, p('custom_unit_amount[maximum]')) ?? null,
          minimum: int(params.custom_unit_amount.minimum, p('custom_unit_amount[minimum]')) ?? null,
          preset: int(params.custom_unit_amount.preset, p('custom_unit_amount[preset]')) ?? null,
        }
      : null,
    livemode: false,
    lookup_key: lookupKey,
    metadata: applyMetadata({}, params.metadata, p('metadata')),
    nickname: nullableStr(params.nickname, p('nickname')) ?? null,
    product: productId,
    recurring,
    tax_behavior: oneOf(params.tax_behavior, p('tax_behavior'), ['exclusive', 'inclusive', 'unspecified']) ?? 'unspecified',
    tiers_mode: tiersMode,
    transform_quantity: params.transform_quantity
      ? {
          divide_by: int(params.transform_quantity.divide_by, p('transform_quantity[divide_by]'))!,
          round: oneOf(params.transform_quantity.round, p('transform_quantity[round]'), ['up', 'down'])!,
        }
      : null,
    type: recurring ? 'recurring' : 'one_time',
    unit_amount: unitAmount,
    unit_amount_decimal: unitAmountDecimal,
  })
  // `tiers` is includable: it only shows with `expand[]=tiers` (see the `price.tiers` virtual field).
  if (tiers) engine.meta(price.id).tiers = tiers
  delete price.tiers
  engine.save(price)
  engine.emit('price.created', price)
  return price
}

/**
 * Routes of products, prices, coupons, promotion codes and entitlement features.
 */
export function catalogRoutes(engine: Engine, billing: Billing): Route[] {
  engine.virtuals.set('price.tiers', (price) => structuredClone(engine.meta(price.id).tiers))
  const requireProduct = (id: unknown) => engine.require(id, 'product', 'product')
  const requirePrice = (id: unknown) => engine.require(id, 'price', 'price')

  const updateProduct = (product: Obj, params: Obj) => {
    if (params.default_price !== undefined && params.default_price !== '') {
      const price = engine.require(params.default_price, 'price', 'price', 'default_price', 400)
      if (price.product !== product.id) {
        throw invalidRequest('The default price must belong to this product.', { param: 'default_price' })
      }
    }
    engine.change(
      product,
      (p) => {
        if (params.active !== undefined) p.active = bool(params.active, 'active')
        if (params.name !== undefined) p.name = str(params.name, 'name')
        if (params.description !== undefined) p.description = nullableStr(params.description, 'description')
        if (params.default_price !== undefined) p.default_price = params.default_price || null
        if (params.metadata !== undefined) p.metadata = applyMetadata(p.metadata, params.metadata)
        if (params.images !== undefined) p.images = (arr(params.images) ?? []).map(String)
        if (params.marketing_features !== undefined) {
          p.marketing_features = ((arr(params.marketing_features) ?? []) as Obj[]).map((f) => ({ name: f?.name ?? null }))
        }
        for (const key of ['statement_descriptor', 'tax_code', 'unit_label', 'url']) {
          if (params[key] !== undefined) p[key] = nullableStr(params[key], key)
        }
        if (params.shippable !== undefined) p.shippable = bool(params.shippable, 'shippable') ?? null
        p.updated = engine.now()
      },
      'product.updated'
    )
    return engine.render(product)
  }

  const createCoupon = (params: Obj) => {
    const percentOff = decimal(params.percent_off, 'percent_off')
    const amountOff = int(params.amount_off, 'amount_off')
    if (percentOff === undefined && amountOff === undefined) throw missingParameter('percent_off')
    if (percentOff !== undefined && amountOff !== undefined) {
      throw invalidRequest('You may only specify one of these parameters: amount_off, percent_off.', { param: 'amount_off' })
    }
    if (percentOff !== undefined && (percentOff <= 0 || percentOff > 100)) {
      throw invalidRequest('Invalid percent_off: must be greater than 0 and at most 100', { param: 'percent_off' })
    }
    const currency = str(params.currency, 'currency')?.toLowerCase()
    if (amountOff !== undefined && !currency) throw missingParameter('currency')
    const duration = oneOf(params.duration, 'duration', ['forever', 'once', 'repeating']) ?? 'once'
    const months = int(params.duration_in_months, 'duration_in_months') ?? null
    if (duration === 'repeating' && !months) throw missingParameter('duration_in_months')
    const id = str(params.id, 'id') ?? randomToken(8)
    if (engine.find(id, 'coupon')) throw invalidRequest('Coupon already exists.', { param: 'id', code: 'resource_already_exists' })
    const coupon = engine.fixture('coupon')
    Object.assign(coupon, {
      id,
      object: 'coupon',
      amount_off: amountOff ?? null,
      applies_to: params.applies_to ? { products: (arr(params.applies_to.products) ?? []).map(String) } : undefined,
      created: engine.now(),
      currency: amountOff !== undefined ? currency : null,
      duration,
      duration_in_months: duration === 'repeating' ? months : null,
      livemode: false,
      max_redemptions: int(params.max_redemptions, 'max_redemptions') ?? null,
      metadata: applyMetadata({}, params.metadata),
      name: str(params.name, 'name') ?? null,
      percent_off: percentOff ?? null,
      redeem_by: int(params.redeem_by, 'redeem_by') ?? null,
      times_redeemed: 0,
      valid: true,
    })
    if (coupon.applies_to === undefined) delete coupon.applies_to
    engine.save(coupon)
    engine.emit('coupon.created', coupon)
    return engine.render(coupon)
  }

  const createPromotionCode = (params: Obj) => {
    const promotion = params.promotion as Obj
    if (!promotion?.coupon) throw missingParameter('promotion[coupon]')
    const coupon = engine.require(promotion.coupon, 'coupon', 'coupon', 'promotion[coupon]', 400)
    const code = str(params.code, 'code') ?? randomToken(8).toUpperCase()
    if (engine.all('promotion_code').some((p) => p.active && p.code.toLowerCase() === code.toLowerCase())) {
      throw invalidRequest(`An active promotion code with \`code: ${code}\` already exists.`, { param: 'code' })
    }
    const customer = params.customer ? engine.require(params.customer, 'customer', 'customer', 'customer', 400).id : null
    const promo = engine.fixture('promotion_code')
    Object.assign(promo, {
      id: engine.id('promo_'),
      object: 'promotion_code',
      active: bool(params.active, 'active') ?? true,
      code,
      created: engine.now(),
      customer,
      expires_at: int(params.expires_at, 'expires_at') ?? null,
      livemode: false,
      max_redemptions: int(params.max_redemptions, 'max_redemptions') ?? null,
      metadata: applyMetadata({}, params.metadata),
      promotion: { coupon: coupon.id, type: 'coupon' },
      restrictions: {
        first_time_transaction: bool(params.restrictions?.first_time_transaction, 'restrictions[first_time_transaction]') ?? false,
        minimum_amount: int(params.restrictions?.minimum_amount, 'restrictions[minimum_amount]') ?? null,
        minimum_amount_currency: str(params.restrictions?.minimum_amount_currency, 'restrictions[minimum_amount_currency]') ?? null,
      },
      times_redeemed: 0,
      customer_account: null,
    })
    engine.save(promo)
    engine.emit('promotion_code.created', promo)
    return engine.render(promo)
  }

  const createFeature = (params: Obj) => {
    const lookupKey = str(params.lookup_key, 'lookup_key')!
    if (engine.all('entitlements.feature').some((f) => f.lookup_key === lookupKey)) {
      throw invalidRequest(`A feature with lookup_key \`${lookupKey}\` already exists.`, { param: 'lookup_key' })
    }
    const feature = engine.fixture('entitlements.feature')
    Object.assign(feature, {
      id: engine.id('feat_test_61', 20),
      object: 'entitlements.feature',
      active: true,
      livemode: false,
      lookup_key: lookupKey,
      metadata: applyMetadata({}, params.metadata),
      name: str(params.name, 'name'),
    })
    engine.save(feature)
    return engine.render(feature)
  }

  const attachFeature = (productId: string, params: Obj) => {
    const product = requireProduct(productId)
    const feature = engine.require(params.entitlement_feature, 'entitlements.feature', 'feature', 'entitlement_feature', 400)
    const exists = engine.all('product_feature').some(
      (pf) => engine.meta(pf.id).product === product.id && pf.entitlement_feature.id === feature.id
    )
    if (exists) {
      throw invalidRequest('This feature is already attached to the product.', { param: 'entitlement_feature' })
    }
    const pf = engine.fixture('product_feature')
    Object.assign(pf, {
      id: engine.id('prodft_', 14),
      object: 'product_feature',
      entitlement_feature: engine.render(feature),
      livemode: false,
    })
    engine.meta(pf.id).product = product.id
    engine.save(pf)
    billing.syncAllEntitlements()
    return engine.render(pf)
  }

  const requireProductFeature = (productId: string, id: string) => {
    const pf = engine.find(id, 'product_feature')
    if (!pf || engine.meta(id).product !== productId) {
      throw invalidRequest(`No such product feature: '${id}'`, { param: 'id', code: 'resource_missing', status: 404 })
    }
    return pf
  }

  return [
    // Products
    {
      method: 'POST',
      path: '/v1/products',
      schema: 'ProductCreateParams',
      handler: (r) => {
        const product = createProduct(engine, r.params)
        if (r.params.default_price_data) {
          const price = createPrice(engine, { ...r.params.default_price_data, product: product.id }, 'default_price_data')
          engine.change(product, (p) => (p.default_price = price.id), null)
        }
        return engine.render(product)
      },
    },
    {
      method: 'GET',
      path: '/v1/products',
      schema: 'ProductListParams',
      handler: (r) => {
        const active = bool(r.params.active, 'active')
        const ids = arr(r.params.ids)?.map(String)
        const shippable = bool(r.params.shippable, 'shippable')
        const items = engine
          .all('product')
          .filter(
            (p) =>
              (active === undefined || p.active === active) &&
              (!ids || ids.includes(p.id)) &&
              (shippable === undefined || p.shippable === shippable) &&
              (r.params.url === undefined || p.url === r.params.url) &&
              matchesRange(p.created, r.params.created, 'created')
          )
        return engine.list(items, r.params, '/v1/products')
      },
    },
    {
      method: 'GET',
      path: '/v1/products/search',
      schema: 'ProductSearchParams',
      handler: (r) =>
        search(engine, engine.all('product'), r.params, 'products', ['active', 'created', 'description', 'metadata', 'name', 'shippable', 'url']),
    },
    { method: 'GET', path: '/v1/products/:id', schema: 'ProductRetrieveParams', handler: (r) => engine.render(requireProduct(r.ids.id)) },
    {
      method: 'POST',
      path: '/v1/products/:id',
      schema: 'ProductUpdateParams',
      handler: (r) => updateProduct(requireProduct(r.ids.id), r.params),
    },
    {
      method: 'POST',
      path: '/v1/products/:id/features',
      schema: 'ProductCreateFeatureParams',
      handler: (r) => attachFeature(r.ids.id, r.params),
    },
    {
      method: 'GET',
      path: '/v1/products/:id/features',
      schema: 'ProductListFeaturesParams',
      handler: (r) => {
        const product = requireProduct(r.ids.id)
        const items = engine.all('product_feature').filter((pf) => engine.meta(pf.id).product === product.id)
        return engine.list(items, r.params, `/v1/products/${product.id}/features`)
      },
    },
    {
      method: 'GET',
      path: '/v1/products/:product/features/:id',
      schema: 'ProductRetrieveFeatureParams',
      handler: (r) => engine.render(requireProductFeature(r.ids.product, r.ids.id)),
    },
    {
      method: 'DELETE',
      path: '/v1/products/:product/features/:id',
      schema: 'ProductDeleteFeatureParams',
      handler: (r) => {
        const pf = requireProductFeature(r.ids.product, r.ids.id)
        engine.markDeleted(pf.id)
        billing.syncAllEntitlements()
        return Object.assign(engine.fixture('deleted_product_feature'), { id: pf.id, object: 'product_feature', deleted: true })
      },
    },

    // Prices
    { method: 'POST', path: '/v1/prices', schema: 'PriceCreateParams', handler: (r) => engine.render(createPrice(engine, r.params)) },
    {
      method: 'GET',
      path: '/v1/prices',
      schema: 'PriceListParams',
      handler: (r) => {
        const active = bool(r.params.active, 'active')
        const type = oneOf(r.params.type, 'type', ['one_time', 'recurring'])
        const lookupKeys = arr(r.params.lookup_keys)?.map(String)
        const recurring = (r.params.recurring ?? {}) as Obj
        const items = engine
          .all('price')
          .filter(
            (p) =>
              (active === undefined || p.active === active) &&
              (!type || p.type === type) &&
              (!r.params.product || p.product === r.params.product) &&
              (!r.params.currency || p.currency === String(r.params.currency).toLowerCase()) &&
              (!lookupKeys || lookupKeys.includes(p.lookup_key)) &&
              (!recurring.interval || p.recurring?.interval === recurring.interval) &&
              (!recurring.usage_type || p.recurring?.usage_type === recurring.usage_type) &&
              (!recurring.meter || p.recurring?.meter === recurring.meter) &&
              matchesRange(p.created, r.params.created, 'created')
          )
        return engine.list(items, r.params, '/v1/prices')
      },
    },
    {
      method: 'GET',
      path: '/v1/prices/search',
      schema: 'PriceSearchParams',
      handler: (r) =>
        search(engine, engine.all('price'), r.params, 'prices', ['active', 'created', 'currency', 'lookup_key', 'metadata', 'product', 'type']),
    },
    { method: 'GET', path: '/v1/prices/:id', schema: 'PriceRetrieveParams', handler: (r) => engine.render(requirePrice(r.ids.id)) },
    {
      method: 'POST',
      path: '/v1/prices/:id',
      schema: 'PriceUpdateParams',
      handler: (r) => {
        const price = requirePrice(r.ids.id)
        const lookupKey = r.params.lookup_key === undefined ? undefined : nullableStr(r.params.lookup_key, 'lookup_key')
        if (lookupKey) {
          claimLookupKey(engine, lookupKey, price.id, bool(r.params.transfer_lookup_key, 'transfer_lookup_key') ?? false, 'lookup_key')
        }
        engine.change(
          price,
          (p) => {
            if (r.params.active !== undefined) p.active = bool(r.params.active, 'active')
            if (lookupKey !== undefined) p.lookup_key = lookupKey
            if (r.params.metadata !== undefined) p.metadata = applyMetadata(p.metadata, r.params.metadata)
            if (r.params.nickname !== undefined) p.nickname = nullableStr(r.params.nickname, 'nickname')
            if (r.params.tax_behavior !== undefined) {
              p.tax_behavior = oneOf(r.params.tax_behavior, 'tax_behavior', ['exclusive', 'inclusive', 'unspecified'])
            }
          },
          'price.updated'
        )
        return engine.render(price)
      },
    },

    // Coupons and promotion codes
    { method: 'POST', path: '/v1/coupons', schema: 'CouponCreateParams', handler: (r) => createCoupon(r.params) },
    {
      method: 'GET',
      path: '/v1/coupons',
      schema: 'CouponListParams',
      handler: (r) =>
        engine.list(engine.all('coupon').filter((c) => matchesRange(c.created, r.params.created, 'created')), r.params, '/v1/coupons'),
    },
    {
      method: 'GET',
      path: '/v1/coupons/:id',
      schema: 'CouponRetrieveParams',
      handler: (r) => engine.render(engine.require(r.ids.id, 'coupon', 'coupon')),
    },
    { method: 'POST', path: '/v1/promotion_codes', schema: 'PromotionCodeCreateParams', handler: (r) => createPromotionCode(r.params) },
    {
      method: 'GET',
      path: '/v1/promotion_codes',
      schema: 'PromotionCodeListParams',
      handler: (r) => {
        const active = bool(r.params.active, 'active')
        const items = engine
          .all('promotion_code')
          .filter(
            (p) =>
              (active === undefined || p.active === active) &&
              (!r.params.code || p.code.toLowerCase() === String(r.params.code).toLowerCase()) &&
              (!r.params.coupon || p.promotion.coupon === r.params.coupon) &&
              (!r.params.customer || p.customer === r.params.customer) &&
              matchesRange(p.created, r.params.created, 'created')
          )
        return engine.list(items, r.params, '/v1/promotion_codes')
      },
    },
    {
      method: 'GET',
      path: '/v1/promotion_codes/:id',
      schema: 'PromotionCodeRetrieveParams',
      handler: (r) => engine.render(engine.require(r.ids.id, 'promotion_code', 'promotion code')),
    },

    // Entitlements
    { method: 'POST', path: '/v1/entitlements/features', schema: 'Entitlements.FeatureCreateParams', handler: (r) => createFeature(r.params) },
    {
      method: 'GET',
      path: '/v1/entitlements/features',
      schema: 'Entitlements.FeatureListParams',
      handler: (r) => {
        const archived = bool(r.params.archived, 'archived')
        const items = engine
          .all('entitlements.feature')
          .filter(
            (f) =>
              (archived === undefined ? f.active : f.active === !archived) &&
              (!r.params.lookup_key || f.lookup_key === r.params.lookup_key)
          )
        return engine.list(items, r.params, '/v1/entitlements/features')
      },
    },
    {
      method: 'GET',
      path: '/v1/entitlements/features/:id',
      schema: 'Entitlements.FeatureRetrieveParams',
      handler: (r) => engine.render(engine.require(r.ids.id, 'entitlements.feature', 'feature')),
    },
    {
      method: 'POST',
      path: '/v1/entitlements/features/:id',
      schema: 'Entitlements.FeatureUpdateParams',
      handler: (r) => {
        const feature = engine.require(r.ids.id, 'entitlements.feature', 'feature')
        engine.change(
          feature,
          (f) => {
            if (r.params.active !== undefined) f.active = bool(r.params.active, 'active')
            if (r.params.name !== undefined) f.name = str(r.params.name, 'name')
            if (r.params.metadata !== undefined) f.metadata = applyMetadata(f.metadata, r.params.metadata)
          },
          null
        )
        for (const pf of engine.all('product_feature')) {
          if (pf.entitlement_feature.id === feature.id) pf.entitlement_feature = engine.render(feature)
        }
        billing.syncAllEntitlements()
        return engine.render(feature)
      },
    },
    {
      method: 'GET',
      path: '/v1/entitlements/active_entitlements',
      schema: 'Entitlements.ActiveEntitlementListParams',
      handler: (r) => {
        const customer = engine.require(r.params.customer, 'customer', 'customer', 'customer', 400)
        return engine.list(billing.activeEntitlements(customer.id), r.params, '/v1/entitlements/active_entitlements', false)
      },
    },
  ]
}
