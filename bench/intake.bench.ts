/**
 * Intake benchmarks: the bridge's `POST /hooks/{sourceId}` (auth, shape parsing, inbox INSERT
 * committed, enqueue) against a baseline server doing only the durable part (one INSERT of the body
 * into the same PostgreSQL), measured in the same run with the same load generator and body, for
 * each notification shape; then the bridge at half its maximum rate (latency); then the pipeline end
 * to end — bridge and worker against the FHIR source simulator as the source — for id-only events,
 * which the worker must fetch back before it stores them.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FhirSourceSimulator } from '../test/support/fhir-source-simulator';
import {
  benchSubscription,
  fullResourceNotification,
  idOnlyNotifications,
  observationExample,
} from './notification-bodies';
import {
  type CpuFigures,
  deleteRedisPrefix,
  dropDatabase,
  freePort,
  freshDatabase,
  load,
  type LoadFigures,
  paced,
  query,
  startProcess,
  stopProcess,
  withCpu,
} from './support';

const ROOT = join(__dirname, '..');
/** The bridge under test; BENCH_BRIDGE_MAIN points at another build (e.g. a saved one, for before/after). */
const BRIDGE_MAIN = process.env.BENCH_BRIDGE_MAIN ?? join(ROOT, 'dist/apps/bridge/main.js');
/** Node flags for the bridge: by default the ones `npm start` and the Docker image use (BENCH_BRIDGE_NODE_FLAGS='' for none). */
const BRIDGE_NODE_FLAGS = (process.env.BENCH_BRIDGE_NODE_FLAGS ?? '--max-semi-space-size=2')
  .split(' ')
  .filter(Boolean);
const CONNECTIONS = 32;
const DURATION_SECONDS = Number(process.env.BENCH_DURATION_SECONDS ?? 8);
const WARMUP_SECONDS = 2;
/** id-only notifications sent through the whole pipeline. */
const PIPELINE_EVENTS = Number(process.env.BENCH_PIPELINE_EVENTS ?? 400);
/** Senders of the pipeline run (BENCH_PIPELINE_CONNECTIONS; 1 = one subscription delivering in order). */
const PIPELINE_CONNECTIONS = Number(process.env.BENCH_PIPELINE_CONNECTIONS ?? CONNECTIONS);
/** The pipeline run stops waiting for the worker after this long, and reports what it stored. */
const PIPELINE_MAX_SECONDS = Number(process.env.BENCH_PIPELINE_MAX_SECONDS ?? 30);
/** The goals: intake ≥ half the baseline's rate; p99 under 50 ms at half the bridge's maximum. */
export const GOALS = { minimumRatio: 0.5, halfRateP99Ms: 50 } as const;

const SOURCE = 'bench-ehr';
const TOKEN = 'bench-ehr-bearer-secret-0123456789';
const HEADERS = { 'content-type': 'application/fhir+json', authorization: `Bearer ${TOKEN}` };

export interface ServerFigures extends LoadFigures {
  readonly cpu?: CpuFigures;
}

/** One JSON line of bench/results/intake.json. */
export type BenchResult = Record<string, unknown> & { benchmark: string };

interface Shape {
  readonly key: string;
  readonly label: string;
  readonly body: Buffer;
  /** Resources (events) in one notification. */
  readonly resources: number;
}

