/**
 * `npm run map -- --profile FILE|ID[@VERSION] INPUT...` — dry-runs a mapping profile over resource
 * and Bundle files (folders are searched for *.json), prints what each resource became and a
 * summary table; exit 1 when anything is invalid, 2 on a usage error, an unknown profile or an
 * unreadable input. A profile ID is read from the database (DATABASE_URL): its active version, or
 * the one after `@`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { loadConfig } from '@fhir-trail/config';
import {
  compileMappingProfile,
  type CompiledMappingProfile,
  type DryRunResult,
  dryRunMapping,
  FhirRequestError,
  isErrorIssue,
  loadFhirDefinitions,
  parseMappingProfile,
  parseResourceJson,
  summariseDryRun,
} from '@fhir-trail/fhir-mapping';
import { Store } from '@fhir-trail/store';

const HELP = `npm run map -- --profile FILE|ID[@VERSION] [options] INPUT...

Dry-runs a mapping profile over FHIR resources: nothing is stored. Each INPUT is a JSON file holding
a resource or a Bundle (each entry resource is mapped), or a folder searched for *.json files.

  --profile FILE|ID[@VERSION]  a profile JSON file, or the id of a stored profile (read from
                               DATABASE_URL): its active version, or VERSION
  --source ID                  the source id the profile sees (reference prefixes, meta.source);
                               default dry-run
  --fhir-version V             DSTU2, STU3 or R4; default: detected per resource
  --diff                       print every change (+ added, - removed, ~ replaced) under each resource
  --json                       print the full results (output, changes, OperationOutcome) as JSON
  -h, --help                   this text

Prints one line per resource (transformed, unchanged or invalid, with its first error), then a
summary table. Exit status: 0 nothing invalid, 1 something invalid, 2 usage error, unknown profile
or unreadable input.`;

interface MapOptions {
  readonly profile: string;
  readonly source: string;
  readonly fhirVersion?: 'DSTU2' | 'STU3' | 'R4';
  readonly diff: boolean;
  readonly json: boolean;
  readonly inputs: readonly string[];
}

/** Output streams and the environment, so the command can be run in-process by tests. */
export interface MapIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

class UsageError extends Error {}

/** Runs the command; answers its exit status. */
export async function runMap(argv: readonly string[], io: MapIo): Promise<number> {
  let options: MapOptions;
  try {
    const parsed = parseArgs(argv);
    if (parsed === 'help') {
      io.out(`${HELP}\n`);
      return 0;
    }
    options = parsed;
  } catch (error) {
    io.err(`${(error as Error).message}\n\n${HELP}\n`);
    return 2;
  }

  let profile: CompiledMappingProfile;
  try {
    profile = await loadProfile(options.profile, io);
  } catch (error) {
    io.err(`map: ${(error as Error).message}\n`);
    return 2;
  }
  loadFhirDefinitions();

  let files: string[];
  try {
    files = options.inputs.flatMap((input) => inputFiles(resolve(io.cwd, input), input));
  } catch (error) {
    io.err(`map: ${(error as Error).message}\n`);
    return 2;
  }

  const perFile: { file: string; results: DryRunResult[] }[] = [];
  const { id, version } = profile.document;
  if (!options.json) io.out(`profile ${id} version ${version}, ${files.length} file(s)\n\n`);
  for (const file of files) {
    const results = mapFile(profile, file, options);
    const shown = displayPath(io.cwd, file);
    perFile.push({ file: shown, results });
    if (options.json) continue;
    for (const result of results) io.out(describe(shown, result, options.diff));
  }

  const all = perFile.flatMap((f) => f.results);
  const total = summariseDryRun(all);
  if (options.json) {
    io.out(`${JSON.stringify({ profile: { id, version }, summary: total, files: perFile }, null, 2)}\n`);
  } else {
    io.out(`\n${summaryTable(perFile)}\n`);
  }
  return total.invalid > 0 ? 1 : 0;
}

/** Relative to the working folder when inside it, else absolute. */
function displayPath(cwd: string, file: string): string {
  const shown = relative(cwd, file);
  return shown === '' || shown.startsWith('..') ? file : shown;
}

function parseArgs(argv: readonly string[]): MapOptions | 'help' {
  let profile: string | undefined;
  let source = 'dry-run';
  let fhirVersion: MapOptions['fhirVersion'];
  let diff = false;
  let json = false;
  const inputs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`map: ${arg} needs a value`);
      return next;
    };
    switch (arg) {
      case '-h':
      case '--help':
        return 'help';
      case '--profile':
        profile = value();
        break;
      case '--source':
        source = value();
        if (!/^[A-Za-z0-9-]{1,64}$/.test(source)) throw new UsageError('map: --source is a source id');
        break;
      case '--fhir-version': {
        const v = value();
        if (v !== 'DSTU2' && v !== 'STU3' && v !== 'R4')
          throw new UsageError('map: --fhir-version is DSTU2, STU3 or R4');
        fhirVersion = v;
        break;
      }
      case '--diff':
        diff = true;
        break;
      case '--json':
        json = true;
        break;
      default:
        if (arg.startsWith('-')) throw new UsageError(`map: unknown option ${arg}`);
        inputs.push(arg);
    }
  }
  if (!profile) throw new UsageError('map: --profile FILE|ID is required');
  if (inputs.length === 0) throw new UsageError('map: give at least one INPUT file or folder');
  return { profile, source, fhirVersion, diff, json, inputs };
}

