/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { invalidRequest, missingParameter, unknownParameter } from './errors.ts'
import type { EndpointParams, ParamNode } from './params_schema.ts'
import type { Obj } from './util.ts'

const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor'])

/**
 * Splits `a[b][0][]` into `['a', 'b', '0', '']`.
 */
function splitKey(key: string): string[] {
  const open = key.indexOf('[')
  if (open <= 0 || !key.endsWith(']')) return [key]
  const segments = [key.slice(0, open)]
  const rest = key.slice(open)
  const re = /\[([^\]]*)\]/g
  let consumed = 0
  for (let match = re.exec(rest); match; match = re.exec(rest)) {
    if (match.index !== consumed) return [key]
    segments.push(match[1])
    consumed = match.index + match[0].length
  }
  return consumed === rest.length ? segments : [key]
}

function decode(component: string): string {
  try {
    return decodeURIComponent(component.replace(/\+/g, ' '))
  } catch {
    return component
  }
}

/**
 * Turns objects whose keys are all array indices into arrays (ordered by index).
 */
function arrayify(value: unknown): unknown {
  if (!value || typeof value !== 'object') return value
  const entries = Object.entries(value as Obj)
  for (const [k, v] of entries) (value as Obj)[k] = arrayify(v)
  if (entries.length && entries.every(([k]) => /^\d+$/.test(k))) {
    return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, v]) => v)
  }
  return value
}

/**
 * Parses Stripe's form encoding (`application/x-www-form-urlencoded` bodies and query strings) with
 * bracket notation into nested objects and arrays: `metadata[k]=v`, `items[0][price]=p`, `expand[]=x`.
 * Values stay strings.
 */
export function parseForm(input: string): Obj {
  const root: Obj = {}
  if (!input) return root
  for (const pair of input.split('&')) {
    if (!pair) continue
    const eq = pair.indexOf('=')
    const key = decode(eq === -1 ? pair : pair.slice(0, eq))
    const value = decode(eq === -1 ? '' : pair.slice(eq + 1))
    const segments = splitKey(key)
    let node: Obj = root
    for (let i = 0; i < segments.length; i++) {
      let segment = segments[i]
      if (FORBIDDEN_KEYS.has(segment)) throw invalidRequest(`Invalid parameter name: ${key}`, { param: key })
      if (segment === '') segment = String(Object.keys(node).length)
      if (i === segments.length - 1) {
        if (node[segment] === undefined || typeof node[segment] !== 'object') node[segment] = value
      } else {
        if (node[segment] === undefined || typeof node[segment] !== 'object') node[segment] = {}
        node = node[segment]
      }
    }
  }
  return arrayify(root) as Obj
}

function describeEnum(values: readonly string[]) {
  return values.length > 1 ? `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}` : values[0]
}

/**
 * Stripe's limits on metadata: keys, key length, value length.
 */
const METADATA_MAX_KEYS = 50
const METADATA_MAX_KEY_LENGTH = 40
const METADATA_MAX_VALUE_LENGTH = 500

/**
 * Longest string Stripe takes where its API definitions set no tighter limit.
 */
const DEFAULT_MAX_LENGTH = 5000

/**
 * A node's modifiers (`$a` array, `$e` emptyable, `$r` required children) and the node they apply to.
 */
function unwrap(node: ParamNode): { inner: ParamNode; array: boolean; emptyable: boolean; required: readonly string[] } {
  if (typeof node !== 'object' || Array.isArray(node)) return { inner: node, array: false, emptyable: false, required: [] }
  const record = node as { readonly [key: string]: ParamNode }
  const array = record.$a === 1
  const emptyable = record.$e === 1
  if (Object.hasOwn(record, '$n')) return { inner: record.$n, array, emptyable, required: [] }
  const children: Record<string, ParamNode> = {}
  for (const [key, child] of Object.entries(record)) if (!key.startsWith('$')) children[key] = child
  return { inner: children, array, emptyable, required: (record.$r as readonly string[] | undefined) ?? [] }
}

function emptyRefused(name: string) {
  return invalidRequest(
    `You passed an empty string for '${name}'. We assume empty values are an attempt to unset a parameter; however '${name}' cannot be unset. You should remove '${name}' from your request or supply a non-empty value.`,
    { param: name }
  )
}

