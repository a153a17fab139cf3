/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

/**
 * The `error` member of a Stripe error response.
 */
export interface StripeErrorPayload {
  type: string
  message: string
  code?: string
  param?: string
  decline_code?: string
  doc_url?: string
  request_log_url?: string
  [key: string]: unknown
}

/**
 * Options of a {@link StripeApiError}.
 */
export interface StripeApiErrorOptions {
  code?: string
  param?: string
  declineCode?: string
  extra?: Record<string, unknown>
  headers?: Record<string, string>
}

/**
 * An error the fake answers with, in Stripe's wire shape. Thrown by the request handlers and turned
 * into `{ error: { type, code, message, param, ... } }` with the given HTTP status.
 */
export class StripeApiError extends Error {
  status: number
  type: string
  code?: string
  param?: string
  declineCode?: string
  extra: Record<string, unknown>
  headers: Record<string, string>

  constructor(status: number, type: string, message: string, options: StripeApiErrorOptions = {}) {
    super(message)
    this.name = 'StripeApiError'
    this.status = status
    this.type = type
    this.code = options.code
    this.param = options.param
    this.declineCode = options.declineCode
    this.extra = options.extra ?? {}
    this.headers = options.headers ?? {}
  }

  /**
   * The JSON body Stripe would send for this error.
   */
  toPayload(requestId: string, now: number): { error: StripeErrorPayload } {
    const error: StripeErrorPayload = { type: this.type, message: this.message }
    if (this.code) {
      error.code = this.code
      error.doc_url = `https://stripe.com/docs/error-codes/${this.code.replace(/_/g, '-')}`
    }
    if (this.declineCode) error.decline_code = this.declineCode
    if (this.param) error.param = this.param
    Object.assign(error, this.extra)
    error.request_log_url = `https://dashboard.stripe.com/test/logs/${requestId}?t=${now}`
    return { error }
  }
}

/**
 * A 400 `invalid_request_error`.
 */
export function invalidRequest(message: string, options: StripeApiErrorOptions & { status?: number } = {}) {
  return new StripeApiError(options.status ?? 400, 'invalid_request_error', message, options)
}

/**
 * `Received unknown parameter: <name>` (400, `parameter_unknown`).
 */
export function unknownParameter(name: string) {
  return invalidRequest(`Received unknown parameter: ${name}`, { code: 'parameter_unknown', param: name })
}

/**
 * `Missing required param: <name>.` (400, `parameter_missing`).
 */
export function missingParameter(name: string) {
  return invalidRequest(`Missing required param: ${name}.`, { code: 'parameter_missing', param: name })
}

/**
 * `No such <kind>: '<id>'` (`resource_missing`): 404 for ids in the URL, 400 for ids in parameters.
 */
export function resourceMissing(kind: string, id: string, param = 'id', status = 404) {
  return invalidRequest(`No such ${kind}: '${id}'`, { code: 'resource_missing', param, status })
}

/**
 * A 402 `card_error`.
 */
export function cardError(message: string, code: string, declineCode?: string, extra?: Record<string, unknown>) {
  return new StripeApiError(402, 'card_error', message, { code, declineCode, extra })
}
