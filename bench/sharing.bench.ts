/**
 * Sharing benchmark: consent checks per second, in one run on a throwaway PostgreSQL database and
 * the embedded dev chain (anvil in a temp dir, FhirTrailConsentRegistry deployed):
 *
 * - measured: the check the share processor makes before each delivery, from the bridge's mirror
 *   (the patient's stored policies + the registry pair from PostgreSQL, `decide`, the registry
 *   scope test), sequentially and with 16 checks in flight; and `decide` alone on loaded policies;
 * - baseline: asking the chain instead — `isConsented` by `eth_call` on the registry — the same way.
 *
 * Then end-to-end latency at a steady rate: the real bridge and worker (the built dist/ bundles, run
 * `npm run build` first; their own database, Redis prefix and anvil), one consent granting a destination simulator, and
 * BENCH_SHARING_EVENTS bare-resource notifications (a new Observation each) posted every
 * 1000/BENCH_SHARING_RATE ms; latency = from sending the notification to the PUT arriving at the
 * destination. Baseline: the bench PUTting the same body straight to the destination (the HTTP floor).
 *
 * Part of `npm run bench` (`BENCH_ONLY=sharing` runs it alone; `npx tsx bench/sharing.bench.ts`
 * too, after `npm run build`); writes bench/results/sharing.json.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wallet } from 'ethers';
import {
  type ConsentPolicy,
  type ConsentRequest,
  dataClassIndex,
  decide,
  purposeIndex,
  registryScopeAllows,
} from '@fhir-trail/fhir-mapping';
import {
  ConsentRegistryClient,
  DEV_ACCOUNT_PRIVATE_KEY,
  EmbeddedChain,
  consentRegistryInterface,
  createProvider,
  deployConsentRegistry,
  findFreePort,
} from '@fhir-trail/ledger';
import { recordConsent } from '@fhir-trail/runtime';
import { Store } from '@fhir-trail/store';
import { FhirDestinationSimulator } from '../test/support/fhir-destination-simulator';
import { table, throwawayDatabase, timing } from './ledger-support';
import {
  REDIS_URL,
  deleteRedisPrefix,
  dropDatabase,
  freePort,
  freshDatabase,
  query,
  startProcess,
  stopProcess,
} from './support';

const PATIENTS = Number(process.env.BENCH_SHARING_PATIENTS ?? 1000);
const CHECKS = Number(process.env.BENCH_SHARING_CHECKS ?? 3000);
const IN_FLIGHT = 16;
const EVENTS = Number(process.env.BENCH_SHARING_EVENTS ?? 300);
const RATE = Number(process.env.BENCH_SHARING_RATE ?? 20);
const SOURCE = 'bench';
const MASTER_KEY = Buffer.alloc(32, 7);

function consent(i: number): Record<string, unknown> {
  return {
    resourceType: 'Consent',
    id: `c-${i}`,
    status: 'active',
    scope: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }],
    },
    patient: { reference: `Patient/p-${i}` },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] },
    provision: {
      provision: [
        {
          type: 'permit',
          actor: [
            {
              role: {
                coding: [
                  { system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' },
                ],
              },
              reference: { reference: 'Organization/hospital-a' },
            },
          ],
          purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
          class: [{ system: 'http://hl7.org/fhir/resource-types', code: 'Observation' }],
          provision: [
            {
              type: 'deny',
              securityLabel: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' }],
            },
          ],
        },
      ],
    },
  };
}

async function rate(label: string, checks: number, inFlight: number, check: (i: number) => Promise<boolean>) {
  let next = 0;
  let permitted = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < checks; i = next++) if (await check(i)) permitted++;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { label, checks, inFlight, checksPerSecond: Math.round(checks / seconds), permitted };
}

/** Runs the sharing benchmark, prints its tables (each figure beside its baseline) and returns the record. */
export async function sharingBenchmark(): Promise<Record<string, unknown>> {
  const database = await throwawayDatabase('fhir_trail_bench_sharing');
  const dataDir = await mkdtemp(join(tmpdir(), 'fhir-trail-bench-sharing-'));
  const chain = await EmbeddedChain.start({ dataDir, port: await findFreePort() });
  const provider = createProvider(chain.rpcUrl);
  const store = await Store.open({
    databaseUrl: database.url,
    masterKey: MASTER_KEY,
    migrate: true,
    max: 20,
  });
  try {
    const admin = new Wallet(DEV_ACCOUNT_PRIVATE_KEY, provider);
    const deployment = await deployConsentRegistry(admin, {
      admin: admin.address,
      registrar: admin.address,
      relayer: admin.address,
    });
    const registry = new ConsentRegistryClient({
      provider,
      signer: admin,
      contractAddress: deployment.address,
    });

    // One consent per patient, through the real intake path; then every pair granted on chain and
    // confirmed in the mirror, as the worker's sync would.
    for (let i = 0; i < PATIENTS; i++) {
      const recorded = await store.transaction((trx) =>
        recordConsent(store, trx, {
          sourceId: SOURCE,
          resource: consent(i),
          origin: 'api',
          actor: 'api:bench',
          masterKey: MASTER_KEY,
        }),
      );
      if (!recorded.ok) throw new Error('bench consent refused');
    }
    const pairs = (
      await Promise.all(
        Array.from({ length: PATIENTS }, (_, i) => store.consents.pairs(SOURCE, `Patient/p-${i}`)),
      )
    ).flat();
    for (const pair of pairs) {
      const hash = await registry.apply(hex(pair.patientKey), hex(pair.recipientKey), pair.desired);
      await store.consents.setConfirmed(pair, pair.desired, await registry.finalisedBlock(), hash);
    }

    const request = (i: number): ConsentRequest => ({
      patient: `Patient/p-${i % PATIENTS}`,
      recipientOrg: i % 4 === 3 ? 'Organization/hospital-b' : 'Organization/hospital-a',
      purpose: 'TREAT',
      resourceType: 'Observation',
      securityLabels: [],
      at: Date.now(),
    });
    const mirrorCheck = async (i: number): Promise<boolean> => {
      const r = request(i);
      const [consents, pair] = await Promise.all([
        store.consents.forPatient(SOURCE, r.patient),
        store.consents.pair({ sourceId: SOURCE, patientRef: r.patient, recipientOrg: r.recipientOrg }),
      ]);
      const decision = decide(
        consents.map((c) => c.policy as unknown as ConsentPolicy),
        r,
      );
      return (
        decision.decision === 'permit' &&
        pair?.confirmed.active === true &&
        registryScopeAllows(
          pair.confirmed,
          purposeIndex('TREAT'),
          dataClassIndex('Observation'),
          Math.floor(Date.now() / 1000),
        )
      );
    };
    const chainCheck = async (i: number): Promise<boolean> => {
      const pair = pairs[i % pairs.length];
      const data = await provider.call({
        to: deployment.address,
        data: consentRegistryInterface.encodeFunctionData('isConsented', [
          pair.patientKey,
          i % 4 === 3 ? Buffer.alloc(32, 1) : pair.recipientKey,
          purposeIndex('TREAT'),
          dataClassIndex('Observation'),
          Math.floor(Date.now() / 1000),
        ]),
      });
      return consentRegistryInterface.decodeFunctionResult('isConsented', data)[0] as boolean;
    };
    const loaded = (await store.consents.forPatient(SOURCE, 'Patient/p-0')).map(
      (c) => c.policy as unknown as ConsentPolicy,
    );

    await rate('warm-up', 200, 4, mirrorCheck);
    await rate('warm-up', 200, 4, chainCheck);
    const results = [
      await rate('decide() on loaded policies (in memory)', CHECKS * 10, 1, (i) =>
        Promise.resolve(
          decide(loaded, {
            ...request(0),
            recipientOrg: i % 4 === 3 ? 'Organization/hospital-b' : 'Organization/hospital-a',
          }).decision === 'permit',
        ),
      ),
      await rate('mirror check (PostgreSQL + decide), sequential', CHECKS, 1, mirrorCheck),
      await rate(
        `mirror check (PostgreSQL + decide), ${IN_FLIGHT} in flight`,
        CHECKS,
        IN_FLIGHT,
        mirrorCheck,
      ),
      await rate('baseline: isConsented eth_call, sequential', CHECKS, 1, chainCheck),
      await rate(`baseline: isConsented eth_call, ${IN_FLIGHT} in flight`, CHECKS, IN_FLIGHT, chainCheck),
    ];
    const latency = await deliveryLatency();
    const record = {
      benchmark: 'sharing/consent-checks',
      latency,
      at: new Date().toISOString(),
      node: process.version,
      patients: PATIENTS,
      pairsOnChain: pairs.length,
      results,
    };
    await mkdir(join(__dirname, 'results'), { recursive: true });
    await writeFile(join(__dirname, 'results', 'sharing.json'), `${JSON.stringify(record)}\n`);
    process.stdout.write(
      `\nsharing: consent checks, ${PATIENTS} patients with one consent each (3 of 4 checks permitted)\n\n` +
        table([
          ['check', 'checks', 'in flight', 'checks/s', 'permitted'],
          ...results.map((r) => [r.label, r.checks, r.inFlight, r.checksPerSecond, r.permitted]),
        ]) +
        '\n' +
        `\nsharing: notification -> delivery at ${RATE}/s steady (${EVENTS} new Observations, consent granted)\n\n` +
        table([
          ['path', 'delivered', 'p50 ms', 'p99 ms', 'max ms'],
          [
            'bridge: notification -> PUT at destination',
            latency.delivered,
            latency.bridge.medianMs,
            latency.bridge.p99Ms,
            latency.bridge.maxMs,
          ],
          [
            'baseline: direct PUT to destination',
            latency.delivered,
            latency.direct.medianMs,
            latency.direct.p99Ms,
            latency.direct.maxMs,
          ],
        ]) +
        '\n',
    );
    return record;
  } finally {
    await store.close();
    provider.destroy();
    await chain.stop();
    await rm(dataDir, { recursive: true, force: true });
    await database.drop();
  }
}

