/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

/**
 * Folder holding the package stubs (config and migrations), used by `configure` and `node ace eject`.
 */
export const stubsRoot = import.meta.dirname

/**
 * Migration stubs, in the order they run, by the file-name suffix they are published with. The first
 * creates every table; each later one brings an install made before it to the current schema and is
 * safe on a fresh one (it checks before it alters; the audit chain's triggers live in
 * `make_billing_audit_keyed`), so `configure` publishes all of them.
 */
export const MIGRATIONS = [
  { stub: 'make/migration/billing_tables.stub', suffix: 'create_billing_tables.ts' },
  { stub: 'make/migration/billing_usage_payload_hash.stub', suffix: 'add_billing_usage_payload_hash.ts' },
  { stub: 'make/migration/billing_usage_exact_quantities.stub', suffix: 'make_billing_usage_quantities_exact.ts' },
  { stub: 'make/migration/billing_audit_keyed.stub', suffix: 'make_billing_audit_keyed.ts' },
  { stub: 'make/migration/billing_usage_report_periods.stub', suffix: 'add_billing_usage_report_periods.ts' },
  { stub: 'make/migration/billing_stripe_objects.stub', suffix: 'add_billing_stripe_objects.ts' },
  { stub: 'make/migration/billing_invoice_subscription_ref.stub', suffix: 'add_billing_invoice_subscription_ref.ts' },
]
