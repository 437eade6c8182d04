import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/** The server tests create their throwaway databases on (trust auth on a developer machine and in CI). */
const SERVER_URL =
  process.env.TEST_DATABASE_SERVER_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

/** A fresh, uniquely named database for one test file, so suites can run in parallel. */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `fhirtrail_test_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  await admin(`create database ${name}`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => admin(`drop database if exists ${name} with (force)`),
  };
}

async function admin(statement: string): Promise<void> {
  const client = new Client({ connectionString: SERVER_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