export async function intakeBenchmarks(): Promise<BenchResult[]> {
  const simulator = new FhirSourceSimulator();
  const fhirBase = await simulator.start();
  const workDir = await mkdtemp(join(tmpdir(), 'fhir-trail-bench-'));
  const sourcesFile = join(workDir, 'sources.json');
  await writeFile(
    sourcesFile,
    JSON.stringify([
      {
        id: SOURCE,
        name: 'Benchmark EHR (the FHIR source simulator)',
        organisation: { display: 'Benchmark Hospital' },
        fhirBaseUrl: fhirBase,
        senderAuth: { bearer: { token: TOKEN } },
      },
    ]),
  );
  const context: RunContext = { workDir, sourcesFile };
  try {
    // BENCH_ONLY=intake or BENCH_ONLY=pipeline runs just that part.
    const only = process.env.BENCH_ONLY;
    const results = only === 'pipeline' ? [] : await intakeShapes(simulator, context);
    if (only !== 'intake') results.push(await pipelineIdOnly(simulator, context));
    return results;
  } finally {
    await simulator.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

interface RunContext {
  readonly workDir: string;
  readonly sourcesFile: string;
}

// ----------------------------------------------------------------------------- intake per shape

async function intakeShapes(simulator: FhirSourceSimulator, context: RunContext): Promise<BenchResult[]> {
  const databaseName = 'fhirtrail_bench_intake';
  const databaseUrl = await freshDatabase(databaseName);
  const queuePrefix = `bench-intake-${process.pid}`;
  const phase: Phase = { databaseUrl, queuePrefix, ledgerPort: await freePort() };
  const baselinePort = await freePort();
  const bridgePort = await freePort();
  const baseline = await startProcess(
    process.execPath,
    ['--import', 'tsx', join(__dirname, 'baseline-server.ts'), databaseUrl, String(baselinePort)],
    process.env,
    async () => (await fetch(`http://127.0.0.1:${baselinePort}/`, { method: 'POST', body: '{}' })).ok,
  );
  const bridge = await startBridge(context, phase, bridgePort).catch(async (error) => {
    await stopProcess(baseline);
    throw error;
  });
  try {
    const subscriptionId = benchSubscription(simulator, `http://127.0.0.1:${bridgePort}/hooks/${SOURCE}`);
    const shapes: Shape[] = [
      {
        key: 'bare-resource',
        label: 'bare resource (Observation)',
        body: observationExample(),
        resources: 1,
      },
      {
        key: 'backport-id-only',
        label: 'Backport id-only, 1 event',
        body: idOnlyNotifications(simulator, subscriptionId, 1, 'bench-intake-id-only')[0],
        resources: 1,
      },
      {
        key: 'backport-full-resource-10',
        label: 'Backport full-resource, 10 entries',
        body: fullResourceNotification(simulator, subscriptionId, 10, 'bench-intake-full'),
        resources: 10,
      },
    ];
    const baselineUrl = `http://127.0.0.1:${baselinePort}/`;
    const bridgeUrl = `http://127.0.0.1:${bridgePort}/hooks/${SOURCE}`;
    const results: BenchResult[] = [];
    let bareRate = 0;
    for (const shape of shapes) {
      const base = await measure(baselineUrl, shape.body, baseline.pid, databaseUrl);
      const ours = await measure(bridgeUrl, shape.body, bridge.pid, databaseUrl);
      if (shape.key === 'bare-resource') bareRate = ours.requestsPerSecond;
      const ratio = ours.requestsPerSecond / Math.max(1, base.requestsPerSecond);
      results.push({
        benchmark: `intake/${shape.key}`,
        ...runInfo(),
        shape: shape.label,
        bodyBytes: shape.body.length,
        resourcesPerNotification: shape.resources,
        baseline: base,
        bridge: ours,
        bridgeResourcesPerSecond: ours.requestsPerSecond * shape.resources,
        ratio: Number(ratio.toFixed(3)),
        goal: { minimumRatio: GOALS.minimumRatio, met: ratio >= GOALS.minimumRatio },
      });
    }

    // Half the maximum just measured, offered at a steady pace (open loop): the latency a sender
    // sees when the bridge is busy but not saturated. The baseline at the same pace shows what the
    // machine itself allows; autocannon's overallRate figure is kept for comparison only (see paced()).
    const targetRate = Math.max(1, Math.floor(bareRate / 2));
    const bare = shapes[0];
    const half = { url: bridgeUrl, body: bare.body, headers: HEADERS, connections: CONNECTIONS };
    await load({ ...half, durationSeconds: 1 });
    const steady = await withCpu(bridge.pid, databaseUrl, () =>
      paced({ ...half, durationSeconds: DURATION_SECONDS, rate: targetRate }),
    );
    const baselineSteady = await paced({
      ...half,
      url: baselineUrl,
      durationSeconds: DURATION_SECONDS,
      rate: targetRate,
    });
    const autocannonRate = await load({
      ...half,
      durationSeconds: DURATION_SECONDS,
      overallRate: targetRate,
    });
    results.push({
      benchmark: 'intake/half-rate',
      ...runInfo(),
      shape: bare.label,
      bodyBytes: bare.body.length,
      targetRequestsPerSecond: targetRate,
      method: 'open loop, evenly paced; latency from when each request was handed to the HTTP client',
      bridge: { ...steady.figures, cpu: steady.cpu },
      baseline: baselineSteady,
      autocannonOverallRate: autocannonRate,
      goal: { p99BelowMs: GOALS.halfRateP99Ms, met: steady.figures.p99Ms < GOALS.halfRateP99Ms },
    });
    return results;
  } finally {
    await Promise.all([stopProcess(baseline), stopProcess(bridge)]);
    await deleteRedisPrefix(queuePrefix);
    await dropDatabase(databaseName);
  }
}

async function measure(
  url: string,
  body: Buffer,
  pid: number | undefined,
  databaseUrl: string,
): Promise<ServerFigures> {
  await load({ url, body, headers: HEADERS, connections: CONNECTIONS, durationSeconds: WARMUP_SECONDS });
  const { figures, cpu } = await withCpu(pid, databaseUrl, () =>
    load({ url, body, headers: HEADERS, connections: CONNECTIONS, durationSeconds: DURATION_SECONDS }),
  );
  return { ...figures, cpu };
}

// ----------------------------------------------------------------------------- pipeline

/**
 * Bridge and worker on a fresh database, the simulator as the source: PIPELINE_EVENTS id-only
 * notifications (one event each, each about its own Observation) sent as fast as the bridge takes
 * them, and the rate at which the worker fetches them back and stores them, from the inbox counts:
 * notifications finished (done or dead letter) per second, from the first request to the last row.
 */
async function pipelineIdOnly(simulator: FhirSourceSimulator, context: RunContext): Promise<BenchResult> {
  const databaseName = 'fhirtrail_bench_pipeline';
  const databaseUrl = await freshDatabase(databaseName);
  const queuePrefix = `bench-pipeline-${process.pid}`;
  const phase: Phase = { databaseUrl, queuePrefix, ledgerPort: await freePort() };
  const bridgePort = await freePort();
  const bridge = await startBridge(context, phase, bridgePort);
  let worker: Awaited<ReturnType<typeof startProcess>> | undefined;
  try {
    const endpoint = `http://127.0.0.1:${bridgePort}/hooks/${SOURCE}`;
    const subscriptionId = benchSubscription(simulator, endpoint);
    const [warmup, ...bodies] = idOnlyNotifications(
      simulator,
      subscriptionId,
      PIPELINE_EVENTS + 1,
      'bench-e2e',
    );
    worker = await startProcess(
      process.execPath,
      [join(ROOT, 'dist/apps/worker/main.js')],
      appEnv(context, phase, bridgePort),
      () => Promise.resolve(true),
    );
    // The worker is ready once it has fetched back and stored the first event.
    const warm = await fetch(endpoint, { method: 'POST', headers: HEADERS, body: new Uint8Array(warmup) });
    if (!warm.ok) throw new Error(`the bridge refused the warm-up notification (${warm.status})`);
    await waitFor(async () => (await finishedCount(databaseUrl)) >= 1, 90_000, 'the worker to start');

    const readsBefore = simulator.stats.requests.length;
    const started = Date.now();
    const intake = await load({ url: endpoint, bodies, headers: HEADERS, connections: PIPELINE_CONNECTIONS });
    const intakeSeconds = (Date.now() - started) / 1000;
    let finished = await finishedCount(databaseUrl);
    let lastAt = Date.now();
    while (finished < PIPELINE_EVENTS + 1 && Date.now() - started < PIPELINE_MAX_SECONDS * 1000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const now = await finishedCount(databaseUrl);
      if (now !== finished) lastAt = Date.now();
      finished = now;
    }
    const events = finished - 1;
    const seconds = (lastAt - started) / 1000;
    const [counts] = await query<{ stored: string; dead: string }>(
      databaseUrl,
      `select (select count(*) from resource_versions where source_id = $1) as stored,
              (select count(*) from dead_letters where source_id = $1) as dead`,
      [SOURCE],
    );
    const fetched = simulator.stats.requests.slice(readsBefore).filter((r) => r.method === 'GET').length;
    return {
      benchmark: 'pipeline/backport-id-only',
      ...runInfo(),
      shape: 'Backport id-only, 1 event, fetched back from the simulator',
      bodyBytes: bodies[0]?.length ?? 0,
      notificationsSent: bodies.length,
      senders: PIPELINE_CONNECTIONS,
      intake: { ...intake, seconds: Number(intakeSeconds.toFixed(2)) },
      eventsFinished: events,
      resourcesStored: Number(counts.stored) - 1,
      deadLetters: Number(counts.dead),
      sourceReads: fetched,
      seconds: Number(seconds.toFixed(2)),
      eventsPerSecond: Math.round(events / Math.max(0.001, seconds)),
      complete: events >= PIPELINE_EVENTS,
    };
  } finally {
    if (worker) await stopProcess(worker);
    await stopProcess(bridge);
    await deleteRedisPrefix(queuePrefix);
    await dropDatabase(databaseName);
  }
}

async function finishedCount(databaseUrl: string): Promise<number> {
  const [row] = await query<{ n: string }>(
    databaseUrl,
    "select count(*) as n from inbox where status <> 'received'",
  );
  return Number(row.n);
}

async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// ----------------------------------------------------------------------------- processes

/** What bridge and worker of one phase share: database, queue prefix, data directory and embedded chain. */
interface Phase {
  readonly databaseUrl: string;
  readonly queuePrefix: string;
  readonly ledgerPort: number;
}

function appEnv(context: RunContext, phase: Phase, port: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NODE_ENV: 'development',
    PORT: String(port),
    DATABASE_URL: phase.databaseUrl,
    QUEUE_PREFIX: phase.queuePrefix,
    DATA_DIR: join(context.workDir, phase.queuePrefix),
    LEDGER_EMBEDDED_PORT: String(phase.ledgerPort),
    SOURCES_FILE: context.sourcesFile,
    LOG_LEVEL: 'error',
  };
}

function startBridge(context: RunContext, phase: Phase, port: number) {
  return startProcess(
    process.execPath,
    [...BRIDGE_NODE_FLAGS, BRIDGE_MAIN],
    appEnv(context, phase, port),
    async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok,
  );
}

function runInfo(): Record<string, unknown> {
  return {
    at: new Date().toISOString(),
    node: process.version,
    bridgeNodeFlags: BRIDGE_NODE_FLAGS,
    cores: cpus().length,
    connections: CONNECTIONS,
    durationSeconds: DURATION_SECONDS,
  };
}
