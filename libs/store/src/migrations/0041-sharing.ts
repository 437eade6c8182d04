import { type Kysely, sql } from 'kysely';

/**
 * Sharing: destinations (FHIR R4 endpoints the bridge delivers to, each representing an
 * organisation) and one decision per (resource version, destination): delivered, denied or failed,
 * with its AuditEvent and ledger event id.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('destinations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('organisation', 'text', (c) => c.notNull())
    .addColumn('fhir_base_url', 'text', (c) => c.notNull())
    .addColumn('bearer_token', 'bytea')
    .addColumn('resource_types', sql`text[]`, (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('delivery_mode', 'text', (c) => c.notNull())
    .addColumn('max_attempts', 'integer', (c) => c.notNull())
    .addColumn('backoff_ms', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('disabled_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('sharing_decisions')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('resource_version_id', 'bigint', (c) => c.notNull())
    .addColumn('destination_id', 'text', (c) => c.notNull())
    .addColumn('decision', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('consent_ref', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('audit_event', 'jsonb', (c) => c.notNull())
    .addColumn('decided_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('sharing_decisions_version_destination', ['resource_version_id', 'destination_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sharing_decisions').execute();
  await db.schema.dropTable('destinations').execute();
}
