/**
 * Intake benchmark: the bridge's `POST /hooks/demo` (auth, shape parsing, inbox INSERT committed,
 * enqueue) against a baseline server doing only the durable part (one INSERT of the body into the
 * same PostgreSQL), measured in the same run with the same load generator and body.
 */
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, freshDatabase, load, type LoadFigures, startProcess, stopProcess } from './support';

const ROOT = join(__dirname, '..');
const CONNECTIONS = 32;
const DURATION_SECONDS = Number(process.env.BENCH_DURATION_SECONDS ?? 10);
const WARMUP_SECONDS = 2;

export async function intakeBenchmark(): Promise<Record<string, unknown>> {
  const body = await readFile(join(ROOT, 'test/fixtures/r4-examples/Observation-example.json'));
  const databaseUrl = await freshDatabase('fhirtrail_bench_intake');
  const dataDir = await mkdtemp(join(tmpdir(), 'fhir-trail-bench-'));
  const headers = { 'content-type': 'application/fhir+json', authorization: 'Bearer demo-token' };

  const baselinePort = await freePort();
  const baseline = await startProcess(
    process.execPath,
    [
      join(ROOT, 'node_modules/tsx/dist/cli.mjs'),
      join(__dirname, 'baseline-server.ts'),
      databaseUrl,
      String(baselinePort),
    ],
    process.env,
    async () => (await fetch(`http://127.0.0.1:${baselinePort}/`, { method: 'POST', body: '{}' })).ok,
  );
  let baselineFigures: LoadFigures;
  try {
    const url = `http://127.0.0.1:${baselinePort}/`;
    await load({ url, body, headers, connections: CONNECTIONS, durationSeconds: WARMUP_SECONDS });
    baselineFigures = await load({
      url,
      body,
      headers,
      connections: CONNECTIONS,
      durationSeconds: DURATION_SECONDS,
    });
  } finally {
    await stopProcess(baseline);
  }

  const bridgePort = await freePort();
  const bridge = await startProcess(
    process.execPath,
    [join(ROOT, 'dist/apps/bridge/main.js')],
    {
      ...process.env,
      NODE_ENV: 'development',
      PORT: String(bridgePort),
      DATABASE_URL: databaseUrl,
      QUEUE_PREFIX: `bench-${process.pid}`,
      DATA_DIR: dataDir,
      LEDGER_EMBEDDED_PORT: String(await freePort()),
      LOG_LEVEL: 'error',
    },
    async () => (await fetch(`http://127.0.0.1:${bridgePort}/health`)).ok,
  );
  let bridgeFigures: LoadFigures;
  try {
    const url = `http://127.0.0.1:${bridgePort}/hooks/demo`;
    await load({ url, body, headers, connections: CONNECTIONS, durationSeconds: WARMUP_SECONDS });
    bridgeFigures = await load({
      url,
      body,
      headers,
      connections: CONNECTIONS,
      durationSeconds: DURATION_SECONDS,
    });
  } finally {
    await stopProcess(bridge);
    await rm(dataDir, { recursive: true, force: true });
  }

  const ratio = bridgeFigures.requestsPerSecond / baselineFigures.requestsPerSecond;
  const row = (name: string, f: LoadFigures) =>
    `${name.padEnd(28)} ${String(f.requestsPerSecond).padStart(8)} ${String(f.p50Ms).padStart(8)} ${String(f.p99Ms).padStart(8)} ${String(f.non2xx + f.errors).padStart(8)}`;
  process.stdout.write(
    [
      `intake: ${body.length}-byte Observation, ${CONNECTIONS} connections, ${DURATION_SECONDS} s each, same PostgreSQL`,
      `${'server'.padEnd(28)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'failed'.padStart(8)}`,
      row('baseline (INSERT only)', baselineFigures),
      row('bridge POST /hooks/demo', bridgeFigures),
      `bridge / baseline throughput: ${(ratio * 100).toFixed(1)} %`,
      '',
    ].join('\n'),
  );
  const result = {
    benchmark: 'intake',
    at: new Date().toISOString(),
    node: process.version,
    bodyBytes: body.length,
    connections: CONNECTIONS,
    durationSeconds: DURATION_SECONDS,
    baseline: baselineFigures,
    bridge: bridgeFigures,
    ratio: Number(ratio.toFixed(3)),
  };
  await mkdir(join(__dirname, 'results'), { recursive: true });
  await writeFile(join(__dirname, 'results', 'intake.json'), `${JSON.stringify(result)}\n`);
  return result;
}
