import { type Kysely, sql } from 'kysely';

/**
 * Consent: each FHIR Consent as interpreted (its normalised policy beside the resource), and the
 * bridge's mirror of the consent registry contract, one row per (source, patient, recipient
 * organisation): what the policies imply (`desired_*`) and what finalised chain state holds
 * (`confirmed_*`). Patient and recipient ids stay here; the chain only sees the keys.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('consents')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('consent_id', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('patient_ref', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('policy', 'jsonb', (c) => c.notNull())
    .addColumn('content', 'jsonb', (c) => c.notNull())
    .addColumn('origin', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('consents_source_consent', ['source_id', 'consent_id'])
    .execute();
  await db.schema
    .createIndex('consents_patient')
    .on('consents')
    .columns(['source_id', 'patient_ref'])
    .execute();

  await db.schema
    .createTable('consent_registry_pairs')
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('patient_ref', 'text', (c) => c.notNull())
    .addColumn('recipient_org', 'text', (c) => c.notNull())
    .addColumn('patient_key', 'bytea', (c) => c.notNull())
    .addColumn('recipient_key', 'bytea', (c) => c.notNull())
    .addColumn('desired_active', 'boolean', (c) => c.notNull())
    .addColumn('desired_purposes', 'numeric(78, 0)', (c) => c.notNull())
    .addColumn('desired_data_classes', 'numeric(78, 0)', (c) => c.notNull())
    .addColumn('desired_valid_from', 'bigint', (c) => c.notNull())
    .addColumn('desired_valid_until', 'bigint', (c) => c.notNull())
    .addColumn('confirmed_active', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('confirmed_purposes', 'numeric(78, 0)', (c) => c.notNull().defaultTo(0))
    .addColumn('confirmed_data_classes', 'numeric(78, 0)', (c) => c.notNull().defaultTo(0))
    .addColumn('confirmed_valid_from', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('confirmed_valid_until', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('confirmed_block', 'bigint')
    .addColumn('tx_hash', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('consent_registry_pairs_pk', ['source_id', 'patient_ref', 'recipient_org'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('consent_registry_pairs').execute();
  await db.schema.dropTable('consents').execute();
}
