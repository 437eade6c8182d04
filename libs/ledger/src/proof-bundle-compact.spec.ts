import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ZeroHash } from 'ethers';
import { AnchorClient } from './anchor-client';
import { ensureAnchorDeployment } from './anchor-deployment';
import { consistencyProofDocument } from './consistency-proof';
import { type LedgerEventRecord, eventLeafHash } from './event-record';
import { InMemoryMerkleLog } from './in-memory-merkle-log';
import { isLedgerError } from './ledger-error';
import { consistencyProof, inclusionProof, treeRoot } from './merkle-log';
import { type AnchoredProofBundle, anchoredProofBundle } from './proof-bundle';
import {
  COMPACT_PROOF_BUNDLE_FORMAT,
  type CompactProofBundle,
  compactProofBundle,
  expandProofBundle,
} from './proof-bundle-compact';
import { verifyProofBundle } from './proof-bundle-verifier';
import { type TestChain, startTestChain, testHash } from './testing/test-chain.fixture';

const ROOT_DIR = join(__dirname, '..', '..', '..');
const CLI = join(__dirname, 'cli', 'verify.ts');

/** An event record shaped like the worker's provenance records (three keyed digests). */
function eventRecord(i: number): LedgerEventRecord {
  return {
    v: 1,
    kind: 'provenance',
    eventId: `0b6c1f9e-4a8d-4c1e-9f3a-${String(i).padStart(12, '0')}`,
    recorded: '2026-11-25T06:51:00.000Z',
    source: 'st-mary-epic',
    subject: 'Observation',
    resourceDigest: testHash(`resource-${i}`),
    provenanceDigest: testHash(`provenance-${i}`),
    patient: testHash(`patient-${i}`),
    actor: 'source:st-mary-epic',
  };
}

const leaf = (i: number): Buffer => createHash('sha256').update(`leaf-${i}`).digest();

function failureOf(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
}

/** The compact text with one base64url character of `p` changed at `at`. */
function flipP(compact: CompactProofBundle, at: number): CompactProofBundle {
  const chars = [...compact.p];
  chars[at] = chars[at] === 'A' ? 'B' : 'A';
  return { ...compact, p: chars.join('') };
}

