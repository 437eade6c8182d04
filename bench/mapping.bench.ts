/**
 * Mapping + validation throughput over the Synthea corpus, beside the bare @medplum/core
 * `validateResource` rate measured in the same run (the baseline). One process, one core, no I/O:
 * the worker's CPU cost per resource. Variants, so the report shows where the time goes:
 * - `medplum`: @medplum/core validateResource alone (the baseline);
 * - `validate`: our validateResource (the baseline + FHIR JSON rules) — what a source without a profile costs;
 * - `empty-profile`: normaliseResource with a profile of no steps (clone, version detection, R4
 *   validation, required-binding checks, diff);
 * - `normalise`: normaliseResource with the non-trivial corpus profile (ConceptMap code rewrite,
 *   identifier system rewrites, unit normalisation with a conversion, meta stamping) — the full step.
 * Variants alternate over rounds (best round counts). Rates are resources per CPU-second of this
 * process (process.cpuUsage), so other work on a shared machine does not distort the comparison;
 * wall-clock rates are recorded beside them.
 * Alone: `npx tsx bench/mapping.bench.ts`; BENCH_MAPPING_SECONDS sets the time per variant per round.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { validateResource as medplumValidate } from '@medplum/core';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import {
  compileMappingProfile,
  loadFhirDefinitions,
  normaliseResource,
  parseMappingProfile,
  validateResource,
} from '@fhir-trail/fhir-mapping';

const ROOT = join(__dirname, '..');
const SECONDS_PER_ROUND = Number(process.env.BENCH_MAPPING_SECONDS ?? 3);
const ROUNDS = 3;

/** The issue's goals: the full step at no less than 40 % of bare validation, and at least 2,000 resources/s. */
export const MAPPING_GOALS = { minimumRatio: 0.4, minimumPerSecond: 2_000 } as const;

export interface MappingBenchResult extends Record<string, unknown> {
  readonly benchmark: 'mapping/synthea';
  readonly corpus: string;
  readonly resources: number;
  readonly secondsPerRound: number;
  readonly rounds: number;
  readonly cores: number;
  readonly node: string;
  /** Resources per CPU-second of this process, best round, per variant. */
  readonly perSecond: Readonly<Record<Variant, number>>;
  /** Resources per wall-clock second, best round, per variant (lower when the machine is busy). */
  readonly perWallSecond: Readonly<Record<Variant, number>>;
  /** normalise / medplum. */
  readonly ratio: number;
  /** Resources the full profile found invalid (they would be dead letters). */
  readonly invalid: number;
}

type Variant = 'medplum' | 'validate' | 'empty-profile' | 'normalise';

export async function mappingBenchmark(): Promise<MappingBenchResult> {
  await Promise.resolve();
  loadFhirDefinitions();
  const shared = join(ROOT, '..', 'shared', 'fhir-corpus', 'synthea');
  const corpusDir = existsSync(shared) ? shared : join(ROOT, 'test', 'fixtures', 'synthea');
  const resources = jsonFiles(corpusDir).flatMap((file) =>
    ((JSON.parse(readFileSync(file, 'utf8')) as Bundle).entry ?? []).flatMap((e) =>
      e.resource ? [e.resource] : [],
    ),
  );
  const profileJson = JSON.parse(
    readFileSync(join(ROOT, 'test', 'fixtures', 'mapping', 'corpus-normalise.profile.json'), 'utf8'),
  ) as Record<string, unknown>;
  const full = compileMappingProfile(parseMappingProfile({ ...profileJson, version: 1 }));
  const empty = compileMappingProfile(parseMappingProfile({ id: 'empty', version: 1, steps: [] }));
  const context = { sourceId: 'bench' };

  let invalid = 0;
  for (const resource of resources) if (!normaliseResource(full, resource, context).valid) invalid++;

  const variants: Record<Variant, (resource: Resource) => unknown> = {
    medplum: (resource) => medplumValidate(resource),
    validate: (resource) => validateResource(resource),
    'empty-profile': (resource) => normaliseResource(empty, resource, context),
    normalise: (resource) => normaliseResource(full, resource, context),
  };
  const best: Record<Variant, number> = { medplum: 0, validate: 0, 'empty-profile': 0, normalise: 0 };
  const bestWall: Record<Variant, number> = { medplum: 0, validate: 0, 'empty-profile': 0, normalise: 0 };
  // Warm-up: every variant once over the corpus (JIT, lazily built value-set indexes).
  for (const run of Object.values(variants)) for (const resource of resources) run(resource);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, run] of Object.entries(variants) as [Variant, (r: Resource) => unknown][]) {
      const measured = rate(resources, run, SECONDS_PER_ROUND);
      best[name] = Math.max(best[name], measured.cpu);
      bestWall[name] = Math.max(bestWall[name], measured.wall);
    }
  }
  return {
    benchmark: 'mapping/synthea',
    corpus: corpusDir.startsWith(ROOT) ? 'fixtures subset' : 'shared corpus',
    resources: resources.length,
    secondsPerRound: SECONDS_PER_ROUND,
    rounds: ROUNDS,
    cores: cpus().length,
    node: process.version,
    perSecond: best,
    perWallSecond: bestWall,
    ratio: round3(best.normalise / best.medplum),
    invalid,
  };
}

