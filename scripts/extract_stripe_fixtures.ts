/**
 * Regenerates the two committed, generated modules of the loopback Stripe fake:
 *
 * - `src/testing/stripe_fake/fixtures.ts`: the subset of Stripe's published fixture objects
 *   (stripe/openapi `fixtures3.json`, MIT) the fake clones to build the objects it returns;
 * - `src/testing/stripe_fake/params_schema.ts`: for every endpoint the fake serves, the tree of
 *   parameters the installed `stripe` SDK declares (`Stripe.CustomerCreateParams`, ...), read with the
 *   TypeScript compiler API. The fake rejects anything outside it with `parameter_unknown`.
 *
 * Usage (Node >= 24 strips the types): `node scripts/extract_stripe_fixtures.ts [path/to/fixtures3.json]`
 * The fixtures path defaults to `$STRIPE_FIXTURES` or `../shared/stripe/fixtures3.json` next to the repo.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const outDir = join(root, 'src/testing/stripe_fake')

/**
 * Fixture objects the fake uses, by their key in `fixtures3.json#/resources`.
 */
const FIXTURE_NAMES = [
  'billing.meter',
  'billing.meter_event',
  'billing.meter_event_adjustment',
  'billing.meter_event_summary',
  'billing_portal.session',
  'checkout.session',
  'coupon',
  'customer',
  'customer_balance_transaction',
  'deleted_customer',
  'deleted_product_feature',
  'deleted_tax_id',
  'discount',
  'entitlements.active_entitlement',
  'entitlements.active_entitlement_summary',
  'entitlements.feature',
  'event',
  'invoice',
  'invoice_payment',
  'item',
  'line_item',
  'payment_intent',
  'payment_method',
  'price',
  'product',
  'product_feature',
  'promotion_code',
  'setup_intent',
  'subscription',
  'subscription_item',
  'tax_id',
]

/**
 * SDK parameter interfaces (as `Stripe.<name>`) the fake validates requests against.
 */
const PARAM_TYPES = [
  'CustomerCreateParams',
  'CustomerRetrieveParams',
  'CustomerUpdateParams',
  'CustomerListParams',
  'CustomerDeleteParams',
  'CustomerSearchParams',
  'CustomerCreateTaxIdParams',
  'CustomerRetrieveTaxIdParams',
  'CustomerListTaxIdsParams',
  'CustomerDeleteTaxIdParams',
  'CustomerListPaymentMethodsParams',
  'CustomerCreateBalanceTransactionParams',
  'CustomerListBalanceTransactionsParams',
  'ProductCreateParams',
  'ProductRetrieveParams',
  'ProductUpdateParams',
  'ProductListParams',
  'ProductSearchParams',
  'ProductCreateFeatureParams',
  'ProductListFeaturesParams',
  'ProductRetrieveFeatureParams',
  'ProductDeleteFeatureParams',
  'PriceCreateParams',
  'PriceRetrieveParams',
  'PriceUpdateParams',
  'PriceListParams',
  'PriceSearchParams',
  'CouponCreateParams',
  'CouponRetrieveParams',
  'CouponListParams',
  'PromotionCodeCreateParams',
  'PromotionCodeRetrieveParams',
  'PromotionCodeListParams',
  'PaymentMethodCreateParams',
  'PaymentMethodRetrieveParams',
  'PaymentMethodListParams',
  'PaymentMethodAttachParams',
  'PaymentMethodDetachParams',
  'SubscriptionCreateParams',
  'SubscriptionRetrieveParams',
  'SubscriptionUpdateParams',
  'SubscriptionListParams',
  'SubscriptionSearchParams',
  'SubscriptionCancelParams',
  'SubscriptionResumeParams',
  'InvoiceRetrieveParams',
  'InvoiceListParams',
  'InvoiceSearchParams',
  'InvoiceCreatePreviewParams',
  'InvoiceFinalizeInvoiceParams',
  'InvoicePayParams',
  'InvoiceVoidInvoiceParams',
  'InvoiceListLineItemsParams',
  'PaymentIntentRetrieveParams',
  'EventRetrieveParams',
  'EventListParams',
  'Checkout.SessionCreateParams',
  'Checkout.SessionRetrieveParams',
  'Checkout.SessionListParams',
  'Checkout.SessionExpireParams',
  'Checkout.SessionListLineItemsParams',
  'BillingPortal.SessionCreateParams',
  'Billing.MeterCreateParams',
  'Billing.MeterRetrieveParams',
  'Billing.MeterUpdateParams',
  'Billing.MeterListParams',
  'Billing.MeterDeactivateParams',
  'Billing.MeterReactivateParams',
  'Billing.MeterListEventSummariesParams',
  'Billing.MeterEventCreateParams',
  'Billing.MeterEventAdjustmentCreateParams',
  'Entitlements.FeatureCreateParams',
  'Entitlements.FeatureRetrieveParams',
  'Entitlements.FeatureUpdateParams',
  'Entitlements.FeatureListParams',
  'Entitlements.ActiveEntitlementListParams',
]

