/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { KEY_ID } from '../audit/audit_key.ts'
import { STRIPE_MAX_LENGTH } from '../stripe/stripe_limits.ts'
import { InvalidConfigException } from '../errors.ts'
import { usageIntervals, usageLookupKey } from './catalog.ts'
import type {
  BillingConfigInput,
  BillingInterval,
  FeatureDefinition,
  PriceTierDefinition,
  ResolvedBillingConfig,
  ResolvedPlan,
  ResolvedRecurringPrice,
  ResolvedUsagePrice,
  UsagePriceDefinition,
} from '../types.ts'

const INTERVALS: BillingInterval[] = ['day', 'week', 'month', 'year']
const AGGREGATIONS = ['sum', 'count', 'max', 'last', 'unique_count']
const TAX_BEHAVIORS = ['exclusive', 'inclusive', 'unspecified']
const STATUS_GRANTS = ['none', 'plan']
const KEY_PATTERN = /^[a-z][a-z0-9_]{0,63}$/
const LOOKUP_KEY_PATTERN = /^[A-Za-z0-9_.:-]{1,200}$/
const DECIMAL_PATTERN = /^\d+(\.\d{1,12})?$/

/**
 * Throws `E_BILLING_INVALID_CONFIG` naming `key`.
 */
function fail(key: string, problem: string): never {
  throw new InvalidConfigException(key, problem)
}

function isRecord(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function record(value: unknown, key: string): Record<string, any> {
  if (value === undefined) return {}
  if (!isRecord(value)) fail(key, 'must be an object')
  return value
}

function checkKeys(value: Record<string, unknown>, key: string, allowed: string[]) {
  for (const name of Object.keys(value)) {
    if (!allowed.includes(name)) fail(`${key}.${name}`, `unknown option (expected one of ${allowed.join(', ')})`)
  }
}

function nonNegativeInteger(value: unknown, key: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    fail(key, 'must be an integer amount in minor units (e.g. 1999 for 19.99)')
  }
  if (value < 0) fail(key, 'must not be negative')
  return value
}

function positiveInteger(value: unknown, key: string): number {
  const number = nonNegativeInteger(value, key)
  if (number === 0) fail(key, 'must be greater than zero')
  return number
}

function decimalAmount(value: unknown, key: string): string {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) fail(key, 'must be an integer or a decimal string such as "0.25"')
    if (value < 0) fail(key, 'must not be negative')
    return String(value)
  }
  if (typeof value !== 'string') fail(key, 'must be an integer or a decimal string such as "0.25"')
  if (value.startsWith('-')) fail(key, 'must not be negative')
  if (!DECIMAL_PATTERN.test(value)) fail(key, 'must be a decimal string with at most 12 decimals')
  return value
}

function oneOf<T extends string>(value: unknown, key: string, allowed: readonly string[], fallback: T): T {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !allowed.includes(value)) fail(key, `must be one of ${allowed.join(', ')}`)
  return value as T
}

function currency(value: unknown, key: string, fallback: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !/^[a-zA-Z]{3}$/.test(value)) fail(key, 'must be a 3-letter ISO currency code')
  return value.toLowerCase()
}

function catalogKey(name: string, key: string) {
  if (!KEY_PATTERN.test(name)) fail(key, 'keys must be snake_case: a lower-case letter, then letters, digits or _')
}

/**
 * A map keyed by names from config or input: no prototype, so `name in map` and `map[name]` are
 * true only for declared names (never `constructor`, `toString` or `__proto__`).
 */
function keyMap<T>(): Record<string, T> {
  return Object.create(null)
}

function normalizeFeatures(input: unknown, meters: Record<string, unknown>) {
  const features: Record<string, FeatureDefinition> = keyMap()
  for (const [name, definition] of Object.entries(record(input, 'features'))) {
    const key = `features.${name}`
    catalogKey(name, key)
    const feature = record(definition, key)
    switch (feature.type) {
      case 'boolean':
        checkKeys(feature, key, ['type', 'description'])
        break
      case 'limit':
        checkKeys(feature, key, ['type', 'description', 'combine'])
        oneOf(feature.combine, `${key}.combine`, ['sum', 'max'], 'sum')
        break
      case 'metered':
        checkKeys(feature, key, ['type', 'description', 'meter'])
        if (typeof feature.meter !== 'string' || feature.meter.length === 0) {
          fail(`${key}.meter`, 'a metered feature needs the key of a meter')
        }
        if (!(feature.meter in meters)) fail(`${key}.meter`, `unknown meter "${feature.meter}"`)
        break
      default:
        fail(`${key}.type`, 'must be one of boolean, limit, metered')
    }
    features[name] = { ...feature } as FeatureDefinition
  }
  return features
}

