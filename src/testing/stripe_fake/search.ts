/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { invalidRequest } from './errors.ts'
import type { Engine } from './engine.ts'
import { int, type Obj } from './util.ts'

interface Clause {
  negate: boolean
  field: string
  metadataKey: string | null
  operator: ':' | '~' | '>' | '<' | '>=' | '<='
  value: string | number | null
}

function syntaxError(query: string, detail: string) {
  return invalidRequest(`Invalid search query: ${detail} (query: ${query})`, { param: 'query' })
}

/**
 * Parses a subset of Stripe's search query language: clauses like `email:'a@b.c'`,
 * `metadata['key']:'value'`, `name~'ada'`, `created>1700000000`, `-status:'canceled'`,
 * `field:null`, joined by `AND` or by `OR` (not both, as on Stripe).
 */
export function parseSearchQuery(query: string): { clauses: Clause[]; joiner: 'AND' | 'OR' } {
  const clauses: Clause[] = []
  const joiners = new Set<string>()
  let i = 0
  const skipSpaces = () => {
    while (i < query.length && /\s/.test(query[i])) i++
  }
  const readQuoted = () => {
    const quote = query[i]
    let out = ''
    i++
    while (i < query.length && query[i] !== quote) {
      if (query[i] === '\\' && i + 1 < query.length) i++
      out += query[i++]
    }
    if (query[i] !== quote) throw syntaxError(query, 'unterminated string')
    i++
    return out
  }
  skipSpaces()
  while (i < query.length) {
    const clause: Clause = { negate: false, field: '', metadataKey: null, operator: ':', value: null }
    if (query[i] === '-') {
      clause.negate = true
      i++
    }
    const fieldMatch = /^[a-z_][a-z0-9_.]*/i.exec(query.slice(i))
    if (!fieldMatch) throw syntaxError(query, `unexpected character at position ${i}`)
    clause.field = fieldMatch[0]
    i += fieldMatch[0].length
    if (query[i] === '[') {
      i++
      if (query[i] !== "'" && query[i] !== '"') throw syntaxError(query, 'metadata keys must be quoted')
      clause.metadataKey = readQuoted()
      if (query[i] !== ']') throw syntaxError(query, 'expected ]')
      i++
    }
    const op = /^(>=|<=|:|~|>|<)/.exec(query.slice(i))
    if (!op) throw syntaxError(query, `expected an operator after ${clause.field}`)
    clause.operator = op[0] as Clause['operator']
    i += op[0].length
    if (query[i] === "'" || query[i] === '"') {
      clause.value = readQuoted()
    } else {
      const raw = /^[^\s)]+/.exec(query.slice(i))
      if (!raw) throw syntaxError(query, 'expected a value')
      i += raw[0].length
      clause.value = raw[0] === 'null' ? null : /^-?\d+(\.\d+)?$/.test(raw[0]) ? Number(raw[0]) : raw[0]
    }
    clauses.push(clause)
    skipSpaces()
    if (i >= query.length) break
    const joiner = /^(AND|OR)\b/.exec(query.slice(i))
    if (!joiner) throw syntaxError(query, `expected AND or OR at position ${i}`)
    joiners.add(joiner[0])
    i += joiner[0].length
    skipSpaces()
  }
  if (!clauses.length) throw syntaxError(query, 'empty query')
  if (joiners.size > 1) throw invalidRequest('Combining `AND` and `OR` in the same search query is not supported.', { param: 'query' })
  return { clauses, joiner: joiners.has('OR') ? 'OR' : 'AND' }
}

type Aliases = Record<string, (object: Obj) => unknown>

function matches(object: Obj, clause: Clause, aliases: Aliases): boolean {
  let actual: unknown
  if (clause.field === 'metadata') actual = clause.metadataKey === null ? undefined : object.metadata?.[clause.metadataKey]
  else if (aliases[clause.field]) actual = aliases[clause.field](object)
  else actual = clause.field.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Obj)[k] : undefined), object)
  if (actual && typeof actual === 'object' && typeof (actual as Obj).id === 'string') actual = (actual as Obj).id
  let result: boolean
  if (clause.value === null) {
    result = actual === null || actual === undefined || actual === ''
  } else if (clause.operator === ':') {
    result = actual !== null && actual !== undefined && String(actual).toLowerCase() === String(clause.value).toLowerCase()
  } else if (clause.operator === '~') {
    result = actual !== null && actual !== undefined && String(actual).toLowerCase().includes(String(clause.value).toLowerCase())
  } else {
    const a = Number(actual)
    const b = Number(clause.value)
    result =
      clause.operator === '>' ? a > b : clause.operator === '<' ? a < b : clause.operator === '>=' ? a >= b : a <= b
  }
  return clause.negate ? !result : result
}

/**
 * Answers a `/v1/<resource>/search` request over `items` (newest first).
 */
export function search(engine: Engine, items: Obj[], params: Obj, resource: string, fields: string[], aliases: Aliases = {}): Obj {
  const query = String(params.query ?? '')
  const { clauses, joiner } = parseSearchQuery(query)
  for (const clause of clauses) {
    if (!fields.includes(clause.field)) {
      throw invalidRequest(
        `Field \`${clause.field}\` is an unsupported search field for resource \`${resource}\`. See http://stripe.com/docs/search#query-fields-for-${resource} for a list of supported fields.`,
        { param: 'query' }
      )
    }
  }
  const found = items.filter((item) =>
    joiner === 'AND' ? clauses.every((c) => matches(item, c, aliases)) : clauses.some((c) => matches(item, c, aliases))
  )
  const limit = params.limit === undefined ? 10 : int(params.limit, 'limit')!
  if (limit < 1 || limit > 100) throw invalidRequest('Invalid limit: must be between 1 and 100', { param: 'limit' })
  let offset = 0
  if (params.page) {
    const decoded = Number(Buffer.from(String(params.page), 'base64url').toString('utf8').replace(/^page:/, ''))
    if (!Number.isInteger(decoded) || decoded < 0) throw invalidRequest('Invalid page', { param: 'page' })
    offset = decoded
  }
  const data = found.slice(offset, offset + limit)
  const hasMore = found.length > offset + limit
  return {
    object: 'search_result',
    data: data.map((o) => engine.render(o)),
    has_more: hasMore,
    next_page: hasMore ? Buffer.from(`page:${offset + limit}`).toString('base64url') : null,
    url: `/v1/${resource}/search`,
  }
}
