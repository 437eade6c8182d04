/**
 * Ledger benchmark, in one run on the embedded dev chain (anvil in a temp dir, FhirTrailAnchor
 * deployed by the app's own wiring) and a throwaway PostgreSQL database:
 *
 * - gas per event when anchoring per event (one anchor transaction per leaf, as MedRec-style designs
 *   do: the baseline) against one anchor per batch of 100, 1,000 and 10,000 leaves, each through the
 *   worker's real path (`LedgerAnchorService.run()`: sequence pending events in PostgreSQL, store the
 *   subtrees, anchor the head, record the checkpoint), which also gives the anchoring throughput;
 * - inclusion proof generation and verification at 10^6 leaves, from the in-memory log and from the
 *   PostgreSQL node store (the same 10^6-leaf tree, its nodes bulk-loaded), plus a consistency proof;
 * - the size of a real proof bundle at 10^6 leaves (anchored on chain, verified against it), in
 *   the compact v2 form and in the v1 form.
 *
 * Runs alone with `npx tsx bench/ledger.bench.ts`; `BENCH_LEDGER_LEAVES` changes the 10^6.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Logger } from '@nestjs/common';
import { loadConfig } from '@fhir-trail/config';
import {
  InMemoryMerkleLog,
  type LedgerEventRecord,
  type MerkleNode,
  type MerkleNodeReader,
  anchoredProofBundle,
  compactProofBundle,
  consistencyProof,
  eventLeafEntry,
  findFreePort,
  inclusionProof,
  leafHash,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
  verifyProofBundle,
} from '@fhir-trail/ledger';
import { type LedgerConnection, openLedgerConnection } from '@fhir-trail/runtime';
import { Store } from '@fhir-trail/store';
import { type AnchoredBatch, LedgerAnchorService } from '../apps/worker/src/anchor/ledger-anchor.service';
import {
  type Timing,
  seededRandom,
  syntheticLeaf,
  table,
  throwawayDatabase,
  timed,
  timing,
} from './ledger-support';

const LEAVES = Number(process.env.BENCH_LEDGER_LEAVES ?? 1_000_000);
/** Where the one real event record sits in the big tree (any index works; this one is not special). */
const EVENT_INDEX = Math.floor(LEAVES * 0.7654321);
/** Runs per mode: [leaves per anchor, anchors]. The per-event baseline is one leaf per anchor. */
const MODES: readonly (readonly [leaves: number, anchors: number])[] = [
  [1, 100],
  [100, 5],
  [1_000, 5],
  [10_000, 2],
];
const PROOF_SAMPLES_MEMORY = 2_000;
const PROOF_SAMPLES_STORE = 300;
const NODE_CHUNK = 50_000;
/** Proofs computed before timing starts, so the JIT and the connection pool are warm. */
const WARM_UP_PROOFS = 50;

const GOALS = {
  gasPerEventAt1000: 100,
  cheaperThanPerEventAt1000: 300,
  inclusionProofMs: 5,
  bundleBytes: 1_536,
};

interface ModeFigures {
  readonly leavesPerAnchor: number;
  readonly anchors: number;
  readonly gasPerAnchor: number;
  readonly gasPerEvent: number;
  /** How many times cheaper per event than anchoring every event on its own. */
  readonly cheaperThanPerEvent: number;
  /** Events sequenced and anchored per second (PostgreSQL + chain, receipts awaited). */
  readonly eventsPerSecond: number;
  readonly msPerAnchor: number;
}