function normalizeMeters(input: unknown) {
  const meters: ResolvedBillingConfig['meters'] = keyMap()
  const eventNames = new Map<string, string>()
  for (const [name, definition] of Object.entries(record(input, 'meters'))) {
    const key = `meters.${name}`
    catalogKey(name, key)
    const meter = record(definition, key)
    checkKeys(meter, key, ['name', 'eventName', 'unit', 'aggregation', 'uniqueProperty'])
    if (typeof meter.name !== 'string' || !meter.name) fail(`${key}.name`, 'is required')
    if (meter.name.length > STRIPE_MAX_LENGTH.meterDisplayName) fail(`${key}.name`, `must be at most ${STRIPE_MAX_LENGTH.meterDisplayName} characters (the Stripe meter's display_name)`)
    const aggregation = oneOf(meter.aggregation, `${key}.aggregation`, AGGREGATIONS, '' as any)
    if (!aggregation) fail(`${key}.aggregation`, `is required (one of ${AGGREGATIONS.join(', ')})`)
    if (aggregation === 'unique_count' && typeof meter.uniqueProperty !== 'string') {
      fail(`${key}.uniqueProperty`, 'unique_count meters need the property to count')
    }
    const eventName = meter.eventName ?? name
    if (typeof eventName !== 'string' || !/^[A-Za-z0-9_.:-]{1,100}$/.test(eventName)) {
      fail(`${key}.eventName`, 'must be 1-100 letters, digits, _ . : -')
    }
    if (eventNames.has(eventName)) fail(`${key}.eventName`, `duplicate event name "${eventName}" (also ${eventNames.get(eventName)})`)
    eventNames.set(eventName, key)
    meters[name] = { ...meter, name: meter.name, aggregation, eventName } as any
  }
  return meters
}

function normalizeTiers(input: unknown, key: string): PriceTierDefinition[] {
  if (!Array.isArray(input) || input.length === 0) fail(key, 'must be a non-empty array of tiers')
  let previous = 0
  return input.map((tier, index) => {
    const tierKey = `${key}.${index}`
    const value = record(tier, tierKey)
    checkKeys(value, tierKey, ['upTo', 'unitAmount', 'flatAmount'])
    const last = index === input.length - 1
    if (last) {
      if (value.upTo !== 'inf') fail(`${tierKey}.upTo`, 'the last tier must go up to "inf"')
    } else {
      const upTo = positiveInteger(value.upTo, `${tierKey}.upTo`)
      if (upTo <= previous) fail(`${tierKey}.upTo`, 'tiers must be in increasing order')
      previous = upTo
    }
    if (value.unitAmount === undefined && value.flatAmount === undefined) {
      fail(tierKey, 'a tier needs unitAmount, flatAmount or both')
    }
    return {
      upTo: value.upTo,
      ...(value.unitAmount !== undefined ? { unitAmount: decimalAmount(value.unitAmount, `${tierKey}.unitAmount`) } : {}),
      ...(value.flatAmount !== undefined ? { flatAmount: nonNegativeInteger(value.flatAmount, `${tierKey}.flatAmount`) } : {}),
    }
  })
}

function normalizeUsagePrice(
  input: unknown,
  key: string,
  planKey: string,
  meter: string,
  defaultCurrency: string
): ResolvedUsagePrice {
  const price = record(input, key)
  const common = {
    meter,
    currency: currency(price.currency, `${key}.currency`, defaultCurrency),
    lookupKey: price.lookupKey ?? `${planKey}_${meter}`,
    taxBehavior: oneOf(price.taxBehavior, `${key}.taxBehavior`, TAX_BEHAVIORS, 'exclusive' as const),
  }
  const shared = ['model', 'currency', 'lookupKey', 'taxBehavior']
  switch (price.model) {
    case 'per_unit':
      checkKeys(price, key, [...shared, 'unitAmount'])
      return { ...common, model: 'per_unit', unitAmount: decimalAmount(price.unitAmount, `${key}.unitAmount`) }
    case 'package':
      checkKeys(price, key, [...shared, 'amount', 'packageSize', 'round'])
      return {
        ...common,
        model: 'package',
        amount: nonNegativeInteger(price.amount, `${key}.amount`),
        packageSize: positiveInteger(price.packageSize, `${key}.packageSize`),
        round: oneOf(price.round, `${key}.round`, ['up', 'down'], 'up' as const),
      }
    case 'graduated':
    case 'volume':
      checkKeys(price, key, [...shared, 'tiers'])
      return { ...common, model: price.model, tiers: normalizeTiers(price.tiers, `${key}.tiers`) }
    default:
      fail(`${key}.model`, 'must be one of per_unit, package, graduated, volume')
  }
}

