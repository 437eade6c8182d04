import { type Kysely, sql } from 'kysely';

/**
 * Erasure and verification:
 * - `ledger_events.key_scope`: which patient key (`Patient/{id}`, or `*` for a source's resources
 *   outside any Patient compartment) the event's digests were made with, so a verifier finds the
 *   key — or its tombstone — after the resource content is gone;
 * - `patient_keys.erasure_event_id`: the erasure leaf that destroyed the key;
 * - `provenances.content` may be null: an erased patient's Provenance rows stay as tombstones.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('ledger_events').addColumn('key_scope', 'text').execute();
  await db.schema
    .createIndex('ledger_events_key_scope')
    .on('ledger_events')
    .columns(['source_id', 'key_scope'])
    .execute();
  await db.schema.alterTable('patient_keys').addColumn('erasure_event_id', 'uuid').execute();
  await sql`alter table provenances alter column content drop not null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table provenances alter column content set not null`.execute(db);
  await db.schema.alterTable('patient_keys').dropColumn('erasure_event_id').execute();
  await db.schema.dropIndex('ledger_events_key_scope').execute();
  await db.schema.alterTable('ledger_events').dropColumn('key_scope').execute();
}
