import { type Kysely, sql } from 'kysely';

/**
 * Mapping profiles, versioned: every version is kept (a Provenance names the one that produced a
 * resource), and one version per profile is active. Dead letters gain what an engineer needs to
 * inspect and replay them: the resource as resolved (before mapping), the event context to store
 * it with, the profile version that refused it, and the replay bookkeeping.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('mapping_profiles')
    .addColumn('profile_id', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('document', 'jsonb', (c) => c.notNull())
    /** Where the version came from: `admin-api` or `file:<name>`. */
    .addColumn('origin', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('mapping_profiles_pk', ['profile_id', 'version'])
    .execute();
  await db.schema
    .createTable('mapping_profile_active')
    .addColumn('profile_id', 'text', (c) => c.primaryKey())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('activated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addForeignKeyConstraint(
      'mapping_profile_active_version',
      ['profile_id', 'version'],
      'mapping_profiles',
      ['profile_id', 'version'],
    )
    .execute();

  await db.schema
    .alterTable('dead_letters')
    .addColumn('input', 'jsonb')
    .addColumn('input_context', 'jsonb')
    .addColumn('mapping_profile', 'text')
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('open'))
    .addColumn('replay_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('replay_requested_at', 'timestamptz')
    .addColumn('last_replay_at', 'timestamptz')
    .addColumn('last_replay_outcome', 'jsonb')
    .addColumn('replayed_version_id', 'bigint', (c) => c.references('resource_versions.id'))
    .execute();
  await db.schema
    .createIndex('dead_letters_source_time')
    .on('dead_letters')
    .columns(['source_id', 'id'])
    .execute();
  await db.schema
    .createIndex('dead_letters_reason')
    .on('dead_letters')
    .columns(['reason_code', 'id'])
    .execute();
  await db.schema.createIndex('dead_letters_created').on('dead_letters').column('created_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('dead_letters_created').execute();
  await db.schema.dropIndex('dead_letters_reason').execute();
  await db.schema.dropIndex('dead_letters_source_time').execute();
  await db.schema
    .alterTable('dead_letters')
    .dropColumn('input')
    .dropColumn('input_context')
    .dropColumn('mapping_profile')
    .dropColumn('status')
    .dropColumn('replay_count')
    .dropColumn('replay_requested_at')
    .dropColumn('last_replay_at')
    .dropColumn('last_replay_outcome')
    .dropColumn('replayed_version_id')
    .execute();
  await db.schema.dropTable('mapping_profile_active').execute();
  await db.schema.dropTable('mapping_profiles').execute();
}
