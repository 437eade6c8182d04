import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { OperationOutcome } from '@medplum/fhirtypes';
import {
  type AnchoredCheckpoint,
  type CompactProofBundle,
  type ConsistencyProofDocument,
  type ProofBundle,
  anchorContractInterface,
  createProvider,
  expandProofBundle,
  fromHashHex,
  verifyCheckpoint,
  verifyConsistency,
} from '@fhir-trail/ledger';
import { LEDGER, type LedgerConnection } from '@fhir-trail/runtime';
import { type JsonRpcProvider, ZeroHash } from 'ethers';
import { eventually, TestStack } from './support/test-apps';

const ROOT = join(__dirname, '..');
const DEMO = { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' };
/** Resources posted per batch; the sequencer closes a batch every 300 ms (TestStack). */
const BATCHES = [3, 1, 4, 2, 5] as const;

interface CheckpointsResponse {
  readonly checkpoints: AnchoredCheckpoint[];
}

describe('ledger checkpoints and consistency proofs, on PostgreSQL and the embedded chain', () => {
  let stack: TestStack;
  let base: string;
  let ledger: LedgerConnection;
  let provider: JsonRpcProvider;
  let dir: string;
  /** Every checkpoint once all batches are anchored, oldest first. */
  let history: AnchoredCheckpoint[];

  beforeAll(async () => {
    stack = await TestStack.create('ledger');
    base = await stack.startBridge();
    await stack.startWorker();
    ledger = stack.bridge!.get<LedgerConnection>(LEDGER);
    provider = createProvider(ledger.rpcUrl);
    dir = await mkdtemp(join(tmpdir(), 'fhir-trail-ledger-e2e-'));

    let posted = 0;
    for (const [batch, count] of BATCHES.entries()) {
      const responses = await Promise.all(
        Array.from({ length: count }, (_, i) => postPatient(`ledger-${batch}-${i}`)),
      );
      expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200));
      posted += count;
      // Wait for this batch to be anchored before sending the next, so every batch gets its own head.
      const expected = posted;
      await eventually(
        async () => {
          const [latest] = (await getCheckpoints('?limit=1')).checkpoints;
          return latest !== undefined && latest.treeSize >= expected ? latest : undefined;
        },
        20_000,
        `a checkpoint of ${expected} leaves`,
      );
    }
    history = (await getCheckpoints()).checkpoints.slice().reverse();
  }, 120_000);

  afterAll(async () => {
    provider?.destroy();
    await stack?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const postPatient = (id: string) =>
    fetch(`${base}/hooks/demo`, {
      method: 'POST',
      headers: DEMO,
      body: JSON.stringify({ resourceType: 'Patient', id, active: true, gender: 'unknown' }),
    });

  async function getCheckpoints(query = ''): Promise<CheckpointsResponse> {
    const response = await fetch(`${base}/ledger/checkpoints${query}`);
    expect(response.status).toBe(200);
    return (await response.json()) as CheckpointsResponse;
  }

  async function getConsistency(from: number, to: number): Promise<ConsistencyProofDocument> {
    const response = await fetch(`${base}/ledger/consistency?from=${from}&to=${to}`);
    expect(response.status).toBe(200);
    return (await response.json()) as ConsistencyProofDocument;
  }

  it('lists every anchored batch newest first, each a transaction on chain that extends the one before', async () => {
    const total = BATCHES.reduce((sum, n) => sum + n, 0);
    expect(history.length).toBeGreaterThanOrEqual(BATCHES.length);
    expect(history.at(-1)?.treeSize).toBe(total);
    const newestFirst = (await getCheckpoints()).checkpoints;
    expect(newestFirst.map((c) => c.treeSize)).toEqual(history.map((c) => c.treeSize).reverse());
    expect((await getCheckpoints('?limit=2')).checkpoints).toEqual(newestFirst.slice(0, 2));

    for (const [i, checkpoint] of history.entries()) {
      expect(checkpoint).toMatchObject({
        format: 'fhir-trail/checkpoint@1',
        anchor: { chainId: ledger.chainId, contract: ledger.contractAddress },
      });
      expect(Date.parse(checkpoint.anchoredAt ?? '')).not.toBeNaN();
      // Each head names the one before it (the genesis head is (0, zero)).
      const previous = history[i - 1];
      expect(checkpoint.previousSize).toBe(previous?.treeSize ?? 0);
      expect(checkpoint.previousRoot).toBe(previous?.root ?? ZeroHash);

      // The transaction exists on chain, was sent to the contract and published this head.
      const receipt = await provider.getTransactionReceipt(checkpoint.anchor.txHash);
      expect(receipt).toMatchObject({
        status: 1,
        blockNumber: checkpoint.anchor.blockNumber,
        blockHash: checkpoint.anchor.blockHash,
      });
      expect(receipt?.to?.toLowerCase()).toBe(ledger.contractAddress.toLowerCase());
      const log = receipt?.logs.find((l) => l.index === checkpoint.anchor.logIndex);
      const event = log && anchorContractInterface.parseLog(log);
      expect(event?.name).toBe('Anchored');
      expect(String(event?.args.getValue('treeSize'))).toBe(String(checkpoint.treeSize));
      expect(String(event?.args.getValue('root'))).toBe(checkpoint.root);
      expect(String(event?.args.getValue('manifestHash'))).toBe(checkpoint.manifestHash);

      await expect(verifyCheckpoint(checkpoint, provider)).resolves.toMatchObject({
        verified: true,
        treeSize: checkpoint.treeSize,
      });
    }
  });

  it('serves a consistency proof between every pair of checkpoints that verifies, and a tampered one fails', async () => {
    let nonTrivial = 0;
    for (const [i, earlier] of history.entries()) {
      for (const later of history.slice(i)) {
        const document = await getConsistency(earlier.treeSize, later.treeSize);
        expect(document).toMatchObject({
          format: 'fhir-trail/consistency-proof@1',
          fromSize: earlier.treeSize,
          fromRoot: earlier.root,
          toSize: later.treeSize,
          toRoot: later.root,
        });
        const path = document.consistencyPath.map((h) => fromHashHex(h));
        const [m, n] = [earlier.treeSize, later.treeSize];
        const [r1, r2] = [fromHashHex(earlier.root), fromHashHex(later.root)];
        expect(verifyConsistency(m, n, path, r1, r2)).toBe(true);
        // O(log n): at most about 2·log2(n) hashes.
        expect(path.length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(n)) + 1);
        if (path.length === 0) continue;
        nonTrivial += 1;
        for (let k = 0; k < path.length; k += 1) {
          const tampered = path.map((h) => Buffer.from(h));
          tampered[k][31] ^= 0x01;
          expect(verifyConsistency(m, n, tampered, r1, r2)).toBe(false);
        }
        expect(verifyConsistency(m, n, path.slice(1), r1, r2)).toBe(false);
        expect(verifyConsistency(m, n, path, r2, r1)).toBe(false);
      }
    }
    expect(nonTrivial).toBeGreaterThanOrEqual(BATCHES.length);
  });

  it.each<[string, string, number, string[]]>([
    ['no parameters', '', 400, ['from', 'to']],
    ['a size that is not a number', '?from=abc&to=3', 400, ['from']],
    ['a negative size', '?from=-1&to=3', 400, ['from']],
    ['a repeated parameter', '?from=1&from=2&to=3', 400, ['from']],
    ['from after to', 'from-after-to', 400, ['from']],
    ['a size past the newest checkpoint', 'past-newest', 404, ['to']],
    ['sizes that are not checkpoints', 'between-checkpoints', 404, ['from', 'to']],
  ])(
    'refuses %s with an OperationOutcome naming the parameter',
    async (_case, query, status, expressions) => {
      const oldest = history[0].treeSize;
      const newest = history.at(-1)!.treeSize;
      const gap = history.find((c, i) => i > 0 && c.treeSize - history[i - 1].treeSize > 1);
      const resolved =
        {
          'from-after-to': `?from=${newest}&to=${oldest}`,
          'past-newest': `?from=${oldest}&to=${newest + 1}`,
          'between-checkpoints': `?from=${(gap?.treeSize ?? newest + 2) - 1}&to=${newest + 7}`,
        }[query] ?? query;
      const response = await fetch(`${base}/ledger/consistency${resolved}`);
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      const outcome = (await response.json()) as OperationOutcome;
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue?.flatMap((issue) => issue.expression ?? [])).toEqual(expressions);
    },
  );

  it('refuses a malformed limit, and documents both endpoints in OpenAPI', async () => {
    for (const limit of ['0', 'ten', '1001']) {
      const response = await fetch(`${base}/ledger/checkpoints?limit=${limit}`);
      expect(response.status).toBe(400);
      const outcome = (await response.json()) as OperationOutcome;
      expect(outcome.issue?.[0].expression).toEqual(['limit']);
    }
    const openApi = (await (await fetch(`${base}/docs/openapi.json`)).json()) as {
      paths: Record<
        string,
        { get?: { parameters?: { name: string }[]; responses: Record<string, unknown> } }
      >;
    };
    expect(openApi.paths['/ledger/checkpoints']?.get?.parameters?.map((p) => p.name)).toEqual(['limit']);
    expect(openApi.paths['/ledger/consistency']?.get?.parameters?.map((p) => p.name).sort()).toEqual([
      'from',
      'to',
    ]);
    expect(Object.keys(openApi.paths['/ledger/consistency']?.get?.responses ?? {})).toEqual(
      expect.arrayContaining(['200', '400', '404']),
    );
  });

  it('refuses a consistencyFrom on /ledger/proofs that is malformed, past the head or not a checkpoint', async () => {
    const newest = history.at(-1)!.treeSize;
    const gap = history.find((c, i) => i > 0 && c.treeSize - history[i - 1].treeSize > 1)!;
    const proofs = (from: string) =>
      fetch(`${base}/ledger/proofs?source=demo&resource=Patient/ledger-0-0&consistencyFrom=${from}`);
    for (const [from, status] of [
      ['x', 400],
      ['0', 400],
      [String(newest + 1), 400],
      [String(gap.treeSize - 1), 404],
    ] as const) {
      const response = await proofs(from);
      expect(response.status).toBe(status);
      const outcome = (await response.json()) as OperationOutcome;
      expect(outcome.issue?.[0].expression).toEqual(['consistencyFrom']);
    }
    const response = await proofs(String(history[0].treeSize));
    expect(response.status).toBe(200);
    const { bundles } = (await response.json()) as { bundles: ProofBundle[] };
    expect(bundles[0].consistency).toMatchObject({ fromSize: history[0].treeSize, toSize: newest });
  });

  it('serves compact bundles with encoding=compact: the same proofs, under 1.5 KB, verified on chain; refuses another encoding', async () => {
    const url = (encoding: string) =>
      `${base}/ledger/proofs?source=demo&resource=Patient/ledger-2-1&encoding=${encoding}`;
    const [plain, compact] = await Promise.all(
      ['json', 'compact'].map(async (encoding) => {
        const response = await fetch(url(encoding));
        expect(response.status).toBe(200);
        return ((await response.json()) as { bundles: unknown[] }).bundles;
      }),
    );
    expect(compact).toHaveLength(plain.length);
    expect(compact.map((b) => expandProofBundle(b))).toEqual(plain);
    for (const bundle of compact as CompactProofBundle[]) {
      expect(bundle.f).toBe('fhir-trail/proof-bundle@2');
      expect(Buffer.byteLength(JSON.stringify(bundle))).toBeLessThan(1_536);
    }
    const file = join(dir, 'compact.json');
    await writeFile(file, JSON.stringify({ bundles: compact }));
    expect(await runVerify([file, '--rpc', ledger.rpcUrl])).toMatchObject({ code: 0 });

    const refused = await fetch(url('cbor'));
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as OperationOutcome).issue?.[0].expression).toEqual(['encoding']);
  }, 60_000);

  it('verify --checkpoint: checks an earlier saved head against a later bundle, and fails on a tampered root', async () => {
    const earlier = history[1]; // not the first head: its predecessor is a real one
    const newest = history.at(-1)!;
    const resource = `Patient/ledger-${BATCHES.length - 1}-0`;
    const bundles = await eventually(async () => {
      const response = await fetch(
        `${base}/ledger/proofs?source=demo&resource=${resource}&consistencyFrom=${earlier.treeSize}`,
      );
      const { bundles } = (await response.json()) as { bundles: ProofBundle[] };
      return bundles.every((b) => b.status === 'anchored') ? bundles : undefined;
    });
    const [bundle] = bundles;
    expect(bundle.treeSize).toBe(newest.treeSize);
    expect(bundle.consistency).toEqual(await getConsistency(earlier.treeSize, newest.treeSize));

    const { consistency, ...plain } = bundle;
    const files = {
      bundle: join(dir, 'with-consistency.json'),
      plain: join(dir, 'plain.json'),
      consistency: join(dir, 'consistency.json'),
      earlier: join(dir, 'earlier.json'),
      tamperedRoot: join(dir, 'earlier-root.json'),
      tamperedTx: join(dir, 'earlier-tx.json'),
    };
    await Promise.all([
      writeFile(files.bundle, JSON.stringify(bundle, null, 2)),
      writeFile(files.plain, JSON.stringify(plain, null, 2)),
      writeFile(files.consistency, JSON.stringify(consistency, null, 2)),
      writeFile(files.earlier, JSON.stringify(earlier, null, 2)),
      writeFile(files.tamperedRoot, JSON.stringify({ ...earlier, root: flipLast(earlier.root) }, null, 2)),
      writeFile(
        files.tamperedTx,
        JSON.stringify({ ...earlier, anchor: { ...earlier.anchor, txHash: newest.anchor.txHash } }, null, 2),
      ),
    ]);
    const rpc = ['--rpc', ledger.rpcUrl];
    const [embedded, separate, alteredRoot, alteredTx, missing] = await Promise.all([
      runVerify([files.bundle, ...rpc, '--checkpoint', files.earlier]),
      runVerify([files.plain, ...rpc, '--checkpoint', files.earlier, '--consistency', files.consistency]),
      runVerify([files.bundle, ...rpc, '--checkpoint', files.tamperedRoot]),
      runVerify([files.bundle, ...rpc, '--checkpoint', files.tamperedTx]),
      runVerify([files.plain, ...rpc, '--checkpoint', files.earlier]),
    ]);
    const extended = new RegExp(
      `^verified\\n.*leaf \\d+ of the tree of ${newest.treeSize} .*\\nthe tree of ${newest.treeSize} extends the earlier checkpoint of ${earlier.treeSize} \\(root ${earlier.root}\\), anchored in block ${earlier.anchor.blockNumber} \\(tx ${earlier.anchor.txHash}\\)\\n$`,
    );
    expect(embedded).toMatchObject({ code: 0 });
    expect(embedded.stdout).toMatch(extended);
    expect(separate).toMatchObject({ code: 0 });
    expect(separate.stdout).toMatch(extended);
    expect(alteredRoot).toMatchObject({ code: 1 });
    expect(alteredRoot.stdout).toMatch(
      /^not verified: the consistency proof does not show that the earlier checkpoint/,
    );
    expect(alteredTx).toMatchObject({ code: 1 });
    expect(alteredTx.stdout).toMatch(
      /^not verified: the earlier checkpoint: the Anchored event publishes tree size \d+ with root 0x[0-9a-f]{64}, not the earlier checkpoint's size/,
    );
    expect(missing).toMatchObject({ code: 2 });
    expect(missing.stderr).toMatch(/no consistency proof from the checkpoint's \d+ leaves/);
  }, 120_000);
});

function flipLast(hex: string): string {
  return hex.slice(0, -1) + (hex.endsWith('0') ? '1' : '0');
}

async function runVerify(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'libs/ledger/src/cli/verify.ts'), ...args],
      { cwd: ROOT, timeout: 90_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}
