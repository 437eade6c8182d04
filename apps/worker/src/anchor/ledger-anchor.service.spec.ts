import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import { type AppConfig, loadConfig } from '@fhir-trail/config';
import { ANCHORED_EVENT_TOPIC, EmbeddedChain, findFreePort, isLedgerError } from '@fhir-trail/ledger';
import { type LedgerConnection, openLedgerConnection } from '@fhir-trail/runtime';
import { Store } from '@fhir-trail/store';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/test-database';
import { LedgerAnchorService } from './ledger-anchor.service';
import { SignerLock } from './signer-lock';

/**
 * The worker's anchoring path on real PostgreSQL, Redis and anvil: batches, one writer per key,
 * the chain going away and coming back, and a worker dying between sending and recording.
 */
describe('LedgerAnchorService on PostgreSQL, Redis and anvil', () => {
  let database: TestDatabase;
  let dataDir: string;
  let config: AppConfig;
  let store: Store;
  /** anvil, started here so tests can stop and restart it under the apps' connection. */
  let chain: EmbeddedChain;
  let ledger: LedgerConnection;
  let service: LedgerAnchorService;
  let signer: string;

  const startChain = async (): Promise<void> => {
    chain = await EmbeddedChain.start({ dataDir, port: config.ledger.embeddedPort });
  };
  /** What a worker process opens at start: attaches to the running anvil. */
  const open = (): Promise<LedgerConnection> => openLedgerConnection(config, { outbox: store.anchorOutbox });
  const nonce = (): Promise<number> => ledger.provider.getTransactionCount(signer, 'latest');
  /** Anchored events on chain, as tree sizes in order. */
  const anchoredSizes = async (): Promise<number[]> =>
    (
      await ledger.provider.getLogs({
        address: ledger.contractAddress,
        topics: [ANCHORED_EVENT_TOPIC],
        fromBlock: 0,
      })
    ).map((log) => Number(BigInt(log.topics[1])));
  const checkpointSizes = async (): Promise<number[]> =>
    (await store.ledger.listCheckpoints(100)).map((c) => c.treeSize).reverse();
  /** Pending ledger events, as ingest leaves them (the record's content does not matter here). */
  const addEvents = async (count: number): Promise<void> => {
    await store.db
      .insertInto('ledger_events')
      .values(
        Array.from({ length: count }, () => {
          const eventId = randomUUID();
          return {
            event_id: eventId,
            kind: 'provenance',
            source_id: 'test',
            resource_type: 'Observation',
            resource_id: randomUUID(),
            record: JSON.stringify({ eventId }),
            leaf_hash: createHash('sha256').update(eventId).digest(),
          };
        }),
      )
      .execute();
  };
  const failureOf = (promise: Promise<unknown>): Promise<unknown> =>
    promise.then(
      () => {
        throw new Error('expected a failure');
      },
      (error: unknown) => error,
    );

  beforeAll(async () => {
    Logger.overrideLogger(false);
    database = await createTestDatabase('anchor_service');
    dataDir = await mkdtemp(join(tmpdir(), 'fhir-trail-anchor-service-'));
    config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      QUEUE_PREFIX: `anchor-service-${randomUUID().slice(0, 8)}`,
      LEDGER_EMBEDDED_PORT: String(await findFreePort()),
      LEDGER_RECEIPT_TIMEOUT_MS: '300',
      LOG_LEVEL: 'error',
    });
    store = await Store.open({
      databaseUrl: config.databaseUrl,
      masterKey: config.ledger.masterKey,
      migrate: true,
    });
    await startChain();
    ledger = await open();
    service = new LedgerAnchorService(config, store, ledger);
    signer = (await ledger.anchorClient.signerIdentity()).signer;
  }, 60_000);

  afterAll(async () => {
    await service?.onApplicationShutdown();
    await ledger?.close();
    await chain?.stop();
    await store.close();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('anchors what is pending in one transaction, and never an empty batch', async () => {
    await addEvents(5);
    const before = await nonce();
    const batch = await service.run();
    expect(batch).toMatchObject({ leaves: 5, checkpoint: { treeSize: 5, previousSize: 0 } });
    expect(await nonce()).toBe(before + 1);
    expect(await service.run()).toBeUndefined();
    expect(await nonce()).toBe(before + 1);
    expect(await anchoredSizes()).toEqual([5]);
  });

  it('one writer per signing key: while another process holds the key, a run sends nothing', async () => {
    await addEvents(2);
    const other = new SignerLock(config.redisUrl, config.queuePrefix);
    const lease = await other.acquire('31337', signer);
    try {
      expect(lease).toBeDefined();
      expect(await other.acquire('31337', signer)).toBeUndefined();
      const before = await nonce();
      expect(await service.run()).toBeUndefined();
      expect(await nonce()).toBe(before);
    } finally {
      await lease?.release();
      await other.close();
    }
    expect(await service.run()).toMatchObject({ leaves: 2, checkpoint: { treeSize: 7, previousSize: 5 } });
  });

  it('chain down mid-stream: the run fails retryably, backs off, and resumes when the chain is back; nothing lost or doubled', async () => {
    await addEvents(3);
    await chain.stop(); // anvil goes away (its state is kept on disk); the worker keeps running
    const down = await failureOf(service.run());
    expect(isLedgerError(down)).toBe(true);
    expect(down).toMatchObject({ retryable: true });
    expect(service.backoffUntil).toBeGreaterThan(Date.now());
    expect(await service.run()).toBeUndefined(); // backing off: the chain is not even asked
    await addEvents(4); // events keep arriving meanwhile

    await startChain(); // anvil comes back on the same state and port
    await sleep(Math.max(0, service.backoffUntil - Date.now()) + 10);
    const batch = await service.run();
    expect(batch).toMatchObject({ leaves: 7, checkpoint: { treeSize: 14, previousSize: 7 } });
    expect(await anchoredSizes()).toEqual([5, 7, 14]);
    expect(await checkpointSizes()).toEqual([5, 7, 14]);
    const unsequenced = await store.ledger.countUnsequenced();
    expect(unsequenced).toBe(0);
  }, 60_000);

  it('a worker that dies after sending, before recording: the restarted one re-sends the outboxed transaction, one anchor', async () => {
    await addEvents(6);
    const before = await nonce();
    await ledger.provider.send('evm_setAutomine', [false]);
    const timedOut = await failureOf(service.run());
    expect(isLedgerError(timedOut, 'RECEIPT_TIMEOUT')).toBe(true);
    const pending = (await store.anchorOutbox.list()).filter((r) => r.status === 'pending');
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatchObject({ treeSize: 20, previousSize: 14, nonce: before });
    // The worker dies; the chain node restarts and has lost its transaction pool.
    await ledger.provider.send('anvil_dropTransaction', [pending[0].txHash]);
    await ledger.close();
    await service.onApplicationShutdown();
    await chain.stop();
    await startChain();

    ledger = await open(); // the restarted worker
    service = new LedgerAnchorService(config, store, ledger);
    expect(await service.run()).toBeUndefined(); // the outboxed anchor landed: nothing new to send
    const checkpoint = (await store.ledger.checkpointsAt([20]))[0];
    expect(checkpoint).toMatchObject({ treeSize: 20, previousSize: 14, txHash: pending[0].txHash });
    expect(await store.anchorOutbox.list()).toContainEqual(
      expect.objectContaining({ txHash: pending[0].txHash, status: 'mined' }),
    );
    expect(await nonce()).toBe(before + 1);
    expect(await anchoredSizes()).toEqual([5, 7, 14, 20]);
    expect(await checkpointSizes()).toEqual([5, 7, 14, 20]);
  }, 60_000);

  it('records the checkpoint of a head that landed without being recorded, with the head it really extended', async () => {
    await addEvents(1);
    // A run sequences the new leaf (local head 21), then cannot reach the chain.
    await chain.stop();
    const down = await failureOf(service.run());
    expect(down).toMatchObject({ retryable: true });
    await startChain();
    const head = await store.ledger.head();
    expect(head.treeSize).toBe(21);
    const last = (await store.ledger.checkpointsAt([20]))[0];
    // Another run anchors it and dies before recording the checkpoint.
    await ledger.anchorClient.anchorHead({
      treeSize: 21,
      root: head.root,
      previousSize: 20,
      previousRoot: last.root,
      manifestHash: `0x${'ab'.repeat(32)}`,
    });
    await sleep(Math.max(0, service.backoffUntil - Date.now()) + 10);
    const batch = await service.run();
    expect(batch?.checkpoint).toMatchObject({
      treeSize: 21,
      previousSize: 20,
      previousRoot: last.root,
      manifestHash: Buffer.from('ab'.repeat(32), 'hex'),
    });
    expect(await anchoredSizes()).toEqual([5, 7, 14, 20, 21]);
  }, 60_000);
});
