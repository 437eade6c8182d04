import { type Kysely, sql } from 'kysely';

/**
 * Share outbox: a shareable version is recorded here in the transaction that stores it, and marked
 * `fanned_out_at` once its delivery jobs are enqueued, so a fan-out job lost with Redis is relayed
 * from the database. The partial index keeps the relay's scan to pending rows.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('share_outbox')
    .addColumn('resource_version_id', 'bigint', (c) =>
      c.primaryKey().references('resource_versions.id').onDelete('cascade'),
    )
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('enqueued_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('fanned_out_at', 'timestamptz')
    .execute();
  await sql`create index share_outbox_pending on share_outbox (enqueued_at) where fanned_out_at is null`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('share_outbox').execute();
}