function normalizeFeatureValue(
  value: unknown,
  key: string,
  feature: FeatureDefinition | undefined,
  featureName: string
) {
  if (!feature) fail(key, `unknown feature "${featureName}" (declare it under "features")`)
  if (feature.type === 'boolean') {
    if (typeof value !== 'boolean') fail(key, `"${featureName}" is a boolean feature: use true or false`)
    return value
  }
  if (value === 'unlimited') return value
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(key, `"${featureName}" is a ${feature.type} feature: use a non-negative integer or "unlimited"`)
  }
  return value
}

function normalizePlans(
  input: unknown,
  features: Record<string, FeatureDefinition>,
  meters: Record<string, unknown>,
  defaultCurrency: string
) {
  const plans: Record<string, ResolvedPlan> = keyMap()
  const lookupKeys = new Map<string, string>()
  const claimLookupKey = (lookupKey: unknown, key: string) => {
    if (typeof lookupKey !== 'string' || !LOOKUP_KEY_PATTERN.test(lookupKey)) {
      fail(key, 'must be 1-200 letters, digits, _ . : -')
    }
    const owner = lookupKeys.get(lookupKey)
    if (owner) fail(key, `duplicate lookup key "${lookupKey}" (also used by ${owner})`)
    lookupKeys.set(lookupKey, key)
  }

  for (const [planKey, definition] of Object.entries(record(input, 'plans'))) {
    const key = `plans.${planKey}`
    catalogKey(planKey, key)
    const plan = record(definition, key)
    checkKeys(plan, key, ['name', 'description', 'addOn', 'prices', 'usagePrices', 'features'])
    if (typeof plan.name !== 'string' || !plan.name) fail(`${key}.name`, 'is required')

    const prices: ResolvedRecurringPrice[] = []
    for (const [interval, priceInput] of Object.entries(record(plan.prices, `${key}.prices`))) {
      const priceKey = `${key}.prices.${interval}`
      if (!INTERVALS.includes(interval as BillingInterval)) fail(priceKey, `interval must be one of ${INTERVALS.join(', ')}`)
      const price = record(priceInput, priceKey)
      checkKeys(price, priceKey, ['amount', 'currency', 'lookupKey', 'intervalCount', 'taxBehavior', 'trialDays'])
      const lookupKey = price.lookupKey ?? `${planKey}_${interval}`
      claimLookupKey(lookupKey, `${priceKey}.lookupKey`)
      prices.push({
        interval: interval as BillingInterval,
        amount: nonNegativeInteger(price.amount, `${priceKey}.amount`),
        currency: currency(price.currency, `${priceKey}.currency`, defaultCurrency),
        lookupKey,
        intervalCount: price.intervalCount === undefined ? 1 : positiveInteger(price.intervalCount, `${priceKey}.intervalCount`),
        taxBehavior: oneOf(price.taxBehavior, `${priceKey}.taxBehavior`, TAX_BEHAVIORS, 'exclusive' as const),
        trialDays: price.trialDays === undefined ? null : nonNegativeInteger(price.trialDays, `${priceKey}.trialDays`),
      })
    }

    const usagePrices: ResolvedUsagePrice[] = []
    for (const [meter, priceInput] of Object.entries(record(plan.usagePrices, `${key}.usagePrices`))) {
      const priceKey = `${key}.usagePrices.${meter}`
      if (!(meter in meters)) fail(priceKey, `unknown meter "${meter}" (declare it under "meters")`)
      const price = normalizeUsagePrice(priceInput as UsagePriceDefinition, priceKey, planKey, meter, defaultCurrency)
      claimLookupKey(price.lookupKey, `${priceKey}.lookupKey`)
      usagePrices.push(price)
    }

    const planFeatures: ResolvedPlan['features'] = keyMap()
    for (const [featureName, value] of Object.entries(record(plan.features, `${key}.features`))) {
      planFeatures[featureName] = normalizeFeatureValue(value, `${key}.features.${featureName}`, features[featureName], featureName)
    }

    const resolvedPrices = { prices, usagePrices }
    for (const price of usagePrices) {
      for (const interval of usageIntervals(resolvedPrices as ResolvedPlan)) {
        const derived = usageLookupKey(resolvedPrices as ResolvedPlan, price, interval)
        if (derived !== price.lookupKey) claimLookupKey(derived, `${key}.usagePrices.${price.meter} (${interval} price)`)
      }
    }

    plans[planKey] = {
      key: planKey,
      name: plan.name,
      description: plan.description ?? null,
      addOn: plan.addOn === true,
      prices,
      usagePrices,
      features: planFeatures,
      free: prices.length === 0 && usagePrices.length === 0,
    }
  }
  return plans
}

