import type { OperationOutcome } from '@medplum/fhirtypes';

import {
  compileMappingProfile,
  FhirRequestError,
  MAPPING_STEP_ORDER,
  parseMappingProfile,
  type MappingProfileDocument,
} from '@fhir-trail/fhir-mapping';

function rejection(run: () => unknown): { status: number; outcome: OperationOutcome } {
  try {
    run();
  } catch (error) {
    if (error instanceof FhirRequestError) return { status: error.status, outcome: error.outcome };
    throw error;
  }
  throw new Error('expected a FhirRequestError');
}

function expressions(outcome: OperationOutcome): string[] {
  return outcome.issue.flatMap((issue) => issue.expression ?? []);
}

const FML_OBSERVATION = `map "http://example.org/fml/final" = "final"
uses "http://hl7.org/fhir/StructureDefinition/Observation" as source
uses "http://hl7.org/fhir/StructureDefinition/Observation" as target
group main(source src : Observation, target tgt : Observation) {
  src.status as s -> tgt.status = 'final';
}`;

describe('parseMappingProfile', () => {
  it('accepts a profile using every step kind and returns it as is', () => {
    const json = {
      id: 'epic-main',
      version: 3,
      name: 'Epic main',
      steps: [
        { kind: 'validation', requiredBindings: true, profiles: { Patient: ['http://example.org/p'] } },
        {
          kind: 'metaStamp',
          source: 'urn:x:{sourceId}',
          tags: [{ system: 'urn:t', code: 'a' }],
          profiles: { '*': ['urn:p'] },
        },
        { kind: 'extensionRules', drop: ['http://x/*'], rename: { 'http://a': 'http://b' } },
        {
          kind: 'unitNormalisation',
          convert: [{ code: '2345-7', to: 'mmol/L', molarMass: 180.16 }],
          units: { 'mg%': 'mg/dL' },
        },
        { kind: 'referenceRewrite', prefix: '{sourceId}.', absolute: true, hashLongIds: false },
        {
          kind: 'systemRewrite',
          systems: { 'urn:oid:1.2.*': 'http://x' },
          applyTo: ['coding'],
          trimIdentifierValues: true,
        },
        {
          kind: 'conceptMap',
          url: 'http://hl7.org/fhir/ConceptMap/102',
          elements: ['Specimen.type'],
          reverse: false,
        },
        { kind: 'structureMap', map: FML_OBSERVATION.split('\n'), resourceTypes: ['Observation'] },
      ],
    };
    expect(parseMappingProfile(json)).toBe(json);
  });

  it.each<[string, unknown, string[]]>([
    ['a non-object', 'profile', []],
    ['missing id, version and steps', {}, ['id', 'version', 'steps']],
    ['a bad id and version', { id: 'a b', version: 0, steps: [] }, ['id', 'version']],
    ['an unknown top-level field', { id: 'a', version: 1, steps: [], owner: 'x' }, ['owner']],
    ['an unknown step kind', { id: 'a', version: 1, steps: [{ kind: 'teleport' }] }, ['steps[0].kind']],
    ['a step that is not an object', { id: 'a', version: 1, steps: [7] }, ['steps[0]']],
    [
      'a conceptMap step without elements and with both url and map',
      {
        id: 'a',
        version: 1,
        steps: [{ kind: 'conceptMap', url: 'u', conceptMap: { resourceType: 'ConceptMap' } }],
      },
      ['steps[0].elements', 'steps[0]'],
    ],
    [
      'a bad element path and unmapped mode',
      {
        id: 'a',
        version: 1,
        steps: [{ kind: 'conceptMap', url: 'u', elements: ['code'], unmapped: { mode: 'guess' } }],
      },
      ['steps[0].elements[0]', 'steps[0].unmapped.mode'],
    ],
    [
      'a fixed unmapped handling without a code',
      {
        id: 'a',
        version: 1,
        steps: [
          {
            kind: 'conceptMap',
            url: 'u',
            elements: ['Observation.code'],
            unmapped: { mode: 'fixed', system: 's' },
          },
        ],
      },
      ['steps[0].unmapped.code'],
    ],
    [
      'a unit rule without a target and a negative molar mass',
      {
        id: 'a',
        version: 1,
        steps: [{ kind: 'unitNormalisation', convert: [{ code: 'x', molarMass: -1 }] }],
      },
      ['steps[0].convert[0].to', 'steps[0].convert[0].molarMass'],
    ],
    [
      'a metaStamp tag without a code and a bad profile key',
      {
        id: 'a',
        version: 1,
        steps: [{ kind: 'metaStamp', tags: [{ system: 's' }], profiles: { patient: ['p'] } }],
      },
      ['steps[0].tags[0].code', "steps[0].profiles['patient']"],
    ],
    [
      'a systemRewrite with a bad applyTo and an empty target',
      {
        id: 'a',
        version: 1,
        steps: [{ kind: 'systemRewrite', systems: { a: '' }, applyTo: ['everything'] }],
      },
      ["steps[0].systems['a']", 'steps[0].applyTo[0]'],
    ],
    [
      'a structureMap with an empty map',
      { id: 'a', version: 1, steps: [{ kind: 'structureMap', map: ' ' }] },
      ['steps[0].map'],
    ],
  ])('rejects %s with a 400 naming each bad element', (_label, json, paths) => {
    const { status, outcome } = rejection(() => parseMappingProfile(json));
    expect(status).toBe(400);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue.every((issue) => issue.severity === 'error')).toBe(true);
    expect(expressions(outcome)).toEqual(expect.arrayContaining(paths));
    expect(outcome.issue.length).toBeGreaterThanOrEqual(Math.max(1, paths.length));
  });

  it('documents the stage order', () => {
    expect(MAPPING_STEP_ORDER).toEqual([
      'structureMap',
      'conceptMap',
      'systemRewrite',
      'referenceRewrite',
      'unitNormalisation',
      'extensionRules',
      'metaStamp',
      'validation',
    ]);
  });
});

