import { type Kysely, sql } from 'kysely';

/** The off-chain system of record for the first end-to-end path. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sources')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('organisation', 'jsonb', (c) => c.notNull())
    .addColumn('fhir_base_url', 'text')
    .addColumn('token_sha256', 'bytea', (c) => c.notNull())
    .addColumn('default_secret', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('inbox')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('source_id', 'text', (c) => c.notNull().references('sources.id'))
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('method', 'text', (c) => c.notNull())
    .addColumn('path', 'text', (c) => c.notNull())
    .addColumn('content_type', 'text')
    .addColumn('headers', 'jsonb', (c) => c.notNull())
    .addColumn('body', 'bytea', (c) => c.notNull())
    .addColumn('shape', 'text', (c) => c.notNull())
    .addColumn('notification_type', 'text', (c) => c.notNull())
    .addColumn('event_count', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .defaultTo('received')
        .check(sql`status in ('received', 'done', 'dead-letter')`),
    )
    .addColumn('enqueued_at', 'timestamptz')
    .addColumn('processed_at', 'timestamptz')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .execute();
  await sql`create index inbox_pending on inbox (id) where status = 'received'`.execute(db);

  await db.schema
    .createTable('resource_versions')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('source_id', 'text', (c) => c.notNull().references('sources.id'))
    .addColumn('resource_type', 'text', (c) => c.notNull())
    .addColumn('resource_id', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('source_version_id', 'text')
    .addColumn('interaction', 'text', (c) => c.notNull())
    .addColumn('content', 'jsonb')
    .addColumn('inbox_id', 'bigint', (c) => c.notNull().references('inbox.id'))
    .addColumn('entry_index', 'integer', (c) => c.notNull())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
    .addUniqueConstraint('resource_versions_version', [
      'source_id',
      'resource_type',
      'resource_id',
      'version',
    ])
    .addUniqueConstraint('resource_versions_inbox_entry', ['inbox_id', 'entry_index'])
    .execute();

  await db.schema
    .createTable('provenances')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('resource_version_id', 'bigint', (c) =>
      c.notNull().unique().references('resource_versions.id'),
    )
    .addColumn('content', 'jsonb', (c) => c.notNull())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('dead_letters')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('inbox_id', 'bigint', (c) => c.references('inbox.id'))
    .addColumn('entry_index', 'integer')
    .addColumn('reason_code', 'text', (c) => c.notNull())
    .addColumn('outcome', 'jsonb', (c) => c.notNull())
    .addColumn('raw', 'bytea')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('dead_letters_inbox_entry', ['inbox_id', 'entry_index'])
    .execute();

  await db.schema
    .createTable('ledger_events')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('event_id', 'uuid', (c) => c.notNull().unique())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('resource_type', 'text', (c) => c.notNull())
    .addColumn('resource_id', 'text', (c) => c.notNull())
    .addColumn('resource_version_id', 'bigint', (c) => c.references('resource_versions.id'))
    .addColumn('record', 'text', (c) => c.notNull())
    .addColumn('leaf_hash', 'bytea', (c) => c.notNull())
    .addColumn('leaf_index', 'bigint', (c) => c.unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`create index ledger_events_unsequenced on ledger_events (id) where leaf_index is null`.execute(
    db,
  );
  await db.schema
    .createIndex('ledger_events_resource')
    .on('ledger_events')
    .columns(['source_id', 'resource_type', 'resource_id'])
    .execute();

  await db.schema
    .createTable('ledger_nodes')
    .addColumn('level', 'smallint', (c) => c.notNull())
    .addColumn('idx', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'bytea', (c) => c.notNull())
    .addPrimaryKeyConstraint('ledger_nodes_pk', ['level', 'idx'])
    .execute();

  await db.schema
    .createTable('ledger_state')
    .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('tree_size', 'bigint', (c) => c.notNull())
    .addColumn('root', 'bytea', (c) => c.notNull())
    .execute();
  // The empty tree: size 0, root = SHA-256 of the empty string (RFC 9162 §2.1.1).
  await sql`insert into ledger_state (id, tree_size, root) values (1, 0, sha256(''::bytea))`.execute(db);

  await db.schema
    .createTable('checkpoints')
    .addColumn('tree_size', 'bigint', (c) => c.primaryKey())
    .addColumn('root', 'bytea', (c) => c.notNull())
    .addColumn('previous_size', 'bigint', (c) => c.notNull())
    .addColumn('previous_root', 'bytea', (c) => c.notNull())
    .addColumn('manifest_hash', 'bytea', (c) => c.notNull())
    .addColumn('chain_id', 'text', (c) => c.notNull())
    .addColumn('contract', 'text', (c) => c.notNull())
    .addColumn('tx_hash', 'text', (c) => c.notNull())
    .addColumn('block_number', 'bigint', (c) => c.notNull())
    .addColumn('block_hash', 'text', (c) => c.notNull())
    .addColumn('log_index', 'integer', (c) => c.notNull())
    .addColumn('gas_used', 'bigint', (c) => c.notNull())
    .addColumn('anchored_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('patient_keys')
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('patient_ref', 'text', (c) => c.notNull())
    .addColumn('wrapped_key', 'bytea')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('destroyed_at', 'timestamptz')
    .addPrimaryKeyConstraint('patient_keys_pk', ['source_id', 'patient_ref'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'patient_keys',
    'checkpoints',
    'ledger_state',
    'ledger_nodes',
    'ledger_events',
    'dead_letters',
    'provenances',
    'resource_versions',
    'inbox',
    'sources',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}