function normalizeStripe(input: unknown): ResolvedBillingConfig['stripe'] {
  const stripe = record(input, 'stripe')
  checkKeys(stripe, 'stripe', [
    'secretKey',
    'webhookSecret',
    'publishableKey',
    'apiVersion',
    'maxNetworkRetries',
    'timeout',
    'host',
    'port',
    'protocol',
    'allowTestKeys',
  ])
  const secretKey = stripe.secretKey || undefined
  if (secretKey !== undefined && (typeof secretKey !== 'string' || !/^(sk|rk)_(test|live)_/.test(secretKey))) {
    fail('stripe.secretKey', 'must be a Stripe secret or restricted key (sk_live_..., sk_test_..., rk_...)')
  }
  const secretsInput = stripe.webhookSecret === undefined || stripe.webhookSecret === '' ? [] : stripe.webhookSecret
  const webhookSecrets: string[] = (Array.isArray(secretsInput) ? secretsInput : [secretsInput]).flatMap((secret: unknown) =>
    typeof secret === 'string' ? secret.split(',').map((part) => part.trim()).filter(Boolean) : fail('stripe.webhookSecret', 'must be a string or an array of strings')
  )
  for (const secret of webhookSecrets) {
    if (!secret.startsWith('whsec_')) fail('stripe.webhookSecret', 'webhook signing secrets start with "whsec_"')
  }
  const { webhookSecret: _omit, secretKey: _secret, ...rest } = stripe
  const resolved = {
    ...rest,
    maxNetworkRetries: stripe.maxNetworkRetries === undefined ? 2 : nonNegativeInteger(stripe.maxNetworkRetries, 'stripe.maxNetworkRetries'),
    timeout: stripe.timeout === undefined ? 20_000 : positiveInteger(stripe.timeout, 'stripe.timeout'),
    protocol: oneOf(stripe.protocol, 'stripe.protocol', ['http', 'https'], 'https' as const),
    allowTestKeys: optionalBoolean(stripe.allowTestKeys, 'stripe.allowTestKeys'),
  } as ResolvedBillingConfig['stripe']
  /**
   * Secrets are readable but not enumerable: `JSON.stringify(config)`, `console.log(config)` and
   * spreads of the config never carry them
   */
  Object.defineProperty(resolved, 'secretKey', { value: secretKey, enumerable: false })
  Object.defineProperty(resolved, 'webhookSecrets', { value: webhookSecrets, enumerable: false })
  return resolved
}

function optionalBoolean(value: unknown, key: string): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') fail(key, 'must be a boolean')
  return value as boolean
}

function atMost(value: number, max: number, key: string): number {
  if (value > max) fail(key, `must be at most ${max}`)
  return value
}

function normalizeEntitlements(input: unknown): ResolvedBillingConfig['entitlements'] {
  const entitlements = record(input, 'entitlements')
  checkKeys(entitlements, 'entitlements', ['source', 'redirectTo', 'cacheStore'])
  const redirectTo = entitlements.redirectTo ?? null
  if (redirectTo !== null && (typeof redirectTo !== 'string' || !redirectTo.startsWith('/'))) {
    fail('entitlements.redirectTo', 'must be a path starting with "/"')
  }
  const cacheStore = entitlements.cacheStore ?? null
  if (cacheStore !== null && (typeof cacheStore !== 'string' || !/^[A-Za-z0-9_.-]{1,100}$/.test(cacheStore))) {
    fail('entitlements.cacheStore', 'must be the name of an @adonisjs/cache store (letters, digits, "_", "-", ".")')
  }
  return { source: oneOf(entitlements.source, 'entitlements.source', ['catalog', 'stripe'], 'catalog' as const), redirectTo, cacheStore }
}

