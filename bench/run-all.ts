/**
 * `npm run bench`: every benchmark, each against its baseline measured in the same run. Prints a
 * table and whether each goal is met, and records the figures in bench/results/intake.json (one
 * JSON line per benchmark), bench/results/mapping.json, bench/results/ledger.json and
 * bench/results/sharing.json. BENCH_ONLY=intake|pipeline|mapping|ledger|sharing runs one of them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BenchResult, GOALS, intakeBenchmarks, type ServerFigures } from './intake.bench';
import { ledgerBenchmark } from './ledger.bench';
import { mappingBenchmark, mappingReport } from './mapping.bench';
import { sharingBenchmark } from './sharing.bench';
import type { PacedFigures } from './support';

const PARTS = ['intake', 'pipeline', 'mapping', 'ledger', 'sharing'] as const;

async function main(): Promise<void> {
  const started = Date.now();
  // BENCH_ONLY=intake|pipeline (parts of the intake benchmark), mapping, ledger or sharing runs just that.
  const only = process.env.BENCH_ONLY;
  if (only !== undefined && !(PARTS as readonly string[]).includes(only)) {
    throw new Error(`BENCH_ONLY=${only}: choose ${PARTS.join(', ')}`);
  }
  const runs = (part: 'intake' | 'mapping' | 'ledger' | 'sharing'): boolean =>
    only === undefined || only === part || (part === 'intake' && only === 'pipeline');
  await mkdir(join(__dirname, 'results'), { recursive: true });
  const results = runs('intake') ? await intakeBenchmarks() : [];
  if (results.length > 0) {
    await writeFile(
      join(__dirname, 'results', 'intake.json'),
      results.map((r) => JSON.stringify(r)).join('\n') + '\n',
    );
  }
  // CPU-only, in this process: after the intake runs, so their servers are gone.
  const mapping = runs('mapping') ? await mappingBenchmark() : undefined;
  if (mapping) await writeFile(join(__dirname, 'results', 'mapping.json'), `${JSON.stringify(mapping)}\n`);
  if (results.length > 0 || mapping) {
    process.stdout.write(report(results, (Date.now() - started) / 1000, mapping && mappingReport(mapping)));
  }
  if (runs('ledger')) {
    // Prints its own tables (per-event baseline beside batches of 100, 1,000 and 10,000; proofs at
    // 10^6 leaves; bundle size) and writes bench/results/ledger.json.
    process.stdout.write('\n');
    await ledgerBenchmark();
  }
  if (runs('sharing')) {
    // Prints its own tables (consent checks from the mirror beside isConsented by eth_call;
    // notification -> delivery latency beside a direct PUT) and writes bench/results/sharing.json.
    await sharingBenchmark();
  }
}

function report(
  results: readonly BenchResult[],
  seconds: number,
  mapping?: { lines: string[]; goals: string[] },
): string {
  const first = results[0];
  const lines: string[] = [];
  if (first) {
    lines.push(
      '',
      `intake: ${String(first.connections)} connections, ${String(first.durationSeconds)} s per run after a warm-up, ` +
        `${String(first.cores)} cores, Node ${String(first.node)}; baseline = one INSERT of the body, same PostgreSQL, same run`,
      '',
      row([
        'shape',
        'bytes',
        'bridge req/s',
        'p50 ms',
        'p99 ms',
        'baseline req/s',
        'ratio',
        'CPU ms/req bridge+pg | base',
      ]),
    );
  }
  const goals: string[] = [];
  for (const result of results) {
    if (result.benchmark.startsWith('intake/') && result.benchmark !== 'intake/half-rate') {
      const bridge = result.bridge as ServerFigures;
      const baseline = result.baseline as ServerFigures;
      const ratio = Number(result.ratio);
      lines.push(
        row([
          String(result.shape),
          String(result.bodyBytes),
          String(bridge.requestsPerSecond),
          String(bridge.p50Ms),
          String(bridge.p99Ms),
          String(baseline.requestsPerSecond),
          percent(ratio),
          `${cpu(bridge)} | ${cpu(baseline)}`,
        ]),
      );
      if (Number(result.resourcesPerNotification) > 1) {
        lines.push(`  ${'└ resources/s'.padEnd(36)} ${String(result.bridgeResourcesPerSecond).padStart(12)}`);
      }
      if (bridge.non2xx + bridge.errors > 0) {
        lines.push(`  ! ${bridge.non2xx} non-2xx answers and ${bridge.errors} errors from the bridge`);
      }
      goals.push(
        `${met(ratio >= GOALS.minimumRatio)}  ${String(result.shape)}: bridge at ${percent(ratio)} of the baseline ` +
          `(goal ≥ ${percent(GOALS.minimumRatio)})`,
      );
    } else if (result.benchmark === 'intake/half-rate') {
      const bridge = result.bridge as PacedFigures & ServerFigures;
      const baseline = result.baseline as PacedFigures;
      const autocannon = result.autocannonOverallRate as ServerFigures;
      lines.push(
        row([
          'half rate (paced), bare resource',
          String(result.bodyBytes),
          `${bridge.requestsPerSecond}/${String(result.targetRequestsPerSecond)}`,
          String(bridge.p50Ms),
          String(bridge.p99Ms),
          `p99 ${baseline.p99Ms} ms`,
          '',
          cpu(bridge),
        ]),
        `  └ load generator lateness p99 ${bridge.lagP99Ms} ms (bridge run), ${baseline.lagP99Ms} ms (baseline run); ` +
          `same rate through autocannon overallRate (per-second bursts, 1 ms omission correction): ` +
          `p50 ${autocannon.p50Ms} ms, p99 ${autocannon.p99Ms} ms`,
      );
      goals.push(
        `${met(bridge.p99Ms < GOALS.halfRateP99Ms)}  p99 at half the bridge's maximum rate ` +
          `(${String(result.targetRequestsPerSecond)} req/s, paced): ${bridge.p99Ms} ms (goal < ${GOALS.halfRateP99Ms} ms; ` +
          `baseline at the same pace: ${baseline.p99Ms} ms)`,
      );
    } else if (result.benchmark === 'pipeline/backport-id-only') {
      const intake = result.intake as ServerFigures;
      lines.push(
        '',
        `pipeline, id-only events end to end (bridge + worker, the simulator as the source): ` +
          `${String(result.eventsFinished)} of ${String(result.notificationsSent)} notifications fetched back and stored ` +
          `in ${String(result.seconds)} s = ${String(result.eventsPerSecond)} events/s ` +
          `(${String(result.resourcesStored)} resource versions, ${String(result.deadLetters)} dead letters, ` +
          `${String(result.sourceReads)} reads from the source; intake meanwhile ${intake.requestsPerSecond} req/s, ` +
          `p99 ${intake.p99Ms} ms)${result.complete ? '' : ' — INCOMPLETE: the worker did not finish in time'}`,
      );
    }
  }
  if (mapping) {
    lines.push(...mapping.lines);
    goals.push(...mapping.goals);
  }
  lines.push('', 'goals:', ...goals.map((g) => `  ${g}`), '', `bench took ${seconds.toFixed(0)} s`, '');
  return lines.join('\n');
}

const WIDTHS = [38, 6, 13, 7, 7, 15, 8, 0];

function row(cells: readonly string[]): string {
  return cells.map((cell, i) => (i === 0 ? cell.padEnd(WIDTHS[i]) : cell.padStart(WIDTHS[i]))).join(' ');
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)} %`;
}

function cpu(figures: ServerFigures): string {
  return figures.cpu
    ? `${figures.cpu.serverMsPerRequest.toFixed(2)}+${figures.cpu.postgresMsPerRequest.toFixed(2)}`
    : 'n/a';
}

function met(ok: boolean): string {
  return ok ? 'MET    ' : 'NOT MET';
}

main().catch((error: unknown) => {
  process.stderr.write(
    `benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
