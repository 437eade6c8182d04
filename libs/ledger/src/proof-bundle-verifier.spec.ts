import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ZeroHash } from 'ethers';
import { type AnchorReceipt, AnchorClient } from './anchor-client';
import { ensureAnchorDeployment } from './anchor-deployment';
import { type AnchoredCheckpoint, anchoredCheckpoint } from './checkpoint';
import { consistencyProofDocument } from './consistency-proof';
import { type LedgerEventRecord, eventLeafHash } from './event-record';
import { InMemoryMerkleLog } from './in-memory-merkle-log';
import { consistencyProof, inclusionProof, treeRoot } from './merkle-log';
import { type ProofBundle, anchoredProofBundle } from './proof-bundle';
import { verifyCheckpoint, verifyProofBundle } from './proof-bundle-verifier';
import { type TestChain, startTestChain, testHash } from './testing/test-chain.fixture';

const ROOT_DIR = join(__dirname, '..', '..', '..');
const CLI = join(__dirname, 'cli', 'verify.ts');

function eventRecord(i: number): LedgerEventRecord {
  return {
    v: 1,
    kind: i % 2 === 0 ? 'provenance' : 'sharing',
    eventId: `evt-${i}`,
    recorded: `2026-11-25T06:5${i}:00.000Z`,
    source: 'demo',
    subject: 'Observation',
    resourceDigest: testHash(`resource-${i}`),
    actor: 'org:bridge',
    ...(i % 2 === 0 ? {} : { recipient: 'org:clinic-b', purpose: 'TREAT' }),
  };
}

/** The bundle as a JSON document, with one textual change (the way someone would tamper with a file). */
function tampered(bundle: ProofBundle, from: string, to: string): unknown {
  const text = JSON.stringify(bundle);
  expect(text).toContain(from);
  return JSON.parse(text.replace(from, to)) as unknown;
}

/** Flips the last hex digit of a 0x value. */
function flipLast(hex: string): string {
  return hex.slice(0, -1) + (hex.endsWith('0') ? '1' : '0');
}