/**
 * The audit chain's keys: `keyId` (stored on each row) and `key` (default: the app key, read at boot),
 * plus `previousKeys` by id after a rotation. Secrets are kept out of `JSON.stringify(config)`.
 */
function normalizeAudit(value: unknown): ResolvedBillingConfig['audit'] {
  const audit = record(value, 'audit')
  checkKeys(audit, 'audit', ['keyId', 'key', 'previousKeys', 'legacyRows'])
  const keyId = audit.keyId === undefined ? 'app' : audit.keyId
  if (typeof keyId !== 'string' || !KEY_ID.test(keyId)) fail('audit.keyId', 'must be 1–32 letters, digits, "_" or "-"')
  const secret = (input: unknown, key: string) => {
    const text = typeof input === 'string' ? input : typeof (input as any)?.release === 'function' ? (input as any).release() : input
    if (typeof text !== 'string' || text.length < 16) fail(key, 'must be a secret of at least 16 characters')
    return text as string
  }
  const key = audit.key === undefined || audit.key === null ? null : secret(audit.key, 'audit.key')
  const previous = record(audit.previousKeys, 'audit.previousKeys')
  const previousKeys = keyMap<string>()
  for (const [id, input] of Object.entries(previous)) {
    if (!KEY_ID.test(id)) fail(`audit.previousKeys.${id}`, 'key ids are 1–32 letters, digits, "_" or "-"')
    if (id === keyId) fail(`audit.previousKeys.${id}`, 'is the current key id')
    previousKeys[id] = secret(input, `audit.previousKeys.${id}`)
  }
  const legacyRows = audit.legacyRows === undefined ? 0 : nonNegativeInteger(audit.legacyRows, 'audit.legacyRows')
  const resolved = { keyId, legacyRows } as ResolvedBillingConfig['audit']
  Object.defineProperty(resolved, 'key', { value: key, enumerable: false })
  Object.defineProperty(resolved, 'previousKeys', { value: previousKeys, enumerable: false })
  return resolved
}

/**
 * Validates `config/billing.ts` and fills in defaults. Every problem raises `E_BILLING_INVALID_CONFIG`
 * with the dotted key at fault, so a broken catalog fails boot with a message that points at the line.
 */
