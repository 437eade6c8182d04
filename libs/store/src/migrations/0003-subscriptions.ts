import { type Kysely, sql } from 'kysely';

/**
 * Never lose, never double: per-source dedupe keys, the current head of every resource (so an
 * older version is recorded but never applied), and what each subscription has told us (status,
 * counter, heartbeats, alerts, gaps in its event numbers).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('processed_events')
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('dedupe_key', 'text', (c) => c.notNull())
    .addColumn('inbox_id', 'bigint', (c) => c.notNull())
    .addColumn('entry_index', 'integer', (c) => c.notNull())
    .addColumn('first_seen_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('duplicates', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_duplicate_at', 'timestamptz')
    .addPrimaryKeyConstraint('processed_events_pk', ['source_id', 'dedupe_key'])
    .execute();

  await db.schema
    .createTable('resource_heads')
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('resource_type', 'text', (c) => c.notNull())
    .addColumn('resource_id', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('source_version_id', 'text')
    .addColumn('source_last_updated', 'timestamptz')
    .addColumn('deleted', 'boolean', (c) => c.notNull().defaultTo(false))
    .addPrimaryKeyConstraint('resource_heads_pk', ['source_id', 'resource_type', 'resource_id'])
    .execute();

  await db.schema
    .alterTable('resource_versions')
    .addColumn('applied', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('source_last_updated', 'timestamptz')
    .execute();

  await db.schema
    .createTable('subscriptions')
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('reference', 'text', (c) => c.notNull())
    .addColumn('topic', 'text')
    .addColumn('status', 'text')
    .addColumn('last_event_number', 'bigint')
    .addColumn('heartbeat_period_s', 'integer')
    .addColumn('last_heartbeat_at', 'timestamptz')
    .addColumn('last_notification_at', 'timestamptz')
    .addColumn('last_event_at', 'timestamptz')
    .addColumn('alert', 'text')
    .addColumn('alert_at', 'timestamptz')
    .addColumn('notifications', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('duplicates', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('resource_types', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('subscriptions_pk', ['source_id', 'reference'])
    .execute();

  await db.schema
    .createTable('event_gaps')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('subscription', 'text', (c) => c.notNull())
    .addColumn('from_number', 'bigint', (c) => c.notNull())
    .addColumn('to_number', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .defaultTo('open')
        .check(sql`status in ('open', 'filled', 'repaired', 'searched', 'failed')`),
    )
    .addColumn('detected_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('closed_at', 'timestamptz')
    .addColumn('detail', 'text')
    .execute();
  await sql`create unique index event_gaps_open on event_gaps (source_id, subscription, from_number) where status = 'open'`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('event_gaps').execute();
  await db.schema.dropTable('subscriptions').execute();
  await db.schema
    .alterTable('resource_versions')
    .dropColumn('applied')
    .dropColumn('source_last_updated')
    .execute();
  await db.schema.dropTable('resource_heads').execute();
  await db.schema.dropTable('processed_events').execute();
}
