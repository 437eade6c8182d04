import { type Kysely, sql } from 'kysely';

/**
 * Sender authentication per source (bearer and/or an HMAC signature), how the bridge calls each
 * source back, its sender profile, rate limit and soft deletion; and the admin API keys.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('sources')
    .alterColumn('token_sha256', (c) => c.dropNotNull())
    .addColumn('signature_kind', 'text', (c) =>
      c.check(sql`signature_kind in ('hub-signature', 'medplum-signature')`),
    )
    .addColumn('signature_secret', 'bytea')
    .addColumn('fhir_auth', 'jsonb', (c) => c.notNull().defaultTo(sql`'{"kind":"none"}'::jsonb`))
    .addColumn('fhir_auth_secret', 'bytea')
    .addColumn('sender_profile', 'jsonb', (c) =>
      c
        .notNull()
        .defaultTo(sql`'{"counter":"subscription","deleteStyle":"none","responseBudgetMs":2000}'::jsonb`),
    )
    .addColumn('mapping_profile', 'text')
    .addColumn('rate_limit_per_second', 'double precision', (c) => c.check(sql`rate_limit_per_second > 0`))
    .addColumn('disabled_at', 'timestamptz')
    .execute();
  // A source always authenticates somehow, and a secret is stored exactly when its kind needs one.
  await sql`alter table sources
    add constraint sources_sender_auth check (token_sha256 is not null or signature_kind is not null),
    add constraint sources_signature_secret check ((signature_kind is null) = (signature_secret is null)),
    add constraint sources_fhir_auth_secret check ((fhir_auth->>'kind' = 'none') = (fhir_auth_secret is null))`.execute(
    db,
  );

  await db.schema
    .createTable('admin_api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('key_sha256', 'bytea', (c) => c.notNull().unique())
    .addColumn('default_secret', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

/** Fails while a source authenticates by signature only (it would have no bearer hash to fall back on). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('admin_api_keys').execute();
  await sql`alter table sources
    drop constraint sources_sender_auth,
    drop constraint sources_signature_secret,
    drop constraint sources_fhir_auth_secret`.execute(db);
  await db.schema
    .alterTable('sources')
    .dropColumn('signature_kind')
    .dropColumn('signature_secret')
    .dropColumn('fhir_auth')
    .dropColumn('fhir_auth_secret')
    .dropColumn('sender_profile')
    .dropColumn('mapping_profile')
    .dropColumn('rate_limit_per_second')
    .dropColumn('disabled_at')
    .alterColumn('token_sha256', (c) => c.setNotNull())
    .execute();
}
