import { createHash, createHmac } from 'node:crypto'
import type AuditLog from '../src/models/audit_log.ts'
import { canonicalJson } from '../src/audit/canonical_json.ts'

/**
 * The documented formulas (docs/audit.md), computed here, not by the implementation: the content hash
 * is sha256 of the canonical JSON of the row's content columns; the link is
 * sha256(prev_hash + "\n" + content_hash); the key is HMAC-SHA256(app key, "adonis-billing:audit-key:v1");
 * content_mac = HMAC(key, "adonis-billing:audit-content:v3\n<key id>\n<content_hash>") and
 * mac = HMAC(key, "adonis-billing:audit:v3\n<key id>\n<seq>\n<previous mac>\n<hash>").
 */
const APP_KEY = 'averylongrandom32charslongsecret'
export function documentedContentHash(row: AuditLog): string {
  const content = {
    occurred_at: row.occurredAt.toUTC().toISO(),
    actor_type: row.actorType,
    actor_id: row.actorId,
    action: row.action,
    subject_type: row.subjectType,
    subject_id: row.subjectId,
    customer_id: row.customerId,
    before: row.before,
    after: row.after,
    metadata: row.metadata,
    request_id: row.requestId,
    event_id: row.eventId,
  }
  return createHash('sha256').update(canonicalJson(content)).digest('hex')
}
export function documentedLinkHash(row: AuditLog): string {
  return createHash('sha256').update(`${row.prevHash}\n${row.contentHash}`).digest('hex')
}
function auditKey(secret: string) {
  return createHmac('sha256', secret).update('adonis-billing:audit-key:v1').digest()
}
export function documentedContentMac(row: AuditLog, secret = APP_KEY): string {
  return createHmac('sha256', auditKey(secret)).update(`adonis-billing:audit-content:v3\n${row.keyId}\n${row.contentHash}`).digest('hex')
}
export function documentedMac(row: AuditLog, previousMac: string, secret = APP_KEY): string {
  return createHmac('sha256', auditKey(secret)).update(`adonis-billing:audit:v3\n${row.keyId}\n${row.seq}\n${previousMac}\n${row.hash}`).digest('hex')
}

/**
 * What a database writer who owns the tables can do first: drop the append-only guards
 */
export async function dropAuditGuards(db: { connection(): { rawQuery(sql: string): Promise<unknown> } }, dialect: 'sqlite' | 'pg') {
  const names =
    dialect === 'pg'
      ? ['billing_audit_append_only on billing_audit_logs', 'billing_audit_no_truncate on billing_audit_logs', 'billing_audit_head_forward on billing_audit_head']
      : ['billing_audit_append_only_update', 'billing_audit_append_only_delete', 'billing_audit_head_forward', 'billing_audit_head_keep']
  for (const name of names) await db.connection().rawQuery(`drop trigger if exists ${name}`)
}