/** Resources per CPU-second and per wall second of `run`, cycling over the corpus for about `seconds` of CPU. */
function rate(
  resources: readonly Resource[],
  run: (resource: Resource) => unknown,
  seconds: number,
): { cpu: number; wall: number } {
  const cpuSeconds = (since: NodeJS.CpuUsage) => {
    const used = process.cpuUsage(since);
    return (used.user + used.system) / 1e6;
  };
  const startedCpu = process.cpuUsage();
  const startedWall = performance.now();
  let done = 0;
  while (cpuSeconds(startedCpu) < seconds) {
    for (const resource of resources) run(resource);
    done += resources.length;
  }
  return {
    cpu: Math.round(done / cpuSeconds(startedCpu)),
    wall: Math.round(done / ((performance.now() - startedWall) / 1_000)),
  };
}

/** The report's lines and goal verdicts. */
export function mappingReport(result: MappingBenchResult): { lines: string[]; goals: string[] } {
  const { perSecond } = result;
  const micros = (variant: Variant) => `${(1_000_000 / perSecond[variant]).toFixed(0)} µs`;
  const lines = [
    '',
    `mapping + validation, ${result.resources} Synthea resources (${result.corpus}), one core, best of ` +
      `${result.rounds} rounds of ${result.secondsPerRound} CPU-s; baseline = bare @medplum/core validateResource, same run`,
    `  ${'variant'.padEnd(48)} ${'res/CPU-s'.padStart(12)} ${'vs baseline'.padStart(12)} ${'per resource'.padStart(13)} ${'res/s wall'.padStart(11)}`,
    ...(
      [
        ['medplum', '@medplum/core validateResource (baseline)'],
        ['validate', 'validateResource (+ JSON rules; no profile)'],
        ['empty-profile', 'normaliseResource, profile without steps'],
        ['normalise', 'normaliseResource, corpus profile (full step)'],
      ] as const
    ).map(
      ([variant, label]) =>
        `  ${label.padEnd(48)} ${String(perSecond[variant]).padStart(12)} ${`${((perSecond[variant] / perSecond.medplum) * 100).toFixed(1)} %`.padStart(12)} ${micros(variant).padStart(13)} ${String(result.perWallSecond[variant]).padStart(11)}`,
    ),
    `  (${result.invalid} of ${result.resources} resources invalid under the profile)`,
  ];
  const goals = [
    `${met(result.ratio >= MAPPING_GOALS.minimumRatio)}  mapping: full normalise step at ${(result.ratio * 100).toFixed(1)} % ` +
      `of bare validation (goal ≥ ${MAPPING_GOALS.minimumRatio * 100} %)`,
    `${met(perSecond.normalise >= MAPPING_GOALS.minimumPerSecond)}  mapping: ${perSecond.normalise} resources per CPU-second ` +
      `on one core (goal ≥ ${MAPPING_GOALS.minimumPerSecond}/s; wall clock this run: ${result.perWallSecond.normalise}/s)`,
  ];
  return { lines, goals };
}

function met(ok: boolean): string {
  return ok ? 'MET    ' : 'NOT MET';
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function jsonFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...jsonFiles(path));
    else if (entry.name.endsWith('.json')) found.push(path);
  }
  return found.sort();
}

if (require.main === module) {
  mappingBenchmark().then(
    (result) => {
      const { lines, goals } = mappingReport(result);
      process.stdout.write(`${[...lines, '', ...goals].join('\n')}\n`);
    },
    (error: unknown) => {
      process.stderr.write(
        `benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
