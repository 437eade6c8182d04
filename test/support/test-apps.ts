import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { type AppConfig, loadConfig } from '@fhir-trail/config';
import { createBridgeApp } from '../../apps/bridge/src/bridge.app';
import { createWorkerApp } from '../../apps/worker/src/worker.app';
import { createTestDatabase, type TestDatabase } from './test-database';

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * The real apps on real services for one test file: a fresh PostgreSQL database, its own Redis
 * database index and key prefix, its own embedded chain (anvil) in a temp data directory.
 */
export class TestStack {
  bridge?: NestFastifyApplication;
  worker?: INestApplicationContext;
  baseUrl = '';

  private constructor(
    readonly config: AppConfig,
    private readonly database: TestDatabase,
    private readonly dataDir: string,
  ) {}

  /**
   * @param databaseVia rewrites the database URL the apps use (e.g. through a TcpProxy); the test
   * database itself is created and dropped directly.
   */
  static async create(
    label: string,
    env: Readonly<Record<string, string>> = {},
    databaseVia: (url: string) => string = (url) => url,
  ): Promise<TestStack> {
    const database = await createTestDatabase(label);
    const dataDir = await mkdtemp(join(tmpdir(), `fhir-trail-${label}-`));
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: databaseVia(database.url),
      REDIS_URL: 'redis://127.0.0.1:6379',
      QUEUE_PREFIX: `test-${label}-${process.pid}`,
      DATA_DIR: dataDir,
      LEDGER_EMBEDDED_PORT: String(await freePort()),
      LEDGER_BATCH_INTERVAL_MS: '300',
      INBOX_RELAY_INTERVAL_MS: '300',
      LOG_LEVEL: 'error',
      ...env,
    });
    return new TestStack(config, database, dataDir);
  }

  async startBridge(): Promise<string> {
    this.bridge = await createBridgeApp(this.config);
    await this.bridge.listen({ port: 0, host: '127.0.0.1' });
    this.baseUrl = await this.bridge.getUrl();
    this.baseUrl = this.baseUrl.replace('[::1]', '127.0.0.1');
    return this.baseUrl;
  }

  async startWorker(): Promise<void> {
    this.worker = await createWorkerApp(this.config);
  }

  async stopWorker(): Promise<void> {
    await this.worker?.close();
    this.worker = undefined;
  }

  async close(): Promise<void> {
    await this.stopWorker();
    await this.bridge?.close();
    await this.database.drop();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** Polls `probe` until it returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