/** Notification-to-delivery latency through the real apps (the built dist/ bundles), at a steady rate. */
async function deliveryLatency() {
  const destination = await new FhirDestinationSimulator().start();
  const databaseName = 'fhir_trail_bench_sharing_e2e';
  const databaseUrl = await freshDatabase(databaseName);
  const dataDir = await mkdtemp(join(tmpdir(), 'fhir-trail-bench-sharing-e2e-'));
  const queuePrefix = `bench-sharing-${process.pid}`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    NODE_ENV: 'development',
    PORT: String(port),
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: queuePrefix,
    DATA_DIR: dataDir,
    LEDGER_EMBEDDED_PORT: String(await freePort()),
    LEDGER_BATCH_INTERVAL_MS: '1000',
    INBOX_RELAY_INTERVAL_MS: '1000',
    CONSENT_API_KEY: 'bench-consent-key-000001',
    LOG_LEVEL: 'error',
  };
  const root = join(__dirname, '..');
  const children: ChildProcess[] = [];
  try {
    children.push(
      await startProcess(process.execPath, [join(root, 'dist/apps/bridge/main.js')], env, async () => {
        return (await fetch(`${base}/health`)).ok;
      }),
    );
    children.push(
      await startProcess(process.execPath, [join(root, 'dist/apps/worker/main.js')], env, () =>
        Promise.resolve(true),
      ),
    );
    const admin = { authorization: 'Bearer dev-admin-key', 'content-type': 'application/json' };
    const registered = await fetch(`${base}/admin/destinations`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({
        id: 'bench-a',
        name: 'bench-a',
        source: 'demo',
        organisation: 'Organization/hospital-a',
        fhirBaseUrl: destination.baseUrl,
        resourceTypes: ['Observation'],
      }),
    });
    if (registered.status !== 201) throw new Error(`destination refused: ${registered.status}`);
    const granted = await fetch(`${base}/fhir/R4/Consent/bench-consent`, {
      method: 'PUT',
      headers: {
        authorization: 'Bearer bench-consent-key-000001',
        'content-type': 'application/fhir+json',
        'x-fhir-trail-source': 'demo',
      },
      body: JSON.stringify({
        ...consent(0),
        id: 'bench-consent',
        category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
        patient: { reference: 'Patient/bench-latency' },
      }),
    });
    if (granted.status !== 200) throw new Error(`bench consent refused: ${granted.status}`);
    await until(async () => {
      const rows = await query<{ n: string }>(
        databaseUrl,
        'select count(*) as n from consent_registry_pairs where confirmed_active and confirmed_block is not null',
      );
      return Number(rows[0]?.n) > 0;
    }, 60_000);

    const observation = (i: number) => ({
      resourceType: 'Observation',
      id: `bench-obs-${i}`,
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: 'Patient/bench-latency' },
      valueQuantity: {
        value: 60 + (i % 40),
        unit: '/min',
        system: 'http://unitsofmeasure.org',
        code: '/min',
      },
    });
    const sentAt = new Map<string, number>();
    const sends: Promise<unknown>[] = [];
    const started = performance.now();
    for (let i = 0; i < EVENTS; i++) {
      const wait = started + (i * 1000) / RATE - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      sentAt.set(`/fhir/Observation/bench-obs-${i}`, performance.now());
      sends.push(
        fetch(`${base}/hooks/demo`, {
          method: 'POST',
          headers: { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' },
          body: JSON.stringify(observation(i)),
        }).then((r) => r.arrayBuffer()),
      );
    }
    await Promise.all(sends);
    const arrived = () => destination.received.filter((r) => sentAt.has(r.path) && r.status === 200);
    await until(() => Promise.resolve(arrived().length >= EVENTS), 120_000).catch(() => undefined);
    const bridge = arrived().map((r) => r.receivedAt - (sentAt.get(r.path) ?? r.receivedAt));
    const direct: number[] = [];
    for (let i = 0; i < Math.min(EVENTS, 200); i++) {
      const t0 = performance.now();
      const response = await fetch(`${destination.baseUrl}/Observation/direct-${i}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/fhir+json' },
        body: JSON.stringify(observation(i)),
      });
      await response.arrayBuffer();
      direct.push(performance.now() - t0);
    }
    return {
      rate: RATE,
      events: EVENTS,
      delivered: bridge.length,
      bridge: timing(bridge),
      direct: timing(direct),
    };
  } finally {
    for (const child of children.reverse()) await stopProcess(child);
    await destination.stop();
    await deleteRedisPrefix(queuePrefix);
    await dropDatabase(databaseName);
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function until(probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function hex(key: Buffer): string {
  return `0x${key.toString('hex')}`;
}

if (require.main === module) {
  sharingBenchmark().catch((error: unknown) => {
    process.stderr.write(
      `sharing bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  });
}
