import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { DEV_MASTER_KEY_HEX } from '@fhir-trail/config';
import { Store } from '@fhir-trail/store';
import { createTestDatabase, type TestDatabase } from '../test/support/test-database';
import { runMap } from './map';

const ROOT = join(__dirname, '..');
const PROFILE = 'test/fixtures/mapping/corpus-normalise.profile.json';

async function run(argv: string[], env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  const status = await runMap(argv, {
    out: (text) => (out += text),
    err: (text) => (err += text),
    env,
    cwd: ROOT,
  });
  return { status, out, err };
}

describe('npm run map', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fhir-trail-map-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('maps files and folders, prints each resource and a summary table, exit 0 when nothing is invalid', async () => {
    const { status, out } = await run([
      '--profile',
      PROFILE,
      '--diff',
      'test/fixtures/synthea/covid19-batch',
      'test/fixtures/r4-examples/Observation-example.json',
    ]);
    expect(status).toBe(0);
    expect(out).toMatch(/^profile corpus-normalise version 1, 4 file\(s\)/);
    // The body-weight example is rewritten to 3141-9; the diff shows it.
    expect(out).toContain('~ Observation.code.coding[0].code: "29463-7" → "3141-9"');
    expect(out).toMatch(/^total\s+(\d+)\s+0\s+0\s+\1$/m);
  });

  it('exits 1 and names the first error when anything is invalid; a file that is not JSON is invalid', async () => {
    const bad = join(dir, 'bad-observation.json');
    await writeFile(bad, JSON.stringify({ resourceType: 'Observation', id: 'x', status: 'final' }));
    const notJson = join(dir, 'truncated.json');
    await writeFile(notJson, '{"resourceType": "Patient", ');
    const { status, out } = await run(['--profile', PROFILE, bad, notJson]);
    expect(status).toBe(1);
    expect(out).toMatch(/^invalid\s+\S*bad-observation\.json\s+Observation\/x\s+\d+ error\(s\): .*code/m);
    expect(out).toMatch(
      /^invalid\s+\S*truncated\.json\s+-\s+1 error\(s\): Not valid JSON: .*line 1, column \d+/m,
    );
    expect(out).toMatch(/^total\s+0\s+0\s+2\s+2$/m);
  });

  it('prints JSON results with --json', async () => {
    const { status, out } = await run([
      '--profile',
      PROFILE,
      '--json',
      'test/fixtures/r4-examples/Patient-example.json',
    ]);
    expect(status).toBe(0);
    const parsed = JSON.parse(out) as {
      summary: { transformed: number };
      files: { results: { output: { meta: { source: string } } }[] }[];
    };
    expect(parsed.summary.transformed).toBe(1);
    expect(parsed.files[0].results[0].output.meta.source).toBe('urn:fhir-trail:source:dry-run');
  });

  it('answers 2 for usage errors, a bad profile or a missing input, and prints --help', async () => {
    expect((await run(['test/fixtures/r4-examples'])).status).toBe(2);
    expect((await run(['--profile', PROFILE])).status).toBe(2);
    expect((await run(['--profile', PROFILE, '--frobnicate', 'x'])).status).toBe(2);
    expect((await run(['--profile', PROFILE, 'no/such/folder'])).err).toMatch(/no such file or folder/);
    const broken = join(dir, 'broken.profile.json');
    await writeFile(broken, JSON.stringify({ id: 'broken', steps: [{ kind: 'teleport' }] }));
    const refused = await run(['--profile', broken, 'test/fixtures/r4-examples']);
    expect(refused.status).toBe(2);
    expect(refused.err).toMatch(/is not valid:\n {2}- steps\[0\]/);
    const help = await run(['--help']);
    expect(help.status).toBe(0);
    expect(help.out).toContain('--profile FILE|ID[@VERSION]');
  });

  describe('with a profile id from the database', () => {
    let database: TestDatabase;

    beforeAll(async () => {
      database = await createTestDatabase('map_cli');
      const store = await Store.open({
        databaseUrl: database.url,
        masterKey: Buffer.from(DEV_MASTER_KEY_HEX, 'hex'),
        migrate: true,
        max: 1,
      });
      const document = JSON.parse(readFileSync(join(ROOT, PROFILE), 'utf8')) as Record<string, unknown>;
      await store.mappingProfiles.createVersion('corpus-normalise', document, {
        origin: 'admin-api',
        activate: true,
      });
      await store.mappingProfiles.createVersion(
        'corpus-normalise',
        { ...document, steps: [] },
        { origin: 'admin-api' },
      );
      await store.close();
    });

    afterAll(async () => {
      await database.drop();
    });

    it('uses the active version, or the one after @', async () => {
      const env = { DATABASE_URL: database.url };
      const active = await run(
        ['--profile', 'corpus-normalise', 'test/fixtures/r4-examples/Patient-example.json'],
        env,
      );
      expect(active.status).toBe(0);
      expect(active.out).toMatch(/^profile corpus-normalise version 1,/);
      expect(active.out).toMatch(/^total\s+1\s+0\s+0\s+1$/m);
      // Version 2 has no steps: the example passes through unchanged.
      const second = await run(
        ['--profile', 'corpus-normalise@2', 'test/fixtures/r4-examples/Patient-example.json'],
        env,
      );
      expect(second.out).toMatch(/^total\s+0\s+1\s+0\s+1$/m);
      const unknown = await run(['--profile', 'no-such-profile', 'test/fixtures/r4-examples'], env);
      expect(unknown.status).toBe(2);
      expect(unknown.err).toMatch(/no active version/);
    });
  });
});
