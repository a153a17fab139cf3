/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import type { NormalizeConstructor } from '@adonisjs/core/types/helpers'
import type { BaseModel } from '@adonisjs/lucid/orm'

/**
 * What the package needs from a billable model instance.
 */
export interface BillableRow {
  $isPersisted: boolean
  $primaryKeyValue?: unknown
  billingEmail(): string | null
  billingName(): string | null
}

/**
 * Makes any Lucid model billable (users, teams, organizations):
 *
 * @example
 * class Team extends compose(BaseModel, Billable) {
 *   static billableType = 'team'
 * }
 * await billing.for(team).customer()
 */
export function Billable<Model extends NormalizeConstructor<typeof BaseModel>>(superclass: Model) {
  class BillableModel extends superclass implements BillableRow {
    /**
     * Marks the class as billable.
     */
    static readonly $billable = true

    /**
     * Stored as `billable_type` on the customer row; defaults to the class name. Set it explicitly
     * when you may rename the class.
     */
    static billableType?: string

    /**
     * Email given to Stripe; override to change the source.
     */
    billingEmail(): string | null {
      return ((this as any).email as string | undefined) ?? null
    }

    /**
     * Name given to Stripe; override to change the source.
     */
    billingName(): string | null {
      return ((this as any).fullName ?? (this as any).name ?? null) as string | null
    }
  }
  return BillableModel
}

/**
 * The (type, id) pair that links a billable to its customer row.
 */
export function billableIdentity(billable: BillableRow): { type: string; id: string } {
  const model = (billable as any).constructor as { billableType?: string; name: string }
  return { type: model.billableType ?? model.name, id: String(billable.$primaryKeyValue) }
}