describe('compileMappingProfile', () => {
  const profile = (steps: unknown[]): MappingProfileDocument =>
    parseMappingProfile({ id: 'p', version: 1, steps });

  it('compiles a profile and keeps the document', () => {
    const doc = profile([{ kind: 'structureMap', map: FML_OBSERVATION }, { kind: 'referenceRewrite' }]);
    expect(compileMappingProfile(doc).document).toBe(doc);
  });

  it.each<[string, unknown[], string, RegExp]>([
    [
      'FML that does not parse',
      [{ kind: 'structureMap', map: 'map "x" = "y" group {' }],
      'steps[0]',
      /structureMap step does not compile/,
    ],
    [
      'a ConceptMap url that is neither in the profile nor shipped',
      [
        { kind: 'referenceRewrite' },
        { kind: 'conceptMap', url: 'http://example.org/nowhere', elements: ['Observation.code'] },
      ],
      'steps[1]',
      /ConceptMap not found/,
    ],
    [
      'FML translating through a ConceptMap that is nowhere',
      [
        {
          kind: 'structureMap',
          map: FML_OBSERVATION.replace("'final'", "translate(s, 'http://example.org/cm/nowhere', 'code')"),
        },
      ],
      'steps[0]',
      /translate\(\) names is neither in the profile nor shipped/,
    ],
    [
      'an other-map that does not resolve',
      [
        {
          kind: 'conceptMap',
          url: 'http://hl7.org/fhir/ConceptMap/102',
          elements: ['Specimen.type'],
          unmapped: { mode: 'other-map', url: 'http://example.org/nowhere' },
        },
      ],
      'steps[0]',
      /other-map/,
    ],
    [
      'a profile canonical that is not loaded or shipped',
      [{ kind: 'validation', profiles: { Patient: ['http://example.org/StructureDefinition/nope'] } }],
      "steps[0].profiles['Patient']",
      /No StructureDefinition/,
    ],
    [
      'a StructureDefinition without a snapshot',
      [
        {
          kind: 'validation',
          structureDefinitions: [{ resourceType: 'StructureDefinition', url: 'http://x/sd', name: 'X' }],
        },
      ],
      'steps[0].structureDefinitions[0]',
      /snapshot/,
    ],
    [
      'a StructureDefinition that would replace a base definition',
      [
        {
          kind: 'validation',
          structureDefinitions: [
            {
              resourceType: 'StructureDefinition',
              url: 'http://hl7.org/fhir/StructureDefinition/Patient',
              name: 'Patient',
              type: 'Patient',
              derivation: 'specialization',
              snapshot: { element: [{ path: 'Patient' }] },
            },
          ],
        },
      ],
      'steps[0].structureDefinitions[0]',
      /Only constraint profiles/,
    ],
  ])('rejects %s with a 400 at the step', (_label, steps, path, text) => {
    const { status, outcome } = rejection(() => compileMappingProfile(profile(steps)));
    expect(status).toBe(400);
    expect(outcome.issue).toHaveLength(1);
    expect(outcome.issue[0]?.expression).toEqual([path]);
    expect(outcome.issue[0]?.details?.text).toMatch(text);
  });
});