async function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', CLI, ...args],
      {
        cwd: ROOT_DIR,
        // Generous: several CLI processes start at once, each compiling with tsx, on busy CI machines.
        timeout: 60_000,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

describe('verifyProofBundle end to end', () => {
  let t: TestChain;
  let bundle: ProofBundle;
  let later: AnchorReceipt;
  /** The head of 5 leaves as `GET /ledger/checkpoints` lists it, and a bundle for leaf 6 in the head of 7. */
  let earlier: AnchoredCheckpoint;
  let laterBundle: ProofBundle;

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
    const events = Array.from({ length: 7 }, (_, i) => eventRecord(i));
    const log = new InMemoryMerkleLog();
    const first = log.append(events.slice(0, 5).map(eventLeafHash));
    const anchored = await client.anchorHead({
      treeSize: first.treeSize,
      root: first.root,
      previousSize: 0,
      previousRoot: ZeroHash,
      manifestHash: testHash('manifest-5'),
    });
    // The log grows and a later head is anchored: bundles for the earlier head stay valid.
    const second = log.append(events.slice(5).map(eventLeafHash));
    later = await client.anchorHead({
      treeSize: second.treeSize,
      root: second.root,
      previousSize: first.treeSize,
      previousRoot: first.root,
      manifestHash: testHash('manifest-7'),
    });
    earlier = anchoredCheckpoint({
      treeSize: 5,
      root: first.root,
      previousSize: 0,
      previousRoot: Buffer.alloc(32),
      manifestHash: Buffer.from(testHash('manifest-5').slice(2), 'hex'),
      anchor: anchored,
      anchoredAt: new Date('2026-11-25T07:00:00.000Z'),
    });
    laterBundle = {
      ...anchoredProofBundle({
        event: events[6],
        leafHash: eventLeafHash(events[6]),
        leafIndex: 6,
        treeSize: 7,
        inclusionPath: await inclusionProof(log, 6, 7),
        root: second.root,
        anchor: later,
      }),
      consistency: consistencyProofDocument({
        fromSize: 5,
        fromRoot: first.root,
        toSize: 7,
        toRoot: second.root,
        consistencyPath: await consistencyProof(log, 5, 7),
      }),
    };
    const event = events[2];
    bundle = anchoredProofBundle({
      event,
      leafHash: eventLeafHash(event),
      leafIndex: 2,
      treeSize: 5,
      inclusionPath: await inclusionProof(log, 2, 5),
      root: await treeRoot(log, 5),
      anchor: anchored,
    });
  }, 30_000);

  afterAll(async () => {
    await t.close();
  });

  it('verifies an untouched bundle, against an endpoint and nothing else', async () => {
    expect(JSON.stringify(bundle).length).toBeLessThan(1_500);
    const result = await verifyProofBundle(JSON.parse(JSON.stringify(bundle)), t.provider, {
      minConfirmations: 2,
    });
    expect(result).toEqual({
      verified: true,
      eventId: 'evt-2',
      kind: 'provenance',
      leafIndex: 2,
      treeSize: 5,
      root: bundle.root,
      chainId: '31337',
      contract: bundle.anchor?.contract,
      txHash: bundle.anchor?.txHash,
      blockNumber: bundle.anchor?.blockNumber,
      blockHash: bundle.anchor?.blockHash,
      confirmations: 2,
    });
  });

  it.each<[string, (b: ProofBundle) => unknown, string, RegExp]>([
    [
      'one character of the event record',
      (b) => tampered(b, '"actor":"org:bridge"', '"actor":"org:bridgf"'),
      'leaf-hash',
      /^event record does not match leafHash: the record was altered$/,
    ],
    [
      'the leaf hash',
      (b) => tampered(b, b.leafHash, flipLast(b.leafHash)),
      'leaf-hash',
      /record was altered/,
    ],
    [
      'a hash of the path',
      (b) => tampered(b, b.inclusionPath[1], flipLast(b.inclusionPath[1])),
      'inclusion',
      /inclusion path does not lead/,
    ],
    [
      'the root',
      (b) => tampered(b, b.root as string, flipLast(b.root as string)),
      'inclusion',
      /to root in a tree of 5 leaves/,
    ],
    ['the leaf index', (b) => tampered(b, '"leafIndex":2', '"leafIndex":3'), 'inclusion', /leaf 3/],
    [
      'the chain id',
      (b) => tampered(b, '"chainId":"31337"', '"chainId":"31338"'),
      'chain-id',
      /serves chain 31337, but the bundle was anchored on chain 31338/,
    ],
    [
      'the tx hash',
      (b) => tampered(b, b.anchor?.txHash as string, flipLast(b.anchor?.txHash as string)),
      'transaction',
      /was not found on chain 31337/,
    ],
    [
      'the contract',
      (b) => tampered(b, b.anchor?.contract as string, t.outsider.address),
      'transaction',
      /was sent to 0x\w+, not to 0x/,
    ],
    [
      'the log index',
      (b) => tampered(b, '"logIndex":0', '"logIndex":4'),
      'anchored-event',
      /has no log at index 4/,
    ],
    [
      'the block hash',
      (b) => tampered(b, b.anchor?.blockHash as string, flipLast(b.anchor?.blockHash as string)),
      'block',
      /not in the bundle's block/,
    ],
    [
      'the block number',
      (b) => tampered(b, `"blockNumber":${b.anchor?.blockNumber}`, `"blockNumber":1`),
      'block',
      /not in the bundle's block 1 /,
    ],
    [
      'the anchor, pointing at a later head',
      (b) => tampered(b, b.anchor?.txHash as string, later.txHash),
      'anchored-event',
      /publishes tree size 7 .* not the bundle's size 5/,
    ],
    [
      'the status',
      (b) => tampered(b, '"status":"anchored"', '"status":"pending"'),
      'format',
      /malformed proof bundle: treeSize must be null/,
    ],
    [
      'the format of a hash',
      (b) => tampered(b, b.leafHash, b.leafHash.toUpperCase().replace('0X', '0x')),
      'format',
      /malformed proof bundle: leafHash/,
    ],
  ])('refuses a bundle with %s altered', async (_, alter, check, reason) => {
    const result = await verifyProofBundle(alter(bundle), t.provider);
    expect(result).toMatchObject({ verified: false, check });
    expect(!result.verified && result.reason).toMatch(reason);
  });

  it('refuses a pending bundle, a contract other than the expected one, and too few confirmations', async () => {
    const pending = {
      ...bundle,
      status: 'pending',
      treeSize: null,
      inclusionPath: [],
      root: null,
      anchor: null,
    };
    expect(await verifyProofBundle(pending, t.provider)).toMatchObject({
      verified: false,
      check: 'format',
      reason: expect.stringMatching(/not anchored yet/) as unknown,
    });
    expect(
      await verifyProofBundle(bundle, t.provider, { expectedContract: t.outsider.address }),
    ).toMatchObject({ verified: false, check: 'contract' });
    expect(
      await verifyProofBundle(bundle, t.provider, { expectedContract: bundle.anchor?.contract as string }),
    ).toMatchObject({ verified: true });
    expect(await verifyProofBundle(bundle, t.provider, { minConfirmations: 3 })).toMatchObject({
      verified: false,
      check: 'confirmations',
      reason: 'the anchor has 2 confirmation(s), fewer than the 3 required',
    });
  });

  it('verifies a later bundle against an earlier anchored checkpoint with a consistency proof', async () => {
    const result = await verifyProofBundle(laterBundle, t.provider, { earlierCheckpoint: earlier });
    expect(result).toMatchObject({
      verified: true,
      treeSize: 7,
      consistentWith: {
        treeSize: 5,
        root: earlier.root,
        txHash: earlier.anchor.txHash,
        blockNumber: earlier.anchor.blockNumber,
        blockHash: earlier.anchor.blockHash,
      },
    });
    // The proof may come separately (GET /ledger/consistency) instead of inside the bundle.
    const { consistency, ...plain } = laterBundle;
    await expect(
      verifyProofBundle(plain, t.provider, { earlierCheckpoint: earlier, consistency }),
    ).resolves.toMatchObject({ verified: true, consistentWith: { treeSize: 5 } });
    // A checkpoint of the bundle's own head needs no proof.
    const sameHead = anchoredCheckpoint({
      treeSize: 7,
      root: Buffer.from(laterBundle.root!.slice(2), 'hex'),
      previousSize: 5,
      previousRoot: Buffer.from(earlier.root.slice(2), 'hex'),
      manifestHash: Buffer.from(testHash('manifest-7').slice(2), 'hex'),
      anchor: later,
    });
    await expect(
      verifyProofBundle(plain, t.provider, { earlierCheckpoint: sameHead }),
    ).resolves.toMatchObject({ verified: true, consistentWith: { treeSize: 7 } });
    await expect(verifyCheckpoint(earlier, t.provider)).resolves.toMatchObject({
      verified: true,
      treeSize: 5,
      txHash: earlier.anchor.txHash,
    });
    await expect(verifyCheckpoint(sameHead, t.provider, { minConfirmations: 1 })).resolves.toMatchObject({
      verified: true,
      confirmations: 1,
    });
  });

  it.each<[string, (c: AnchoredCheckpoint) => unknown, () => unknown, string, RegExp]>([
    [
      'an earlier root that was altered',
      (c) => ({ ...c, root: flipLast(c.root) }),
      () => undefined,
      'consistency',
      /^the consistency proof does not show that the earlier checkpoint \(5 leaves, root 0x[0-9a-f]{64}\) is a prefix of the bundle's head \(7 leaves/,
    ],
    [
      'a hash of the consistency proof that was altered',
      (c) => c,
      () => ({
        ...laterBundle.consistency,
        consistencyPath: laterBundle.consistency!.consistencyPath.map((h, i) => (i === 0 ? flipLast(h) : h)),
      }),
      'consistency',
      /does not show that the earlier checkpoint/,
    ],
    [
      'an earlier size that was altered',
      (c) => ({ ...c, treeSize: 6 }),
      () => undefined,
      'consistency',
      /goes from 5 to 7 leaves, not from the earlier checkpoint's 6 to the bundle's 7/,
    ],
    [
      'a checkpoint later than the bundle',
      (c) => ({ ...c, treeSize: 8 }),
      () => undefined,
      'consistency',
      /\(8 leaves\) is larger than the bundle's head \(7 leaves\)/,
    ],
    [
      'an earlier anchor that points at another head',
      (c) => ({ ...c, anchor: { ...c.anchor, txHash: later.txHash } }),
      () => undefined,
      'earlier-checkpoint',
      /^the earlier checkpoint: the Anchored event publishes tree size 7 .* not the earlier checkpoint's size 5/,
    ],
    [
      'a manifest hash that was altered',
      (c) => ({ ...c, manifestHash: flipLast(c.manifestHash) }),
      () => undefined,
      'earlier-checkpoint',
      /names previous size 0 and manifest 0x[0-9a-f]{64}, not the earlier checkpoint's 0 and/,
    ],
    [
      'another contract',
      (c) => ({ ...c, anchor: { ...c.anchor, contract: t.outsider.address } }),
      () => undefined,
      'earlier-checkpoint',
      /names contract 0x\w+, not the bundle's anchor contract/,
    ],
    [
      'a malformed checkpoint',
      (c) => ({ ...c, root: 'abc' }),
      () => undefined,
      'format',
      /^malformed earlier checkpoint: root must be 0x-prefixed/,
    ],
    [
      'a malformed consistency proof',
      (c) => c,
      () => ({ ...laterBundle.consistency, toSize: 'seven' }),
      'format',
      /^malformed consistency proof: toSize must be an integer/,
    ],
  ])('refuses %s', async (_, alter, consistency, check, reason) => {
    const result = await verifyProofBundle(laterBundle, t.provider, {
      earlierCheckpoint: alter(earlier),
      ...(consistency() === undefined ? {} : { consistency: consistency() }),
    });
    expect(result).toMatchObject({ verified: false, check });
    expect(!result.verified && result.reason).toMatch(reason);
  });

  it('refuses a missing consistency proof, and a carried one that does not hold without a checkpoint', async () => {
    const { consistency, ...plain } = laterBundle;
    expect(await verifyProofBundle(plain, t.provider, { earlierCheckpoint: earlier })).toMatchObject({
      verified: false,
      check: 'consistency',
      reason: expect.stringMatching(
        /no consistency proof .* GET \/ledger\/consistency\?from=5&to=7$/,
      ) as unknown,
    });
    expect(await verifyProofBundle(laterBundle, t.provider)).toMatchObject({ verified: true });
    const broken = {
      ...laterBundle,
      consistency: { ...consistency, fromRoot: flipLast(consistency!.fromRoot) },
    };
    expect(await verifyProofBundle(broken, t.provider)).toMatchObject({
      verified: false,
      check: 'consistency',
      reason: expect.stringMatching(/the head the consistency proof starts from \(5 leaves/) as unknown,
    });
  });

  it('runs as a command: exit 0 verified, 1 not verified, 2 usage or endpoint trouble', async () => {
    const good = join(t.dataDir, 'proof.json');
    const altered = join(t.dataDir, 'altered.json');
    const document = join(t.dataDir, 'proofs.json');
    await writeFile(good, JSON.stringify(bundle, null, 2));
    await writeFile(
      altered,
      JSON.stringify(tampered(bundle, '"subject":"Observation"', '"subject":"Observatiom"'), null, 2),
    );
    await writeFile(
      document,
      JSON.stringify({ source: 'demo', resource: 'Observation/x', bundles: [bundle, bundle] }),
    );
    const laterFile = join(t.dataDir, 'later.json');
    const earlierFile = join(t.dataDir, 'earlier.json');
    await writeFile(laterFile, JSON.stringify(laterBundle, null, 2));
    await writeFile(earlierFile, JSON.stringify({ checkpoints: [earlier] }, null, 2));
    const rpc = ['--rpc', t.chain.rpcUrl];
    const [ok, bad, many, help, usage, missing, offline, extended, lonely] = await Promise.all([
      runCli([good, ...rpc, '--min-confirmations', '2']),
      runCli([altered, ...rpc]),
      runCli([document, ...rpc]),
      runCli(['--help']),
      runCli([good, '--min-confirmations', 'lots']),
      runCli([join(t.dataDir, 'nope.json'), ...rpc]),
      runCli([good, '--rpc', 'http://127.0.0.1:9']),
      runCli([laterFile, ...rpc, '--checkpoint', earlierFile]),
      runCli([laterFile, ...rpc, '--consistency', laterFile]),
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(
      /^verified\nprovenance event evt-2 is leaf 2 of the tree of 5 anchored on chain 31337 by 0x[0-9a-fA-F]{40} in block \d+ \(tx 0x[0-9a-f]{64}, 2 confirmation\(s\)\)\n$/,
    );
    expect(bad).toMatchObject({
      code: 1,
      stdout: 'not verified: event record does not match leafHash: the record was altered\n',
    });
    expect(many.code).toBe(0);
    expect(many.stdout).toMatch(/^verified\nbundle 1: .*\nbundle 2: .*\n$/);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: verify FILE/);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--min-confirmations must be a non-negative integer/);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read .*nope\.json/);
    expect(offline.code).toBe(2);
    expect(offline.stderr).toMatch(/no JSON-RPC answer from http:\/\/127\.0\.0\.1:9/);
    expect(extended.code).toBe(0);
    expect(extended.stdout).toMatch(
      /^verified\nprovenance event evt-6 is leaf 6 of the tree of 7 .*\nthe tree of 7 extends the earlier checkpoint of 5 \(root 0x[0-9a-f]{64}\), anchored in block \d+ \(tx 0x[0-9a-f]{64}\)\n$/,
    );
    expect(lonely.code).toBe(2);
    expect(lonely.stderr).toMatch(/--consistency needs --checkpoint/);
  }, 90_000);
});