describe('compact proof bundles (v2)', () => {
  let t: TestChain;
  let bundle: AnchoredProofBundle;
  let compact: CompactProofBundle;
  /** A 2^20-leaf-deep path, as at 10^6 leaves, anchored nowhere: for size and round trips only. */
  let deep: AnchoredProofBundle;

  beforeAll(async () => {
    t = await startTestChain();
    const deployment = await ensureAnchorDeployment({
      provider: t.provider,
      signer: t.admin,
      deploymentFile: join(t.dataDir, 'chain', 'deployment.json'),
      admin: t.admin.address,
      anchorer: t.anchorer.address,
    });
    const client = new AnchorClient({
      provider: t.provider,
      signer: t.anchorer,
      contractAddress: deployment.address,
    });
    const log = new InMemoryMerkleLog();
    const event = eventRecord(1);
    const leaves = Array.from({ length: 1_000 }, (_, i) => (i === 617 ? eventLeafHash(event) : leaf(i)));
    const head = log.append(leaves);
    const receipt = await client.anchorHead({
      treeSize: head.treeSize,
      root: head.root,
      previousSize: 0,
      previousRoot: ZeroHash,
      manifestHash: testHash('manifest'),
    });
    bundle = anchoredProofBundle({
      event,
      leafHash: eventLeafHash(event),
      leafIndex: 617,
      treeSize: 1_000,
      inclusionPath: await inclusionProof(log, 617, 1_000),
      root: head.root,
      anchor: receipt,
    });
    compact = compactProofBundle(bundle);
    deep = {
      ...bundle,
      leafIndex: 765_432,
      treeSize: 1_000_000,
      inclusionPath: Array.from({ length: 20 }, (_, i) => testHash(`path-${i}`)),
      anchor: { ...bundle.anchor, chainId: '2026112500', blockNumber: 48_151_623, logIndex: 211 },
    };
  }, 30_000);

  afterAll(async () => {
    await t.close();
  });

  it('expands back to exactly the v1 bundle, and leaves any other document alone', () => {
    expect(compact.f).toBe(COMPACT_PROOF_BUNDLE_FORMAT);
    expect(Object.keys(compact)).toEqual(['f', 'e', 'p']);
    expect(expandProofBundle(JSON.parse(JSON.stringify(compact)))).toEqual(bundle);
    // With a deep path, big numbers, and a consistency proof.
    const withConsistency = { ...deep, consistency: bundle.consistency };
    expect(expandProofBundle(compactProofBundle(deep))).toMatchObject({
      leafIndex: 765_432,
      treeSize: 1_000_000,
      inclusionPath: deep.inclusionPath,
      anchor: deep.anchor,
    });
    expect(compactProofBundle(withConsistency)).not.toHaveProperty('c');
    expect(expandProofBundle(bundle)).toBe(bundle);
    const other = { bundles: [] };
    expect(expandProofBundle(other)).toBe(other);
  });

  it('is under 1.5 KB with a 20-hash path (10^6 leaves), where v1 is over 2 KB', () => {
    const compactBytes = Buffer.byteLength(JSON.stringify(compactProofBundle(deep)));
    const v1Bytes = Buffer.byteLength(JSON.stringify(deep));
    expect(compactBytes).toBeLessThan(1_536);
    expect(v1Bytes).toBeGreaterThan(2_000);
  });

  it('verifies against the chain like its v1 form', async () => {
    const v1 = await verifyProofBundle(bundle, t.provider);
    const v2 = await verifyProofBundle(JSON.parse(JSON.stringify(compact)), t.provider);
    expect(v1.verified).toBe(true);
    expect(v2).toEqual(v1);
  });

  it('carries a consistency proof in `c`, checked with --checkpoint like v1', async () => {
    const log = new InMemoryMerkleLog();
    log.append(Array.from({ length: 1_000 }, (_, i) => (i === 617 ? eventLeafHash(bundle.event) : leaf(i))));
    const document = consistencyProofDocument({
      fromSize: 400,
      fromRoot: await treeRoot(log, 400),
      toSize: 1_000,
      toRoot: await treeRoot(log, 1_000),
      consistencyPath: await consistencyProof(log, 400, 1_000),
    });
    const withProof = compactProofBundle({ ...bundle, consistency: document });
    expect(withProof.c).toEqual(document);
    expect(expandProofBundle(withProof)).toEqual({ ...bundle, consistency: document });
    const tamperedProof = compactProofBundle({
      ...bundle,
      consistency: { ...document, consistencyPath: [testHash('x'), ...document.consistencyPath.slice(1)] },
    });
    expect(await verifyProofBundle(tamperedProof, t.provider)).toMatchObject({
      verified: false,
      check: 'consistency',
    });
  });

  it('fails single-character changes across `p` and a changed record, naming the check', async () => {
    const checks = new Set<string>();
    for (let at = 0; at < compact.p.length; at += 7) {
      const result = await verifyProofBundle(flipP(compact, at), t.provider);
      expect(result.verified).toBe(false);
      if (!result.verified) checks.add(result.check);
    }
    const edited = await verifyProofBundle(
      { ...compact, e: { ...compact.e, subject: 'Condition' } },
      t.provider,
    );
    expect(edited).toMatchObject({ verified: false, check: 'anchored-event' });
    // Leaf index, path and root errors all surface as a root the chain never published.
    expect(checks.has('anchored-event')).toBe(true);
    expect(checks.has('transaction')).toBe(true);
  }, 60_000);

  it('refuses malformed compact bundles as INVALID_PROOF_BUNDLE naming the field, and the verifier says "format"', async () => {
    const cases: [unknown, string][] = [
      [{ ...compact, p: compact.p.slice(0, 40) }, 'p'],
      [{ ...compact, p: `${compact.p}AA` }, 'p'],
      [{ ...compact, p: 'not base64url!' }, 'p'],
      [{ ...compact, p: 7 }, 'p'],
      [{ ...compact, extra: 1 }, 'extra'],
    ];
    for (const [document, field] of cases) {
      const error = failureOf(() => expandProofBundle(document));
      expect(isLedgerError(error, 'INVALID_PROOF_BUNDLE')).toBe(true);
      expect(error).toMatchObject({ details: { field } });
      expect(await verifyProofBundle(document, t.provider)).toMatchObject({
        verified: false,
        check: 'format',
      });
    }
  });

  it('npm run verify reads a GET /ledger/proofs answer in the compact encoding', async () => {
    const file = join(t.dataDir, 'compact-proofs.json');
    await writeFile(file, JSON.stringify({ source: 'demo', resource: 'Observation/1', bundles: [compact] }));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', CLI, file, '--rpc', t.chain.rpcUrl],
      { cwd: ROOT_DIR, timeout: 60_000 },
    );
    expect(stdout).toContain('verified');
    expect(stdout).toContain(`is leaf 617 of the tree of 1000 anchored on chain 31337`);
  }, 60_000);
});
