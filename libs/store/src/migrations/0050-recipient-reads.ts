import { type Kysely, sql } from 'kysely';

/**
 * Reads by recipients: a per-destination read key (SHA-256 only; the key itself is never stored)
 * and one row per read decision (a resource a recipient read or was refused), with its AuditEvent
 * and ledger event id, so the patient's access log lists reads beside deliveries.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('destinations').addColumn('read_key_sha256', 'bytea').execute();
  await db.schema
    .createIndex('destinations_read_key')
    .unique()
    .on('destinations')
    .column('read_key_sha256')
    .where(sql.ref('read_key_sha256'), 'is not', null)
    .execute();

  await db.schema
    .createTable('access_decisions')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('destination_id', 'text', (c) => c.notNull())
    .addColumn('resource_version_id', 'bigint', (c) => c.notNull())
    .addColumn('decision', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('consent_ref', 'text')
    .addColumn('event_id', 'text', (c) => c.notNull().unique())
    .addColumn('audit_event', 'jsonb', (c) => c.notNull())
    .addColumn('decided_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('access_decisions_source')
    .on('access_decisions')
    .columns(['source_id', 'id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('access_decisions').execute();
  await db.schema.dropIndex('destinations_read_key').execute();
  await db.schema.alterTable('destinations').dropColumn('read_key_sha256').execute();
}