export async function ledgerBenchmark(): Promise<Record<string, unknown>> {
  const started = Date.now();
  Logger.overrideLogger(false); // the anchor service logs one line per anchor
  const database = await throwawayDatabase('fhirtrail_bench_ledger');
  const dataDir = await mkdtemp(join(tmpdir(), 'fhir-trail-bench-ledger-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: database.url,
    DATA_DIR: dataDir,
    LEDGER_EMBEDDED_PORT: String(await findFreePort()),
    LOG_LEVEL: 'error',
    // Its own Redis namespace: the anchorer's signer lease must not meet a dev worker's.
    QUEUE_PREFIX: `bench-ledger-${randomUUID().slice(0, 8)}`,
  });
  let store: Store | undefined;
  let ledger: LedgerConnection | undefined;
  let anchorer: LedgerAnchorService | undefined;
  try {
    store = await Store.open({
      databaseUrl: config.databaseUrl,
      masterKey: config.ledger.masterKey,
      migrate: true,
    });
    ledger = await openLedgerConnection(config, { outbox: store.anchorOutbox }); // starts anvil under dataDir and deploys the contract
    const service = new LedgerAnchorService(config, store, ledger);
    anchorer = service;

    // 1. The 10^6-leaf tree: in memory, then its nodes bulk-loaded into PostgreSQL as the sequencer
    //    would have stored them, and its head anchored (the contract's first, cold-storage anchor).
    const event = sampleEvent();
    const eventLeaf = leafHash(eventLeafEntry(event));
    const memory = new InMemoryMerkleLog();
    const built = await timed(() => {
      const CHUNK = 100_000;
      const nodes: MerkleNode[] = [];
      for (let start = 0; start < LEAVES; start += CHUNK) {
        const leaves = Array.from({ length: Math.min(CHUNK, LEAVES - start) }, (_, i) =>
          start + i === EVENT_INDEX ? eventLeaf : syntheticLeaf(start + i),
        );
        for (const node of memory.append(leaves).nodes) nodes.push(node);
      }
      return nodes;
    });
    const root = await treeRoot(memory, LEAVES);
    const loaded = await timed(async () => {
      const nodes = built.value;
      for (let i = 0; i < nodes.length; i += NODE_CHUNK) {
        await store!.transaction((trx) => store!.ledger.insertNodes(trx, nodes.slice(i, i + NODE_CHUNK)));
      }
      await store!.db
        .updateTable('ledger_state')
        .set({ tree_size: LEAVES, root })
        .where('id', '=', 1)
        .execute();
    });
    const nodeCount = built.value.length;
    built.value.length = 0;
    const first = await service.run();
    if (first?.checkpoint.treeSize !== LEAVES) throw new Error('the 10^6-leaf head was not anchored');

    // 2. Inclusion proofs at 10^6 leaves, and one consistency proof.
    const next = seededRandom(20_260_125);
    const memoryProofs = await proofTimings(memory, PROOF_SAMPLES_MEMORY, next);
    const reader: MerkleNodeReader = { getNodes: (keys) => store!.ledger.getNodes(keys) };
    const storeProofs = await proofTimings(reader, PROOF_SAMPLES_STORE, next);
    const half = Math.floor(LEAVES / 2) + 1;
    const consistency = await timed(() => consistencyProof(reader, half, LEAVES));
    if (!verifyConsistency(half, LEAVES, consistency.value, await treeRoot(memory, half), root)) {
      throw new Error('the store-backed consistency proof does not verify');
    }

    // 3. A real proof bundle at 10^6 leaves, verified against the chain.
    const bundle = anchoredProofBundle({
      event,
      leafHash: eventLeaf,
      leafIndex: EVENT_INDEX,
      treeSize: LEAVES,
      inclusionPath: await inclusionProof(reader, EVENT_INDEX, LEAVES),
      root,
      anchor: first.checkpoint,
    });
    const verification = await timed(() => verifyProofBundle(bundle, ledger!.provider));
    if (!verification.value.verified) throw new Error(`bundle not verified: ${verification.value.reason}`);
    const json = JSON.stringify(bundle);
    const compact = compactProofBundle(bundle);
    const compactVerification = await verifyProofBundle(compact, ledger.provider);
    if (!compactVerification.verified)
      throw new Error(`compact bundle not verified: ${compactVerification.reason}`);
    const bundleBytes = {
      /** What GET /ledger/proofs?encoding=compact serves and `npm run verify` reads (v2). */
      compact: Buffer.byteLength(JSON.stringify(compact)),
      json: Buffer.byteLength(json),
      jsonPretty: Buffer.byteLength(JSON.stringify(bundle, null, 2)),
      gzip: gzipSync(json).length,
      inclusionPathHashes: bundle.inclusionPath.length,
      /** The same content in a binary encoding (raw 32-byte hashes), for comparison. */
      binaryEstimate:
        Buffer.byteLength(eventLeafEntry(event)) + 32 * (bundle.inclusionPath.length + 4) + 20 + 8 * 4,
    };

    // 4. Per-event anchoring against batches, through the worker's path, on top of the big tree.
    const modes: ModeFigures[] = [];
    let perEventGas = 0;
    for (const [leavesPerAnchor, anchors] of MODES) {
      const batches: AnchoredBatch[] = [];
      let ms = 0;
      for (let a = 0; a < anchors; a += 1) {
        await insertPendingEvents(store, leavesPerAnchor);
        const run = await timed(() => service.run());
        if (run.value?.leaves !== leavesPerAnchor) throw new Error(`expected a batch of ${leavesPerAnchor}`);
        batches.push(run.value);
        ms += run.ms;
      }
      const gasPerAnchor = batches.reduce((sum, b) => sum + b.checkpoint.gasUsed, 0) / batches.length;
      if (leavesPerAnchor === 1) perEventGas = gasPerAnchor;
      modes.push({
        leavesPerAnchor,
        anchors,
        gasPerAnchor: Math.round(gasPerAnchor),
        gasPerEvent: round(gasPerAnchor / leavesPerAnchor, 2),
        cheaperThanPerEvent: round(perEventGas / (gasPerAnchor / leavesPerAnchor), 1),
        eventsPerSecond: Math.round((leavesPerAnchor * anchors) / (ms / 1000)),
        msPerAnchor: round(ms / anchors, 1),
      });
    }

    const at1000 = modes.find((m) => m.leavesPerAnchor === 1_000)!;
    const slowestMedian = Math.max(
      storeProofs.generate.medianMs,
      memoryProofs.generate.medianMs,
      memoryProofs.verify.medianMs,
    );
    const result = {
      benchmark: 'ledger',
      at: new Date().toISOString(),
      node: process.version,
      chain: 'anvil (embedded, automine)',
      leaves: LEAVES,
      durationMs: 0,
      build: {
        inMemoryMs: Math.round(built.ms),
        postgresLoadMs: Math.round(loaded.ms),
        nodes: nodeCount,
      },
      firstAnchorGas: first.checkpoint.gasUsed,
      anchoring: modes,
      inclusionProof: { inMemory: memoryProofs, postgres: storeProofs },
      consistencyProof: {
        fromSize: half,
        toSize: LEAVES,
        hashes: consistency.value.length,
        postgresMs: round(consistency.ms, 3),
      },
      bundle: { ...bundleBytes, verifyAgainstChainMs: round(verification.ms, 1) },
      goals: {
        gasPerEventAt1000: {
          goal: `< ${GOALS.gasPerEventAt1000}`,
          measured: at1000.gasPerEvent,
          met: at1000.gasPerEvent < GOALS.gasPerEventAt1000,
        },
        cheaperThanPerEventAt1000: {
          goal: `> ${GOALS.cheaperThanPerEventAt1000}x`,
          measured: at1000.cheaperThanPerEvent,
          met: at1000.cheaperThanPerEvent > GOALS.cheaperThanPerEventAt1000,
        },
        inclusionProofMs: {
          goal: `< ${GOALS.inclusionProofMs} ms (median: generation from PostgreSQL and in memory, verification)`,
          measured: slowestMedian,
          met: slowestMedian < GOALS.inclusionProofMs,
        },
        bundleBytes: {
          goal: `< ${GOALS.bundleBytes} (compact v2 form)`,
          measured: bundleBytes.compact,
          met: bundleBytes.compact < GOALS.bundleBytes,
        },
      },
    };
    result.durationMs = Date.now() - started;
    process.stdout.write(report(result, modes));
    await mkdir(join(__dirname, 'results'), { recursive: true });
    await writeFile(join(__dirname, 'results', 'ledger.json'), `${JSON.stringify(result)}\n`);
    return result;
  } finally {
    await anchorer?.onApplicationShutdown();
    await store?.close();
    await ledger?.close();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Inclusion proof generation (from `reader`) and verification times for random leaves of the big tree. */
async function proofTimings(
  reader: MerkleNodeReader,
  samples: number,
  next: () => number,
): Promise<{ generate: Timing; verify: Timing; hashes: number }> {
  const root = await treeRoot(reader, LEAVES);
  const generate: number[] = [];
  const verify: number[] = [];
  let hashes = 0;
  for (let s = 0; s < WARM_UP_PROOFS; s += 1) {
    const index = Math.floor(next() * LEAVES);
    verifyInclusion(syntheticLeaf(index), index, LEAVES, await inclusionProof(reader, index, LEAVES), root);
  }
  for (let s = 0; s < samples; s += 1) {
    const index = Math.floor(next() * LEAVES);
    const leaf = index === EVENT_INDEX ? undefined : syntheticLeaf(index);
    const proof = await timed(() => inclusionProof(reader, index, LEAVES));
    generate.push(proof.ms);
    hashes = Math.max(hashes, proof.value.length);
    if (leaf === undefined) continue;
    const checked = await timed(() => verifyInclusion(leaf, index, LEAVES, proof.value, root));
    if (!checked.value) throw new Error(`the inclusion proof of leaf ${index} does not verify`);
    verify.push(checked.ms);
  }
  return { generate: timing(generate), verify: timing(verify), hashes };
}

/** Pending ledger events as ingest leaves them: records, leaf hashes, no leaf index yet. */
async function insertPendingEvents(store: Store, count: number): Promise<void> {
  const CHUNK = 2_000;
  for (let start = 0; start < count; start += CHUNK) {
    const rows = Array.from({ length: Math.min(CHUNK, count - start) }, () => {
      const record = sampleEvent();
      const entry = eventLeafEntry(record);
      return {
        event_id: record.eventId,
        kind: record.kind,
        source_id: record.source,
        resource_type: record.subject,
        resource_id: randomUUID(),
        record: Buffer.from(entry).toString('utf8'),
        leaf_hash: leafHash(entry),
      };
    });
    await store.db.insertInto('ledger_events').values(rows).execute();
  }
}

/** An event record shaped like the worker's: provenance with the three keyed digests. */
function sampleEvent(): LedgerEventRecord {
  const digest = (): string => `0x${randomUUID().replace(/-/g, '').repeat(2)}`;
  return {
    v: 1,
    kind: 'provenance',
    eventId: randomUUID(),
    recorded: new Date().toISOString(),
    source: 'st-mary-epic',
    subject: 'Observation',
    resourceDigest: digest(),
    provenanceDigest: digest(),
    patient: digest(),
    actor: 'source:st-mary-epic',
  };
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function report(
  result: {
    leaves: number;
    build: { inMemoryMs: number; postgresLoadMs: number; nodes: number };
    firstAnchorGas: number;
    inclusionProof: {
      inMemory: Awaited<ReturnType<typeof proofTimings>>;
      postgres: Awaited<ReturnType<typeof proofTimings>>;
    };
    consistencyProof: { fromSize: number; toSize: number; hashes: number; postgresMs: number };
    bundle: {
      compact: number;
      json: number;
      jsonPretty: number;
      gzip: number;
      inclusionPathHashes: number;
      binaryEstimate: number;
      verifyAgainstChainMs: number;
    };
    goals: Record<string, { goal: string; measured: number; met: boolean }>;
  },
  modes: readonly ModeFigures[],
): string {
  const mark = (met: boolean): string => (met ? 'met' : 'MISSED');
  const n = result.leaves.toLocaleString('en');
  const { inMemory, postgres } = result.inclusionProof;
  return [
    `ledger: embedded anvil (automine), PostgreSQL; the log holds ${n} leaves (${result.build.nodes.toLocaleString('en')} nodes: ` +
      `${result.build.inMemoryMs} ms to build in memory, ${result.build.postgresLoadMs} ms to load into PostgreSQL)`,
    '',
    'anchoring through the worker (sequence in PostgreSQL + one anchor tx + receipt), after a first anchor of ' +
      `${result.firstAnchorGas} gas (cold storage)`,
    table([
      [
        'leaves per anchor',
        'anchors',
        'gas per anchor',
        'gas per event',
        'x cheaper than per-event',
        'events/s',
        'ms per anchor',
      ],
      ...modes.map((m) => [
        m.leavesPerAnchor === 1 ? '1 (per event, baseline)' : m.leavesPerAnchor.toLocaleString('en'),
        m.anchors,
        m.gasPerAnchor,
        m.gasPerEvent,
        m.cheaperThanPerEvent,
        m.eventsPerSecond,
        m.msPerAnchor,
      ]),
    ]),
    '',
    `proofs at ${n} leaves`,
    table([
      ['what', 'samples', 'median ms', 'p99 ms', 'max ms'],
      [
        'inclusion proof, in-memory log',
        inMemory.generate.samples,
        inMemory.generate.medianMs,
        inMemory.generate.p99Ms,
        inMemory.generate.maxMs,
      ],
      [
        'inclusion proof, PostgreSQL nodes',
        postgres.generate.samples,
        postgres.generate.medianMs,
        postgres.generate.p99Ms,
        postgres.generate.maxMs,
      ],
      [
        'inclusion verification',
        inMemory.verify.samples,
        inMemory.verify.medianMs,
        inMemory.verify.p99Ms,
        inMemory.verify.maxMs,
      ],
      [
        `consistency proof ${result.consistencyProof.fromSize}→${result.consistencyProof.toSize}, PostgreSQL`,
        1,
        result.consistencyProof.postgresMs,
        '',
        '',
      ],
    ]),
    `inclusion path: ${inMemory.hashes} hashes; consistency proof: ${result.consistencyProof.hashes} hashes`,
    '',
    `proof bundle at ${n} leaves (${result.bundle.inclusionPathHashes}-hash path): ${result.bundle.compact} bytes compact (v2), ` +
      `${result.bundle.json} bytes v1 JSON (${result.bundle.jsonPretty} pretty, ${result.bundle.gzip} gzip, ~${result.bundle.binaryEstimate} as raw binary); ` +
      `verified against the chain in ${result.bundle.verifyAgainstChainMs} ms`,
    '',
    table([
      ['goal', 'target', 'measured', ''],
      [
        'gas per event at 1,000 per batch',
        result.goals.gasPerEventAt1000.goal,
        result.goals.gasPerEventAt1000.measured,
        mark(result.goals.gasPerEventAt1000.met),
      ],
      [
        'cheaper than per-event at 1,000',
        result.goals.cheaperThanPerEventAt1000.goal,
        result.goals.cheaperThanPerEventAt1000.measured,
        mark(result.goals.cheaperThanPerEventAt1000.met),
      ],
      [
        `inclusion proof at ${n} leaves (ms)`,
        result.goals.inclusionProofMs.goal,
        result.goals.inclusionProofMs.measured,
        mark(result.goals.inclusionProofMs.met),
      ],
      [
        'proof bundle (bytes, compact JSON)',
        result.goals.bundleBytes.goal,
        result.goals.bundleBytes.measured,
        mark(result.goals.bundleBytes.met),
      ],
    ]),
    '',
  ].join('\n');
}

if (require.main === module) {
  ledgerBenchmark().catch((error: unknown) => {
    process.stderr.write(
      `benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  });
}
