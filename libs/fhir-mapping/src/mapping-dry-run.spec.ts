import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  compileMappingProfile,
  describeChange,
  dryRunMapping,
  FhirRequestError,
  parseMappingProfile,
} from '@fhir-trail/fhir-mapping';
import { readJsonFixture } from '../../../test/fixtures/fixture-files';

const profile = compileMappingProfile(
  parseMappingProfile({
    ...(JSON.parse(
      readFileSync(join(__dirname, '../../../test/fixtures/mapping/corpus-normalise.profile.json'), 'utf8'),
    ) as Record<string, unknown>),
    version: 1,
  }),
);
const empty = compileMappingProfile(parseMappingProfile({ id: 'empty', version: 1, steps: [] }));

describe('dryRunMapping', () => {
  it('maps one resource: output, changes as readable lines, outcome', () => {
    const run = dryRunMapping(profile, readJsonFixture('r4-examples/Observation-example.json'), {
      sourceId: 'ehr',
    });
    expect(run.summary).toEqual({ resources: 1, transformed: 1, unchanged: 0, invalid: 0 });
    const [result] = run.results;
    expect(result).toMatchObject({ location: 'Observation', resourceType: 'Observation', id: 'example' });
    expect(result.diff).toContain('~ Observation.code.coding[0].code: "29463-7" → "3141-9"');
    expect(result.diff).toContainEqual(
      expect.stringMatching(/^\+ Observation.meta: \{"source":"urn:fhir-trail:source:ehr"/),
    );
    expect(result.output?.meta?.source).toBe('urn:fhir-trail:source:ehr');
  });

  it('maps every entry resource of a Bundle, and counts unchanged and invalid ones', () => {
    const run = dryRunMapping(
      empty,
      {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          { resource: readJsonFixture('r4-examples/Patient-example.json') },
          { fullUrl: 'urn:uuid:no-resource' },
          { resource: { resourceType: 'Observation', id: 'bad' } },
        ],
      },
      { sourceId: 'ehr' },
    );
    expect(run.summary).toEqual({ resources: 2, transformed: 0, unchanged: 1, invalid: 1 });
    expect(run.results.map((r) => [r.location, r.status])).toEqual([
      ['Bundle.entry[0].resource', 'unchanged'],
      ['Bundle.entry[2].resource', 'invalid'],
    ]);
    expect(run.results[1].outcome.issue.some((i) => i.severity === 'error')).toBe(true);
  });

  it.each([
    ['a JSON array', []],
    ['an object without resourceType', { id: 'x' }],
    ['a Bundle without entry resources', { resourceType: 'Bundle', type: 'collection', entry: [{}] }],
  ])('refuses %s with a 400 OperationOutcome', (_label, input) => {
    expect(() => dryRunMapping(profile, input, { sourceId: 'ehr' })).toThrow(FhirRequestError);
    try {
      dryRunMapping(profile, input, { sourceId: 'ehr' });
    } catch (error) {
      expect((error as FhirRequestError).status).toBe(400);
    }
  });
});

describe('describeChange', () => {
  it.each([
    [{ op: 'add', path: 'A.b', after: 1 }, '+ A.b: 1'],
    [{ op: 'remove', path: 'A.b', before: { x: 'y' } }, '- A.b: {"x":"y"}'],
    [{ op: 'replace', path: 'A.b', before: 'u', after: 'v' }, '~ A.b: "u" → "v"'],
  ] as const)('writes %j as %s', (change, line) => {
    expect(describeChange(change)).toBe(line);
  });

  it('shortens long values', () => {
    const line = describeChange({ op: 'add', path: 'A.b', after: 'x'.repeat(500) });
    expect(line.length).toBeLessThan(220);
    expect(line.endsWith('...')).toBe(true);
  });
});
