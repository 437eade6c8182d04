import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OperationOutcome, Provenance } from '@medplum/fhirtypes';
import { createProvider, type ProofBundle, verifyProofBundle } from '@fhir-trail/ledger';
import { LEDGER, type LedgerConnection, STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { Redis } from 'ioredis';
import { readFixtureBytes } from './fixtures/fixture-files';
import { eventually, TestStack } from './support/test-apps';

const ROOT = join(__dirname, '..');
const DEMO = { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' };
// Its own Redis database, so flushing it disturbs nothing else.
const REDIS_DB = 7;

interface ProofsResponse {
  readonly bundles: ProofBundle[];
}

describe('one notification, end to end, to a verifiable proof', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  let ledger: LedgerConnection;

  beforeAll(async () => {
    const redis = new Redis(`redis://127.0.0.1:6379/${REDIS_DB}`);
    await redis.flushdb();
    redis.disconnect();
    stack = await TestStack.create('foundation', { REDIS_URL: `redis://127.0.0.1:6379/${REDIS_DB}` });
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
    ledger = stack.bridge!.get<LedgerConnection>(LEDGER);
  });

  afterAll(async () => {
    await stack.close();
  });

  const post = (path: string, body: string | Buffer, headers: Record<string, string> = DEMO) =>
    fetch(`${base}${path}`, { method: 'POST', headers, body });

  const anchoredProof = (resource: string) =>
    eventually(
      async () => {
        const response = await fetch(`${base}/ledger/proofs?source=demo&resource=${resource}`);
        if (response.status !== 200) return undefined;
        const { bundles } = (await response.json()) as ProofsResponse;
        return bundles.every((b) => b.status === 'anchored') ? bundles : undefined;
      },
      10_000,
      `an anchored proof for ${resource}`,
    );

  it('accepts the Patient example, anchors its Provenance, and the proof verifies against the chain alone', async () => {
    const accepted = await post('/hooks/demo', readFixtureBytes('r4-examples/Patient-example.json'));
    expect(accepted.status).toBe(200);
    expect(accepted.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    const outcome = (await accepted.json()) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue?.[0].severity).toBe('information');

    const started = Date.now();
    const [bundle] = await anchoredProof('Patient/example');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(bundle).toMatchObject({
      format: 'fhir-trail/proof-bundle@1',
      status: 'anchored',
      event: { kind: 'provenance', source: 'demo', subject: 'Patient' },
      anchor: { chainId: ledger.chainId, contract: ledger.contractAddress },
    });
    expect(bundle.leafIndex).toEqual(expect.any(Number));
    expect(bundle.treeSize).toBeGreaterThan(bundle.leafIndex!);
    expect(bundle.anchor?.txHash).toMatch(/^0x[0-9a-f]{64}$/);
    // No PHI in the event record: neither the patient's name nor the FHIR id.
    expect(JSON.stringify(bundle.event)).not.toMatch(/Chalmers|Peter|example/);

    const provider = createProvider(ledger.rpcUrl);
    try {
      await expect(verifyProofBundle(bundle, provider)).resolves.toMatchObject({ verified: true });
    } finally {
      provider.destroy();
    }

    // The command line verifier, with nothing but the JSON-RPC URL.
    const dir = mkdtempSync(join(tmpdir(), 'proof-'));
    const good = join(dir, 'proof.json');
    writeFileSync(good, JSON.stringify(bundle, null, 2));
    const verified = runVerify(good, ledger.rpcUrl);
    expect(verified.stdout).toMatch(/^verified/m);
    expect(verified.status).toBe(0);

    const tampered = join(dir, 'tampered.json');
    writeFileSync(
      tampered,
      JSON.stringify(bundle, null, 2).replace('"subject": "Patient"', '"subject": "Patienu"'),
    );
    const refused = runVerify(tampered, ledger.rpcUrl);
    expect(refused.status).toBe(1);
    expect(refused.stdout + refused.stderr).toMatch(/not verified: .*event record/i);
  });

  it('stores the version with a Provenance naming the source and the bridge', async () => {
    const history = await store.resources.history(store.db, 'demo', 'Patient', 'example');
    expect(history).toHaveLength(1);
    const provenance = history[0].provenance as unknown as Provenance;
    expect(provenance.target).toEqual([{ reference: 'Patient/example/_history/1' }]);
    expect(provenance.entity?.[0]).toEqual({
      role: 'source',
      what: {
        type: 'Patient',
        identifier: { system: 'urn:fhir-trail:source:demo', value: 'Patient/example' },
      },
    });
    expect(provenance.agent?.map((a) => a.type?.coding?.[0].code)).toEqual(['custodian', 'assembler']);
    expect(provenance.agent?.[0].who?.display).toBe('Demo EHR');
    expect(Date.parse(provenance.recorded)).not.toBeNaN();
  });

  it('stores every resource of a Backport full-resource history bundle', async () => {
    const response = await post(
      '/hooks/demo',
      readFixtureBytes('subscriptions/r4-backport__event-notification__full-resource__inferno.json'),
    );
    expect(response.status).toBe(200);
    const inboxId = ((await response.json()) as OperationOutcome).id!;
    await eventually(async () =>
      (await store.inbox.findStatus(inboxId))?.status === 'done' ? true : undefined,
    );
    const stored = await store.db
      .selectFrom('resource_versions')
      .select('resource_type')
      .where('inbox_id', '=', inboxId)
      .execute();
    expect(stored.length).toBeGreaterThan(0);
  });

  it('turns a resource that fails validation into a dead letter holding its OperationOutcome', async () => {
    const invalid = { resourceType: 'Patient', id: 'bad-date', birthDate: 'not-a-date' };
    const response = await post('/hooks/demo', JSON.stringify(invalid));
    expect(response.status).toBe(200);
    const inboxId = ((await response.json()) as OperationOutcome).id!;
    await eventually(async () =>
      (await store.inbox.findStatus(inboxId))?.status === 'dead-letter' ? true : undefined,
    );
    const [letter] = await store.deadLetters.list({ inboxId });
    expect(letter.reasonCode).toBe('invalid-resource');
    const outcome = letter.outcome as unknown as OperationOutcome;
    expect(outcome.issue?.some((i) => i.expression?.some((e) => e.includes('birthDate')))).toBe(true);
    const versions = await store.resources.history(store.db, 'demo', 'Patient', 'bad-date');
    expect(versions).toHaveLength(0);
  });

  it.each([
    ['unparseable JSON', '/hooks/demo', '{"resourceType": "Patient",', DEMO, 400, 'structure'],
    [
      'a wrong content type',
      '/hooks/demo',
      'hello',
      { ...DEMO, 'content-type': 'text/plain' },
      415,
      'not-supported',
    ],
    ['an unknown source', '/hooks/nobody', '{}', DEMO, 404, 'not-found'],
    ['a bad token', '/hooks/demo', '{}', { ...DEMO, authorization: 'Bearer wrong' }, 401, 'security'],
    ['no token', '/hooks/demo', '{}', { 'content-type': 'application/fhir+json' }, 401, 'security'],
    ['a body that is not a FHIR resource', '/hooks/demo', '[1,2]', DEMO, 400, undefined],
  ])('refuses %s with an OperationOutcome', async (_case, path, body, headers, status, code) => {
    const response = await post(path, body, headers);
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    const outcome = (await response.json()) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue?.[0].severity).toBe('error');
    if (code) expect(outcome.issue?.[0].code).toBe(code);
  });

  it('refuses a body over MAX_BODY_BYTES with 413 and an OperationOutcome', async () => {
    const big = JSON.stringify({
      resourceType: 'Patient',
      id: 'big',
      text: { div: 'x'.repeat(stack.config.maxBodyBytes) },
    });
    const response = await post('/hooks/demo', big);
    expect(response.status).toBe(413);
    const outcome = (await response.json()) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
  });

  it('answers unknown routes with a 404 OperationOutcome, documents its API and reports health', async () => {
    const missing = await fetch(`${base}/nowhere`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as OperationOutcome).resourceType).toBe('OperationOutcome');
    const openApi = (await (await fetch(`${base}/docs/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(openApi.paths)).toEqual(
      expect.arrayContaining([
        '/hooks/{sourceId}',
        '/hooks/{sourceId}/{resourceType}/{id}',
        '/ledger/proofs',
        '/health',
      ]),
    );
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'up',
      checks: { database: { status: 'up' }, redis: { status: 'up' }, chain: { status: 'up' } },
    });
  });

  it('loses nothing when Redis is flushed after acceptance: the inbox relay re-enqueues it', async () => {
    await stack.stopWorker();
    const response = await post('/hooks/demo', readFixtureBytes('r4-examples/Patient-f001.json'));
    expect(response.status).toBe(200);
    const inboxId = ((await response.json()) as OperationOutcome).id!;
    const redis = new Redis(`redis://127.0.0.1:6379/${REDIS_DB}`);
    try {
      // The job is enqueued just after the answer (batched, off the path to the 200): wait for it.
      const jobKey = `${stack.config.queuePrefix}:ingest:inbox-${inboxId}`;
      await eventually(
        async () => ((await redis.exists(jobKey)) === 1 ? true : undefined),
        5_000,
        'the ingest job',
      );
      await redis.flushdb();
      expect(await redis.dbsize()).toBe(0);
    } finally {
      redis.disconnect();
    }
    expect((await store.inbox.findStatus(inboxId))?.status).toBe('received');
    await stack.startWorker();
    const bundles = await anchoredProof('Patient/f001');
    expect(bundles).toHaveLength(1);
    expect((await store.inbox.findStatus(inboxId))?.status).toBe('done');
  });
});

function runVerify(file: string, rpcUrl: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(
    process.execPath,
    [
      join(ROOT, 'node_modules/tsx/dist/cli.mjs'),
      join(ROOT, 'libs/ledger/src/cli/verify.ts'),
      file,
      '--rpc',
      rpcUrl,
    ],
    { encoding: 'utf8', cwd: ROOT, timeout: 30_000 },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
