/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { bumpEntitlementVersion } from './entitlement_cache.ts'
import { DateTime } from 'luxon'
import EntitlementGrant from '../models/entitlement_grant.ts'
import Customer from '../models/customer.ts'
import { toDbDateTime } from '../models/columns.ts'
import { InvalidArgumentException } from '../errors.ts'
import type { BillingManager } from '../billing_manager.ts'
import type { AuditActor, FeatureValue } from '../types.ts'

/**
 * Options of `billing.grant()`.
 */
export interface GrantOptions {
  startsAt?: DateTime
  expiresAt?: DateTime | null
  reason?: string
  actor?: AuditActor
}

/**
 * Validates a grant value against the feature's type.
 */
function checkValue(manager: BillingManager, feature: string, value: FeatureValue) {
  const definition = manager.config.features[feature]
  if (!definition) throw new InvalidArgumentException(`Unknown feature "${feature}"`)
  if (definition.type === 'boolean') {
    if (value !== true) throw new InvalidArgumentException(`"${feature}" is a boolean feature: grant true`)
  } else if (value !== 'unlimited' && (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0)) {
    throw new InvalidArgumentException(`"${feature}" is a ${definition.type} feature: grant a positive integer or "unlimited"`)
  }
}

/**
 * Grants a feature to a customer (a manual or promotional override), audited, with the customer's
 * entitlement version bumped in the same transaction.
 */
export async function grantFeature(manager: BillingManager, customer: Customer, feature: string, value: FeatureValue, options: GrantOptions = {}) {
  checkValue(manager, feature, value)
  const startsAt = options.startsAt ?? DateTime.utc()
  if (options.expiresAt && options.expiresAt <= startsAt) throw new InvalidArgumentException('expiresAt must be after startsAt')
  return manager.db().transaction(async (trx) => {
    const grant = await EntitlementGrant.create(
      {
        customerId: customer.id,
        feature,
        value,
        startsAt,
        expiresAt: options.expiresAt ?? null,
        revokedAt: null,
        reason: options.reason ?? null,
        grantedBy: options.actor ? `${options.actor.type}:${options.actor.id ?? ''}` : null,
      },
      { client: trx }
    )
    await bumpEntitlementVersion(manager.entitlementCache, trx, customer.id)
    await manager.audit.record(
      {
        action: 'entitlement.granted',
        actor: options.actor,
        subject: { type: 'entitlement_grant', id: grant.id },
        customerId: customer.id,
        after: { feature, value, starts_at: startsAt.toISO(), expires_at: options.expiresAt?.toISO() ?? null, reason: options.reason ?? null },
      },
      { client: trx }
    )
    return grant
  })
}

/**
 * Revokes active grants of a feature (or one grant by id), audited.
 */
export async function revokeFeature(manager: BillingManager, customer: Customer, feature: string, options: { grantId?: number; actor?: AuditActor; reason?: string } = {}) {
  return manager.db().transaction(async (trx) => {
    const query = trx.from(EntitlementGrant.table).where('customer_id', customer.id).where('feature', feature).whereNull('revoked_at')
    if (options.grantId) query.where('id', options.grantId)
    const ids: number[] = (await query.clone().select('id')).map((row: { id: number }) => Number(row.id))
    if (ids.length === 0) return 0
    const now = toDbDateTime(DateTime.utc())
    await trx.from(EntitlementGrant.table).whereIn('id', ids).update({ revoked_at: now, updated_at: now })
    await bumpEntitlementVersion(manager.entitlementCache, trx, customer.id)
    await manager.audit.record(
      {
        action: 'entitlement.revoked',
        actor: options.actor,
        subject: { type: 'customer', id: customer.id },
        customerId: customer.id,
        after: { feature, grant_ids: ids, reason: options.reason ?? null },
      },
      { client: trx }
    )
    return ids.length
  })
}