function banner(what: string) {
  return [
    '/*',
    ` * GENERATED FILE, do not edit: run \`node scripts/extract_stripe_fixtures.ts\` to regenerate.`,
    ` * ${what}`,
    ' */',
    '',
  ].join('\n')
}

/**
 * Writes fixtures.ts with the chosen fixture objects.
 */
function writeFixtures(fixturesPath: string) {
  const all = JSON.parse(readFileSync(fixturesPath, 'utf8')).resources as Record<string, unknown>
  const picked: Record<string, unknown> = {}
  for (const name of FIXTURE_NAMES) {
    if (!(name in all)) throw new Error(`fixtures3.json has no resources["${name}"]`)
    picked[name] = all[name]
  }
  const body = [
    banner(
      'Source: stripe/openapi `fixtures3.json` (https://github.com/stripe/openapi, MIT License, (c) Stripe, Inc.).\n' +
        ' * Stripe\'s own example objects; the loopback Stripe fake deep-clones them and overrides ids and fields,\n' +
        ' * so the objects it returns have Stripe\'s real shapes.'
    ),
    `/**\n * Names of the fixture objects available in {@link FIXTURES}.\n */`,
    `export type FixtureName =\n${FIXTURE_NAMES.map((n) => `  | '${n}'`).join('\n')}`,
    '',
    `/**\n * Stripe's fixture objects, by resource name (read only: clone before use).\n */`,
    `export const FIXTURES: Readonly<Record<FixtureName, Readonly<Record<string, unknown>>>> = ${JSON.stringify(picked, null, 2)}`,
    '',
  ].join('\n')
  writeFileSync(join(outDir, 'fixtures.ts'), body)
  return FIXTURE_NAMES.length
}

type ParamNode = 0 | 1 | 'b' | string[] | { [key: string]: ParamNode }

/**
 * Reads the SDK's parameter interfaces with the TypeScript compiler and writes params_schema.ts.
 */