async function loadProfile(spec: string, io: MapIo): Promise<CompiledMappingProfile> {
  const path = resolve(io.cwd, spec);
  if (existsSync(path) && statSync(path).isFile()) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8').replace(/^\uFEFF/, ''));
    } catch {
      throw new Error(`profile ${spec} is not readable JSON`);
    }
    const withVersion =
      typeof json === 'object' && json !== null && !Array.isArray(json) && !('version' in json)
        ? { ...json, version: 1 }
        : json;
    return compiled(() => compileMappingProfile(parseMappingProfile(withVersion)), spec);
  }
  const match = /^([A-Za-z0-9\-.]{1,64})(?:@([0-9]{1,9}))?$/.exec(spec);
  if (!match) throw new Error(`profile ${spec}: no such file, and not a profile id`);
  const config = loadConfig(io.env);
  const store = await Store.open({
    databaseUrl: config.databaseUrl,
    masterKey: config.ledger.masterKey,
    max: 1,
  });
  try {
    const version = match[2] ? Number(match[2]) : await store.mappingProfiles.activeVersion(match[1]);
    if (version === undefined)
      throw new Error(`profile ${match[1]} has no active version in the database (give ID@VERSION)`);
    const record = await store.mappingProfiles.find(match[1], version);
    if (!record) throw new Error(`profile ${match[1]} version ${version} is not in the database`);
    return compiled(() => compileMappingProfile(parseMappingProfile(record.document)), spec);
  } finally {
    await store.close();
  }
}

function compiled(work: () => CompiledMappingProfile, spec: string): CompiledMappingProfile {
  try {
    return work();
  } catch (error) {
    if (error instanceof FhirRequestError) {
      const problems = error.outcome.issue.map(
        (i) => `  - ${i.expression?.join(', ') ?? '(profile)'}: ${i.details?.text ?? i.code}`,
      );
      throw new Error(`profile ${spec} is not valid:\n${problems.join('\n')}`);
    }
    throw error;
  }
}

function inputFiles(path: string, given: string): string[] {
  if (!existsSync(path)) throw new Error(`input ${given}: no such file or folder`);
  if (statSync(path).isFile()) return [path];
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else if (entry.name.endsWith('.json')) found.push(join(dir, entry.name));
    }
  };
  walk(path);
  return found.sort();
}

/** A file that is not JSON, or not a resource, is one invalid result with the reason. */
function mapFile(profile: CompiledMappingProfile, file: string, options: MapOptions): DryRunResult[] {
  let input: unknown;
  try {
    input = parseResourceJson(readFileSync(file));
  } catch (error) {
    if (error instanceof FhirRequestError) return [refused(error.message)];
    throw error;
  }
  try {
    return [
      ...dryRunMapping(profile, input, { sourceId: options.source, fhirVersion: options.fhirVersion })
        .results,
    ];
  } catch (error) {
    if (error instanceof FhirRequestError) return [refused(error.message)];
    throw error;
  }
}

function refused(text: string): DryRunResult {
  return {
    location: '(file)',
    resourceType: '-',
    status: 'invalid',
    changes: [],
    diff: [],
    outcome: {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'structure', details: { text } }],
    },
  };
}

function describe(file: string, result: DryRunResult, withDiff: boolean): string {
  const where = result.location.startsWith('Bundle.') ? `${file} ${result.location}` : file;
  const what = result.id ? `${result.resourceType}/${result.id}` : result.resourceType;
  const errors = result.outcome.issue.filter(isErrorIssue);
  const note =
    result.status === 'invalid'
      ? `${errors.length} error(s): ${issueText(errors[0])}`
      : `${result.changes.length} change(s)`;
  const lines = [`${result.status.padEnd(11)} ${where}  ${what}  ${note}`];
  if (result.status === 'invalid')
    for (const issue of errors.slice(1)) lines.push(`              ${issueText(issue)}`);
  if (withDiff) for (const line of result.diff) lines.push(`    ${line}`);
  return `${lines.join('\n')}\n`;
}

function issueText(issue: DryRunResult['outcome']['issue'][number] | undefined): string {
  if (!issue) return '';
  const where = issue.expression?.length ? ` (at ${issue.expression.join(', ')})` : '';
  return `${issue.details?.text ?? issue.diagnostics ?? issue.code}${where}`;
}

function summaryTable(perFile: readonly { file: string; results: readonly DryRunResult[] }[]): string {
  const rows = perFile.map((f) => ({ label: f.file, ...summariseDryRun(f.results) }));
  const total = { label: 'total', ...summariseDryRun(perFile.flatMap((f) => f.results)) };
  const width = Math.min(70, Math.max(5, ...rows.map((r) => r.label.length)));
  const cut = (label: string) => (label.length > width ? `…${label.slice(label.length - width + 1)}` : label);
  const line = (label: string, cells: readonly (string | number)[]) =>
    `${cut(label).padEnd(width)}  ${cells.map((c) => String(c).padStart(11)).join(' ')}`;
  return [
    line('file', ['transformed', 'unchanged', 'invalid', 'resources']),
    ...(rows.length > 1
      ? rows.map((r) => line(r.label, [r.transformed, r.unchanged, r.invalid, r.resources]))
      : []),
    line(total.label, [total.transformed, total.unchanged, total.invalid, total.resources]),
  ].join('\n');
}

if (require.main === module) {
  runMap(process.argv.slice(2), {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
  }).then(
    (status) => {
      process.exitCode = status;
    },
    (error: unknown) => {
      process.stderr.write(
        `map: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exitCode = 2;
    },
  );
}
