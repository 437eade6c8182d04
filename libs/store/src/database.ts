import { Kysely, type Migration, type MigrationProvider, Migrator, PostgresDialect } from 'kysely';
import { Client, Pool } from 'pg';
import * as foundation from './migrations/0001-foundation';
import * as sourceAuth from './migrations/0002-source-auth';
import * as subscriptions from './migrations/0003-subscriptions';
import * as subscriptionTokens from './migrations/0005-subscription-tokens';
import * as anchorOutbox from './migrations/0010-anchor-outbox';
import * as ledgerPrivacy from './migrations/0020-ledger-privacy';
import * as mappingProfiles from './migrations/0030-mapping-profiles';
import * as consents from './migrations/0040-consents';
import * as sharing from './migrations/0041-sharing';
import * as recipientReads from './migrations/0050-recipient-reads';
import * as destinationAuthFilters from './migrations/0055-destination-auth-filters';
import * as shareOutbox from './migrations/0060-share-outbox';
import type { Database } from './schema';

/** Migrations are code, listed here in order, so a bundled app carries them without a folder scan. */
const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-foundation': foundation,
  '0002-source-auth': sourceAuth,
  '0003-subscriptions': subscriptions,
  '0005-subscription-tokens': subscriptionTokens,
  '0010-anchor-outbox': anchorOutbox,
  '0020-ledger-privacy': ledgerPrivacy,
  '0030-mapping-profiles': mappingProfiles,
  '0040-consents': consents,
  '0041-sharing': sharing,
  '0050-recipient-reads': recipientReads,
  '0055-destination-auth-filters': destinationAuthFilters,
  '0060-share-outbox': shareOutbox,
};

class InCodeMigrationProvider implements MigrationProvider {
  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve({ ...MIGRATIONS });
  }
}

export type StoreDb = Kysely<Database>;

export interface DatabaseOptions {
  /** Pool size; the bridge's intake path holds a connection for one INSERT only. */
  readonly max?: number;
  readonly applicationName?: string;
}

/** Opens a Kysely handle over a node-postgres pool. */
export function openDatabase(url: string, options: DatabaseOptions = {}): StoreDb {
  const pool = new Pool({
    connectionString: url,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'fhir-trail',
    // Fail fast when PostgreSQL is down so the bridge answers 503 instead of hanging the sender.
    connectionTimeoutMillis: 5_000,
  });
  // A client that loses its server (idle in the pool, or checked out mid-query) must not crash the
  // process: the query in flight rejects, the pool drops the client, the next query reconnects.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Creates the database named in `url` when it does not exist yet (a fresh developer machine), by
 * connecting to the server's `postgres` maintenance database.
 */
export async function ensureDatabaseExists(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!name) return;
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount === 0) {
      try {
        await client.query(`create database "${name.replace(/"/g, '""')}"`);
      } catch (error) {
        // Another process (bridge and worker start together) created it between check and create:
        // 42P04 duplicate_database, or 23505 when both inserts race in pg_database.
        const code = (error as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw error;
      }
    }
  } finally {
    await client.end();
  }
}

/** Runs every pending migration; throws with the failing migration's name and cause. */
export async function migrateToLatest(db: StoreDb): Promise<readonly string[]> {
  const migrator = new Migrator({ db, provider: new InCodeMigrationProvider() });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`database migration ${failed} failed`, { cause: error });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