function checkMetadata(value: unknown, name: string) {
  if (typeof value === 'string') {
    if (value !== '') throw invalidRequest(`Invalid object`, { param: name })
    return
  }
  if (Array.isArray(value) || !value || typeof value !== 'object') throw invalidRequest('Invalid object', { param: name })
  const entries = Object.entries(value as Obj)
  if (entries.length > METADATA_MAX_KEYS) throw invalidRequest(`Invalid ${name}: metadata can have up to ${METADATA_MAX_KEYS} keys`, { param: name })
  for (const [key, item] of entries) {
    if (key.length > METADATA_MAX_KEY_LENGTH) throw invalidRequest(`Invalid ${name}: keys must be at most ${METADATA_MAX_KEY_LENGTH} characters`, { param: `${name}[${key}]` })
    if (typeof item !== 'string') throw invalidRequest(`Invalid ${name}: metadata values must be strings, not nested objects or arrays`, { param: `${name}[${key}]` })
    if (item.length > METADATA_MAX_VALUE_LENGTH) throw invalidRequest(`Invalid ${name}: values must be at most ${METADATA_MAX_VALUE_LENGTH} characters`, { param: `${name}[${key}]` })
  }
}

function checkNode(value: unknown, node: ParamNode, name: string, limits: ParamLimits = {}) {
  if (value === null || value === undefined) return
  const key = name.replace(/\[\d+\]/g, '[]')
  const { inner, array, emptyable, required } = unwrap(node)
  if (inner === 1 && !array) {
    if (value === '' && emptyable) return
    if (/(^|\[)metadata\]?$/.test(name)) return checkMetadata(value, name)
    return
  }
  if (value === '') {
    /**
     * '' unsets a parameter: only where Stripe allows it (its `Emptyable` types), or as the value of a
     * plain string
     */
    if (emptyable || (inner === 0 && !array)) return
    throw emptyRefused(name)
  }
  if (array) {
    if (!Array.isArray(value)) throw invalidRequest('Invalid array', { param: name })
    const max = limits.maxItems?.[key]
    if (max !== undefined && value.length > max) throw invalidRequest(`Invalid ${name}: must have at most ${max} items`, { param: name })
    value.forEach((element, index) => checkNode(element, inner, `${name}[${index}]`, limits))
    return
  }
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    const s = String(value)
    if (typeof inner === 'object' && !Array.isArray(inner)) throw invalidRequest('Invalid object', { param: name })
    if (inner === 'b' && s !== 'true' && s !== 'false') {
      throw invalidRequest(`Invalid boolean: ${s}`, { param: name })
    }
    if (Array.isArray(inner) && !inner.includes(s)) {
      throw invalidRequest(`Invalid ${name}: must be one of ${describeEnum(inner)}`, { param: name })
    }
    const maxLength = limits.maxLength?.[key] ?? DEFAULT_MAX_LENGTH
    if (s.length > maxLength) throw invalidRequest(`Invalid ${name}: must be at most ${maxLength} characters`, { param: name })
    return
  }
  if (Array.isArray(value)) {
    /**
     * An array where Stripe takes one value (the SDK types it as a single value or a hash)
     */
    if (typeof inner !== 'object' || Array.isArray(inner)) throw invalidRequest(`Invalid ${name}: an array was passed where a single value is expected`, { param: name })
    value.forEach((element, index) => checkNode(element, node, `${name}[${index}]`, limits))
    return
  }
  const entries = Object.entries(value as Obj)
  if (inner === 0 || inner === 'b' || Array.isArray(inner)) {
    if (entries.length) throw unknownParameter(`${name}[${entries[0][0]}]`)
    return
  }
  const children = inner as { readonly [key: string]: ParamNode }
  for (const [child, item] of entries) {
    if (!Object.hasOwn(children, child)) throw unknownParameter(`${name}[${child}]`)
    checkNode(item, children[child], `${name}[${child}]`, limits)
  }
  for (const child of required) {
    if ((value as Obj)[child] === undefined) throw missingParameter(`${name}[${child}]`)
  }
}

/**
 * Per-endpoint limits the SDK's types do not carry (Stripe's API definitions do): string lengths and
 * array sizes, by parameter path (`line_items[][price]`).
 */
export interface ParamLimits {
  maxLength?: Readonly<Record<string, number>>
  maxItems?: Readonly<Record<string, number>>
}

/**
 * Rejects parameters the endpoint does not declare (`parameter_unknown`, at any depth), values outside
 * closed enums, malformed booleans and missing required top-level parameters (`parameter_missing`).
 */
export function validateParams(params: Obj, schema: EndpointParams, extraAllowed: readonly string[] = [], limits: ParamLimits = {}) {
  for (const [key, value] of Object.entries(params)) {
    if (extraAllowed.includes(key)) continue
    if (!Object.hasOwn(schema.params, key)) throw unknownParameter(key)
    checkNode(value, schema.params[key], key, limits)
  }
  for (const key of schema.required) {
    if (params[key] === undefined) throw missingParameter(key)
  }
}
