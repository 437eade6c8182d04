import { createHash, randomUUID } from 'node:crypto';
import {
  InMemoryMerkleLog,
  type MerkleNodeReader,
  appendLeaves,
  consistencyProof,
  inclusionProof,
  loadFrontier,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
} from '@fhir-trail/ledger';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database';
import type { LedgerRepository } from './ledger.repository';
import { Store } from './store';

const MASTER_KEY = Buffer.alloc(32, 3);

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const leaf = (i: number): Buffer => createHash('sha256').update(`event-${i}`).digest();

/** The store's reader, counting round trips. */
function countingReader(ledger: LedgerRepository): MerkleNodeReader & { calls: number } {
  const reader = {
    calls: 0,
    getNodes: (keys: Parameters<MerkleNodeReader['getNodes']>[0]) => {
      reader.calls += 1;
      return ledger.getNodes(keys);
    },
  };
  return reader;
}

describe('store-backed Merkle proofs on PostgreSQL (properties)', () => {
  let database: TestDatabase;
  let store: Store;
  const memory = new InMemoryMerkleLog();
  /** Tree sizes after each sequenced batch, as the anchorer would checkpoint them. */
  const heads: number[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('ledger_repository');
    store = await Store.open({ databaseUrl: database.url, masterKey: MASTER_KEY, migrate: true });
    await store.sources.upsert({ id: 'ehr', name: 'EHR', organisation: { display: 'Org' }, token: 's3cret' });
    // Sequence ~1,500 events in random batches exactly as the worker does: pending rows in, the
    // frontier read back from PostgreSQL, new subtrees and the head stored in one transaction.
    const next = random(9162);
    let total = 0;
    while (total < 1_500) {
      const batch = 1 + Math.floor(next() * (next() < 0.2 ? 300 : 40));
      await store.transaction(async (trx) => {
        for (let i = 0; i < batch; i += 1) {
          const n = total + i;
          await store.ledger.insertEvent(trx, {
            eventId: randomUUID(),
            kind: 'provenance',
            sourceId: 'ehr',
            resourceType: 'Patient',
            resourceId: `p-${n}`,
            record: `{"n":${n}}`,
            leafHash: leaf(n),
          });
        }
      });
      await store.transaction(async (trx) => {
        const head = await store.ledger.lockHead(trx);
        const pending = await store.ledger.unsequenced(trx, 10_000);
        const frontier = await loadFrontier(
          { getNodes: (keys) => store.ledger.getNodes(keys, trx) },
          head.treeSize,
        );
        const appended = appendLeaves(
          head.treeSize,
          frontier,
          pending.map((p) => p.leafHash),
        );
        await store.ledger.appendSequenced(
          trx,
          pending.map((p, i) => ({ id: p.id, leafIndex: head.treeSize + i })),
          appended.nodes,
          { treeSize: appended.treeSize, root: appended.root },
        );
      });
      memory.append(Array.from({ length: batch }, (_, i) => leaf(total + i)));
      total += batch;
      heads.push(total);
    }
  }, 120_000);

  afterAll(async () => {
    await store?.close();
    await database?.drop();
  });

  it('stores exactly the nodes of the in-memory log, and the same head', async () => {
    const head = await store.ledger.head();
    expect(head.treeSize).toBe(memory.treeSize);
    expect(head.root.equals(await treeRoot(memory, memory.treeSize))).toBe(true);
    const { count } = await store.db
      .selectFrom('ledger_nodes')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .executeTakeFirstOrThrow();
    expect(Number(count)).toBe(memory.nodeCount);
  });

  it('proves every pair of batch heads consistent from stored subtrees, in one round trip each', async () => {
    const reader = countingReader(store.ledger);
    const pairs = heads.flatMap((m, i) => heads.slice(i).map((n) => [m, n] as const));
    expect(pairs.length).toBeGreaterThan(200);
    for (const [m, n] of pairs) {
      const before = reader.calls;
      const proof = await consistencyProof(reader, m, n);
      expect(reader.calls - before).toBe(m === n ? 0 : 1);
      expect(proof).toEqual(await consistencyProof(memory, m, n));
      const [r1, r2] = await Promise.all([treeRoot(reader, m), treeRoot(reader, n)]);
      expect(verifyConsistency(m, n, proof, r1, r2)).toBe(true);
      expect(proof.length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(n)));
      if (proof.length > 0) {
        const k = (m * 31 + n) % proof.length;
        const tampered = proof.map((h, i) => (i === k ? Buffer.from(h).fill(h[0] ^ 1, 0, 1) : h));
        expect(verifyConsistency(m, n, tampered, r1, r2)).toBe(false);
      }
    }
  });

  it('proves random leaves into every batch head, in one round trip each', async () => {
    const reader = countingReader(store.ledger);
    const next = random(6962);
    for (const size of heads) {
      const root = await treeRoot(reader, size);
      for (let t = 0; t < 5; t += 1) {
        const index = Math.floor(next() * size);
        const before = reader.calls;
        const path = await inclusionProof(reader, index, size);
        expect(reader.calls - before).toBe(size === 1 ? 0 : 1);
        expect(verifyInclusion(leaf(index), index, size, path, root)).toBe(true);
        expect(verifyInclusion(leaf(index + 1), index, size, path, root)).toBe(false);
      }
    }
  });

  it('reads nodes with indexes beyond 2^32, and ignores keys that are not stored', async () => {
    const far = { level: 0, index: 2 ** 40 + 3, hash: Buffer.alloc(32, 0xab) };
    await store.transaction((trx) => store.ledger.insertNodes(trx, [far]));
    const found = await store.ledger.getNodes([
      { level: 0, index: far.index },
      { level: 5, index: 2 ** 45 },
    ]);
    expect([...found.keys()]).toEqual([`0:${far.index}`]);
    expect(found.get(`0:${far.index}`)?.equals(far.hash)).toBe(true);
    await store.db.deleteFrom('ledger_nodes').where('idx', '=', String(far.index)).execute();
  });

  it('lists checkpoints newest first and finds them by size', async () => {
    const zero = Buffer.alloc(32);
    const anchor = (n: number) => ({
      chainId: '31337',
      contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
      txHash: `0x${n.toString(16).padStart(64, '0')}`,
      blockNumber: n,
      blockHash: `0x${(n + 1).toString(16).padStart(64, '0')}`,
      logIndex: 0,
      gasUsed: 38_000,
    });
    let previous: { size: number; root: Buffer } = { size: 0, root: zero };
    for (const size of heads.slice(0, 4)) {
      const root = await treeRoot(memory, size);
      await store.ledger.insertCheckpoint({
        treeSize: size,
        root,
        previousSize: previous.size,
        previousRoot: previous.root,
        manifestHash: Buffer.alloc(32, size % 256),
        ...anchor(size),
      });
      previous = { size, root };
    }
    const listed = await store.ledger.listCheckpoints(10);
    expect(listed.map((c) => c.treeSize)).toEqual(heads.slice(0, 4).reverse());
    expect(listed[0].anchoredAt).toBeInstanceOf(Date);
    expect((await store.ledger.listCheckpoints(2)).map((c) => c.treeSize)).toEqual(
      heads.slice(2, 4).reverse(),
    );
    expect((await store.ledger.latestCheckpoint())?.treeSize).toBe(heads[3]);
    const found = await store.ledger.checkpointsAt([heads[2], heads[0], heads[3] + 1]);
    expect(found.map((c) => c.treeSize)).toEqual([heads[0], heads[2]]);
    expect(found[1].previousSize).toBe(heads[1]);
  });
});