export function normalizeConfig(input: BillingConfigInput): ResolvedBillingConfig {
  const config = record(input, 'config')
  checkKeys(config, 'config', ['connection', 'currency', 'stripe', 'features', 'meters', 'plans', 'policy', 'tax', 'webhooks', 'routes', 'entitlements', 'usage', 'audit'])
  const usage = record(config.usage, 'usage')
  checkKeys(usage, 'usage', ['reportEverySeconds', 'transport', 'maxBatch', 'maxAgeDays', 'maxFutureSeconds', 'maxPropertiesBytes'])
  const limit = (key: string, fallback: number, max: number) => {
    const value = usage[key] === undefined ? fallback : positiveInteger(usage[key], `usage.${key}`)
    if (value > max) fail(`usage.${key}`, `must be at most ${max}`)
    return value
  }
  const defaultCurrency = currency(config.currency, 'currency', 'usd')
  const meters = normalizeMeters(config.meters)
  const features = normalizeFeatures(config.features, meters)
  const plans = normalizePlans(config.plans, features, meters, defaultCurrency)

  const policy = record(config.policy, 'policy')
  checkKeys(policy, 'policy', ['pastDueGraceDays', 'incomplete', 'unpaid', 'paused', 'cacheTtlSeconds'])
  const tax = record(config.tax, 'tax')
  checkKeys(tax, 'tax', ['automatic', 'collectTaxIds', 'collectAddress'])
  const webhooks = record(config.webhooks, 'webhooks')
  checkKeys(webhooks, 'webhooks', ['tolerance', 'maxBodyBytes', 'refetch', 'allowUnsigned', 'retentionDays'])
  const routes = record(config.routes, 'routes')
  checkKeys(routes, 'routes', ['prefix'])
  if (routes.prefix !== undefined && (typeof routes.prefix !== 'string' || !routes.prefix.startsWith('/'))) {
    fail('routes.prefix', 'must be a path starting with "/"')
  }
  if (config.connection !== undefined && (typeof config.connection !== 'string' || !config.connection)) {
    fail('connection', 'must be the name of a Lucid connection')
  }

  return {
    connection: config.connection,
    currency: defaultCurrency,
    stripe: normalizeStripe(config.stripe),
    features,
    meters,
    plans,
    policy: {
      pastDueGraceDays: policy.pastDueGraceDays === undefined ? 0 : nonNegativeInteger(policy.pastDueGraceDays, 'policy.pastDueGraceDays'),
      incomplete: oneOf(policy.incomplete, 'policy.incomplete', STATUS_GRANTS, 'none' as const),
      unpaid: oneOf(policy.unpaid, 'policy.unpaid', STATUS_GRANTS, 'none' as const),
      paused: oneOf(policy.paused, 'policy.paused', STATUS_GRANTS, 'none' as const),
      cacheTtlSeconds: policy.cacheTtlSeconds === undefined ? 30 : nonNegativeInteger(policy.cacheTtlSeconds, 'policy.cacheTtlSeconds'),
    },
    tax: {
      automatic: tax.automatic ?? false,
      collectTaxIds: tax.collectTaxIds ?? false,
      collectAddress: oneOf(tax.collectAddress, 'tax.collectAddress', ['auto', 'required'], 'auto' as const),
    },
    webhooks: {
      tolerance: webhooks.tolerance === undefined ? 300 : atMost(positiveInteger(webhooks.tolerance, 'webhooks.tolerance'), 3600, 'webhooks.tolerance'),
      maxBodyBytes: webhooks.maxBodyBytes === undefined ? 1024 * 1024 : positiveInteger(webhooks.maxBodyBytes, 'webhooks.maxBodyBytes'),
      refetch: optionalBoolean(webhooks.refetch, 'webhooks.refetch'),
      allowUnsigned: optionalBoolean(webhooks.allowUnsigned, 'webhooks.allowUnsigned'),
      retentionDays: webhooks.retentionDays === undefined || webhooks.retentionDays === null ? null : positiveInteger(webhooks.retentionDays, 'webhooks.retentionDays'),
    },
    routes: { prefix: (routes.prefix ?? '/billing').replace(/\/+$/, '') || '/billing' },
    entitlements: normalizeEntitlements(config.entitlements),
    audit: normalizeAudit(config.audit),
    usage: {
      reportEverySeconds: usage.reportEverySeconds === undefined ? null : positiveInteger(usage.reportEverySeconds, 'usage.reportEverySeconds'),
      transport: oneOf(usage.transport, 'usage.transport', ['v2', 'v1'], 'v2' as const),
      maxBatch: limit('maxBatch', 1000, 10_000),
      maxAgeDays: limit('maxAgeDays', 35, 35),
      maxFutureSeconds: limit('maxFutureSeconds', 300, 300),
      maxPropertiesBytes: limit('maxPropertiesBytes', 4096, 65_536),
    },
  }
}

/**
 * Secrets the package cannot run without in production. Checked when the app boots in production,
 * not at config load, so `node ace` commands in development work without Stripe.
 */
export function assertProductionSecrets(config: ResolvedBillingConfig) {
  if (!config.stripe.secretKey) fail('stripe.secretKey', 'is required in production (set STRIPE_SECRET_KEY)')
  if (/^(sk|rk)_test_/.test(config.stripe.secretKey) && !config.stripe.allowTestKeys) {
    fail('stripe.secretKey', 'is a test-mode key in production (set stripe.allowTestKeys: true for a staging app that bills in test mode)')
  }
  if (config.stripe.protocol === 'http') fail('stripe.protocol', 'must be https in production (plain http would send the secret key in clear)')
  if (config.webhooks.allowUnsigned) fail('webhooks.allowUnsigned', 'must be false in production (every webhook must be signed)')
  if (config.stripe.webhookSecrets.length === 0) {
    fail('stripe.webhookSecret', 'is required in production (set STRIPE_WEBHOOK_SECRET)')
  }
}
