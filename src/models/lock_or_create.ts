/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

import { DateTime } from 'luxon'
import type { LucidModel } from '@adonisjs/lucid/types/model'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { toDbDateTime } from './columns.ts'

/**
 * Loads the row whose unique `column` equals `value`, locked for the rest of the transaction
 * (`FOR UPDATE` on PostgreSQL; SQLite has one writer), inserting it first with `defaults` when it does
 * not exist (`ON CONFLICT DO NOTHING`, so concurrent writers of the same new object never collide).
 * Returns the row and whether this call created it.
 */
export async function lockOrCreate<Model extends LucidModel>(
  trx: TransactionClientContract,
  model: Model,
  column: string,
  value: string,
  defaults: Record<string, unknown>
): Promise<{ row: InstanceType<Model>; created: boolean }> {
  const find = () =>
    model
      .query({ client: trx })
      .where(column, value)
      .if(trx.dialect.name === 'postgres', (query) => query.forUpdate())
      .first() as Promise<InstanceType<Model> | null>

  const existing = await find()
  if (existing) return { row: existing, created: false }
  const now = toDbDateTime(DateTime.utc())
  const inserted = await trx
    .knexQuery()
    .table(model.table)
    .insert({ ...defaults, [column]: value, created_at: now, updated_at: now })
    .onConflict([column])
    .ignore()
    .returning('id')
  return { row: (await find())!, created: inserted.length > 0 }
}