function writeParamsSchema() {
  const virtualFile = join(root, '__stripe_param_types__.ts')
  const virtualSource =
    `import Stripe from 'stripe'\n` + PARAM_TYPES.map((name, i) => `export type P${i} = Stripe.${name}`).join('\n') + '\n'
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ESNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  }
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  const fileExists = host.fileExists.bind(host)
  const readFile = host.readFile.bind(host)
  host.getSourceFile = (fileName, languageVersion, ...rest) =>
    fileName === virtualFile
      ? ts.createSourceFile(fileName, virtualSource, languageVersion, true)
      : getSourceFile(fileName, languageVersion, ...rest)
  host.fileExists = (fileName) => fileName === virtualFile || fileExists(fileName)
  host.readFile = (fileName) => (fileName === virtualFile ? virtualSource : readFile(fileName))

  const program = ts.createProgram([virtualFile], options, host)
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(virtualFile)!
  const diagnostics = ts.getPreEmitDiagnostics(program, source)
  if (diagnostics.length) {
    throw new Error(ts.formatDiagnostics(diagnostics, { ...host, getNewLine: () => '\n', getCanonicalFileName: (f) => f }))
  }

  const SCALAR = ts.TypeFlags.StringLike | ts.TypeFlags.NumberLike | ts.TypeFlags.BigIntLike | ts.TypeFlags.ESSymbolLike
  const NOTHING = ts.TypeFlags.Null | ts.TypeFlags.Undefined | ts.TypeFlags.Void | ts.TypeFlags.Never

  function merge(a: ParamNode | undefined, b: ParamNode): ParamNode {
    if (a === undefined) return b
    if (a === 1 || b === 1) return 1
    const aObj = typeof a === 'object' && !Array.isArray(a)
    const bObj = typeof b === 'object' && !Array.isArray(b)
    if (aObj && bObj) {
      const out = { ...(a as Record<string, ParamNode>) }
      for (const [k, v] of Object.entries(b as Record<string, ParamNode>)) out[k] = merge(out[k], v)
      return out
    }
    if (aObj) return a
    if (bObj) return b
    if (Array.isArray(a) && Array.isArray(b)) return [...new Set([...a, ...b])]
    return 0
  }
  // (merging two object nodes keeps the `$r` of either: the union accepts what both require)

  /**
   * 0 scalar, 'b' boolean, string[] closed enum, 1 free-form hash, object nested parameters. Modifiers
   * (keys that are never parameter names): `$r` the required children of an object, `$a` an array of
   * the node, `$e` may be sent as '' (the SDK's `Emptyable`: unsets it). A non-object node with a
   * modifier is wrapped as `{ $n: node, ... }`.
   */
  function nodeFor(type: ts.Type, depth: number): ParamNode {
    if (depth > 12) return 1
    const parts = type.isUnion() ? type.types : [type]
    let objectNode: ParamNode | undefined
    let arrayNode: ParamNode | undefined
    let nonArray = false
    let emptyable = false
    const literals: string[] = []
    let openScalar = false
    let booleans = 0
    for (const part of parts) {
      if (part.flags & NOTHING) continue
      if (part.flags & ts.TypeFlags.BooleanLiteral || part.flags & ts.TypeFlags.Boolean) {
        booleans++
        nonArray = true
        continue
      }
      if (part.flags & ts.TypeFlags.StringLiteral) {
        const value = (part as ts.StringLiteralType).value
        if (value !== '') literals.push(value)
        else emptyable = true
        if (value !== '') nonArray = true
        continue
      }
      if (part.flags & SCALAR) {
        openScalar = true
        nonArray = true
        continue
      }
      if (part.isIntersection() && part.types.some((t) => t.flags & SCALAR)) {
        // `OtherString` (string & Record<never, never>): the SDK keeps its enums open, the fake
        // validates against the values this SDK knows.
        if (!parts.some((t) => t.flags & ts.TypeFlags.StringLiteral)) openScalar = true
        nonArray = true
        continue
      }
      if (checker.isArrayType(part) || checker.isTupleType(part)) {
        const [element] = checker.getTypeArguments(part as ts.TypeReference)
        arrayNode = arrayNode === undefined ? nodeFor(element, depth + 1) : merge(arrayNode, nodeFor(element, depth + 1))
        continue
      }
      if (part.flags & ts.TypeFlags.Object || part.isIntersection()) {
        nonArray = true
        const names = [part.getSymbol()?.getName(), part.aliasSymbol?.getName()]
        if (part.isIntersection()) names.push(...part.types.map((t) => t.getSymbol()?.getName()))
        if (names.some((n) => n && ['Date', 'Decimal', 'DecimalImpl', 'Buffer', 'Uint8Array'].includes(n))) {
          openScalar = true
          continue
        }
        const props = checker.getPropertiesOfType(part)
        const indexed = checker.getIndexInfosOfType(part).length > 0
        if (indexed || props.length === 0) {
          objectNode = merge(objectNode, 1)
          continue
        }
        const node: Record<string, ParamNode> = {}
        const required: string[] = []
        for (const prop of props) {
          node[prop.getName()] = nodeFor(checker.getTypeOfSymbol(prop), depth + 1)
          if (!(prop.flags & ts.SymbolFlags.Optional)) required.push(prop.getName())
        }
        if (required.length) node.$r = required.sort()
        objectNode = merge(objectNode, node)
        continue
      }
      openScalar = true
      nonArray = true
    }
    let base: ParamNode
    if (objectNode !== undefined) base = objectNode
    else if (openScalar) base = 0
    else if (literals.length && !booleans) base = literals.sort()
    else if (booleans && !literals.length) base = 'b'
    else base = 0
    /**
     * Only an array: the node is its element, marked as an array
     */
    const onlyArray = arrayNode !== undefined && !nonArray
    if (onlyArray) base = arrayNode!
    else if (arrayNode !== undefined) base = merge(base, arrayNode)
    if (!onlyArray && !emptyable) return base
    const flags: Record<string, ParamNode> = {}
    if (onlyArray) flags.$a = 1
    if (emptyable) flags.$e = 1
    if (typeof base === 'object' && !Array.isArray(base)) return { ...(base as Record<string, ParamNode>), ...flags }
    return { $n: base, ...flags }
  }

  const schema: Record<string, { required: string[]; params: Record<string, ParamNode> }> = {}
  let index = 0
  ts.forEachChild(source, (node) => {
    if (!ts.isTypeAliasDeclaration(node)) return
    const name = PARAM_TYPES[index++]
    const type = checker.getTypeFromTypeNode(node.type)
    const params: Record<string, ParamNode> = {}
    const required: string[] = []
    for (const prop of checker.getPropertiesOfType(type)) {
      params[prop.getName()] = nodeFor(checker.getTypeOfSymbol(prop), 1)
      if (!(prop.flags & ts.SymbolFlags.Optional)) required.push(prop.getName())
    }
    schema[name] = { required, params }
  })
  if (index !== PARAM_TYPES.length) throw new Error('could not read every parameter type')

  const sdkVersion = JSON.parse(readFileSync(join(root, 'node_modules/stripe/package.json'), 'utf8')).version
  const lines = Object.entries(schema).map(([name, entry]) => `  ${JSON.stringify(name)}: ${JSON.stringify(entry)},`)
  const body = [
    banner(
      `Source: the parameter types of the \`stripe\` npm package ${sdkVersion} (MIT, (c) Stripe, Inc.).\n` +
        ' * Node: 0 any scalar, "b" boolean, string[] closed enum, 1 free-form hash (metadata), object nested params;\n' +
        ' * modifiers: $r required children, $a array of the node, $e may be \'\' (unset), $n the node they wrap.'
    ),
    `/**\n * One node of a parameter tree.\n */`,
    `export type ParamNode = 0 | 1 | 'b' | readonly string[] | { readonly [key: string]: ParamNode }`,
    '',
    `/**\n * Parameters of one endpoint: its top-level required names and the tree of accepted names.\n */`,
    `export interface EndpointParams {\n  required: readonly string[]\n  params: { readonly [key: string]: ParamNode }\n}`,
    '',
    `/**\n * SDK version the schema was read from.\n */`,
    `export const PARAMS_SDK_VERSION = ${JSON.stringify(sdkVersion)}`,
    '',
    `/**\n * Accepted parameters of every endpoint the fake serves, by SDK type name.\n */`,
    `export const PARAMS: Readonly<Record<string, EndpointParams>> = {`,
    ...lines,
    '}',
    '',
  ].join('\n')
  writeFileSync(join(outDir, 'params_schema.ts'), body)
  return Object.keys(schema).length
}

const fixturesPath = resolve(
  process.argv[2] ?? process.env.STRIPE_FIXTURES ?? join(root, '../shared/stripe/fixtures3.json')
)
const fixtures = writeFixtures(fixturesPath)
const endpoints = writeParamsSchema()
console.log(`wrote ${fixtures} fixtures from ${fixturesPath} and ${endpoints} endpoint schemas to ${outDir}`)
