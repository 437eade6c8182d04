import { type Kysely, sql } from 'kysely';

/**
 * Subscriptions the bridge created on a source, each with its own bearer secret (put in the
 * Subscription's channel.header); only the SHA-256 is kept. A notification for the source is
 * accepted with the source's secret or any of its subscriptions' secrets.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('subscription_tokens')
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('reference', 'text', (c) => c.notNull())
    .addColumn('token_sha256', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('subscription_tokens_pk', ['source_id', 'reference'])
    .execute();
  await db.schema
    .alterTable('subscriptions')
    .addColumn('managed', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('content', 'text')
    .execute();
  // "When did this source last notify us" (what an empty ping re-queries since).
  await db.schema.createIndex('inbox_source').on('inbox').columns(['source_id', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('inbox_source').execute();
  await db.schema.alterTable('subscriptions').dropColumn('managed').dropColumn('content').execute();
  await db.schema.dropTable('subscription_tokens').execute();
}
