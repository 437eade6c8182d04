import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@fhir-trail/config';
import { createBridgeApp } from '../apps/bridge/src/bridge.app';
import { registerSources } from '../apps/bridge/src/notifications/sources.service';
import { createTestDatabase, type TestDatabase } from './support/test-database';

const PRODUCTION = {
  NODE_ENV: 'production',
  LEDGER_MASTER_KEY: '11'.repeat(32),
  // Never reached: the bridge refuses before it connects to anything but PostgreSQL.
  LEDGER_RPC_URL: 'http://127.0.0.1:9',
  LEDGER_PRIVATE_KEY: '22'.repeat(32),
};

describe('source registration and the production guard', () => {
  let database: TestDatabase;
  const dir = mkdtempSync(join(tmpdir(), 'sources-'));

  beforeAll(async () => {
    database = await createTestDatabase('sources');
  });

  afterAll(async () => {
    await database.drop();
  });

  it('refuses to start in production while a source still has the default demo secret', async () => {
    expect(await registerSources(loadConfig({ DATABASE_URL: database.url }))).toBe(1);
    await expect(createBridgeApp(loadConfig({ ...PRODUCTION, DATABASE_URL: database.url }))).rejects.toThrow(
      /refusing to start in production: source\(s\) demo still have a default secret/,
    );
  });

  it('starts in production once every source has its own secret from SOURCES_FILE', async () => {
    const file = join(dir, 'sources.json');
    const tokenSha256 = createHash('sha256').update('a-long-random-secret-for-demo').digest('hex');
    writeFileSync(
      file,
      JSON.stringify([{ id: 'demo', name: 'Demo', organisation: { display: 'Demo EHR' }, tokenSha256 }]),
    );
    const config = loadConfig({ ...PRODUCTION, DATABASE_URL: database.url, SOURCES_FILE: file });
    await expect(registerSources(config)).resolves.toBe(1);
  });

  it('names every problem of a bad SOURCES_FILE', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify([{ id: 'has space', name: '', organisation: {}, token: 'short' }]));
    const error = (await registerSources(
      loadConfig({ DATABASE_URL: database.url, SOURCES_FILE: file }),
    ).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/\[0\.id\]/);
    expect(error.message).toMatch(/\[0\.name\]/);
    expect(error.message).toMatch(/\[0\.organisation\.display\]/);
    expect(error.message).toMatch(/\[0\.token\] at least 16 characters/);
  });
});
