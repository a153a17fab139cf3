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

function checkNode(value: unknown, node: ParamNode, name: string) {
  if (node === 1 || value === null || value === undefined) return
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    const s = String(value)
    if (s === '') return
    if (node === 'b' && s !== 'true' && s !== 'false') {
      throw invalidRequest(`Invalid boolean: ${s}`, { param: name })
    }
    if (Array.isArray(node) && !node.includes(s)) {
      throw invalidRequest(`Invalid ${name}: must be one of ${describeEnum(node)}`, { param: name })
    }
    return
  }
  if (Array.isArray(value)) {
    value.forEach((element, index) => checkNode(element, node, `${name}[${index}]`))
    return
  }
  const entries = Object.entries(value as Obj)
  if (node === 0 || node === 'b' || Array.isArray(node)) {
    if (entries.length) throw unknownParameter(`${name}[${entries[0][0]}]`)
    return
  }
  const children = node as { readonly [key: string]: ParamNode }
  for (const [key, child] of entries) {
    if (!Object.hasOwn(children, key)) throw unknownParameter(`${name}[${key}]`)
    checkNode(child, children[key], `${name}[${key}]`)
  }
}

/**
 * Rejects parameters the endpoint does not declare (`parameter_unknown`, at any depth), values outside
 * closed enums, malformed booleans and missing required top-level parameters (`parameter_missing`).
 */
export function validateParams(params: Obj, schema: EndpointParams, extraAllowed: readonly string[] = []) {
  for (const [key, value] of Object.entries(params)) {
    if (extraAllowed.includes(key)) continue
    if (!Object.hasOwn(schema.params, key)) throw unknownParameter(key)
    checkNode(value, schema.params[key], key)
  }
  for (const key of schema.required) {
    if (params[key] === undefined) throw missingParameter(key)
  }
}
