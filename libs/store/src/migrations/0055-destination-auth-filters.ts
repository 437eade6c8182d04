import { type Kysely, sql } from 'kysely';

/**
 * Destinations: SMART Backend Services auth (client_credentials + private_key_jwt) beside bearer —
 * the settings in `smart_auth`, the private JWK wrapped in `smart_private_key` — and what a
 * destination wants besides resource types: the sources it takes versions from (`sources`, empty =
 * its own `source_id` only) and profiles (`profiles`: canonical URLs one of which `meta.profile`
 * must name; empty = any). `updated_at` tells a cached token provider the registration changed.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('destinations')
    .addColumn('smart_auth', 'jsonb')
    .addColumn('smart_private_key', 'bytea')
    .addColumn('sources', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('profiles', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('destinations')
    .dropColumn('updated_at')
    .dropColumn('profiles')
    .dropColumn('sources')
    .dropColumn('smart_private_key')
    .dropColumn('smart_auth')
    .execute();
}
