import {
  buildProvenance,
  loadFhirDefinitions,
  validateResource,
  type ProvenanceInput,
} from '@fhir-trail/fhir-mapping';

import { readJsonFixture } from '../../../test/fixtures/fixture-files';

const INPUT: ProvenanceInput = {
  id: 'prov-1',
  recorded: '2026-11-25T10:15:30.123Z',
  target: { resourceType: 'Patient', id: 'example', versionId: '3' },
  activity: 'update',
  sourceOrganisation: {
    reference: 'Organization/source-ehr',
    identifier: { system: 'urn:ietf:rfc:3986', value: 'https://ehr.example/fhir' },
    display: 'Example EHR',
  },
  sourceEntity: 'https://ehr.example/fhir/Patient/example/_history/3',
  bridge: {
    identifier: { system: 'https://fhir-trail.example/bridge', value: 'bridge-eu-1' },
    display: 'FHIR Trail bridge',
  },
};

beforeAll(() => {
  loadFhirDefinitions();
});

describe('buildProvenance', () => {
  it('builds the R4 Provenance for one normalised version', () => {
    expect(buildProvenance(INPUT)).toEqual({
      resourceType: 'Provenance',
      id: 'prov-1',
      target: [{ reference: 'Patient/example/_history/3' }],
      recorded: '2026-11-25T10:15:30.123Z',
      activity: {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation',
            code: 'UPDATE',
            display: 'revise',
          },
        ],
      },
      agent: [
        {
          type: {
            coding: [
              {
                system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type',
                code: 'custodian',
                display: 'Custodian',
              },
            ],
          },
          who: {
            type: 'Organization',
            reference: 'Organization/source-ehr',
            identifier: { system: 'urn:ietf:rfc:3986', value: 'https://ehr.example/fhir' },
            display: 'Example EHR',
          },
        },
        {
          type: {
            coding: [
              {
                system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type',
                code: 'assembler',
                display: 'Assembler',
              },
            ],
          },
          who: {
            type: 'Device',
            identifier: { system: 'https://fhir-trail.example/bridge', value: 'bridge-eu-1' },
            display: 'FHIR Trail bridge',
          },
        },
      ],
      entity: [
        { role: 'source', what: { reference: 'https://ehr.example/fhir/Patient/example/_history/3' } },
      ],
    });
  });

  it('names the mapping profile version in policy, and has no policy without one', () => {
    expect(
      buildProvenance({ ...INPUT, policy: ['urn:fhir-trail:mapping-profile:epic-lab|3'] }).policy,
    ).toEqual(['urn:fhir-trail:mapping-profile:epic-lab|3']);
    expect(buildProvenance({ ...INPUT, policy: [] })).not.toHaveProperty('policy');
  });

  it.each<[ProvenanceInput['activity'], string, string]>([
    ['create', 'CREATE', 'create'],
    ['update', 'UPDATE', 'revise'],
    ['delete', 'DELETE', 'delete'],
  ])('codes activity %s as v3-DataOperation %s', (activity, code, display) => {
    expect(buildProvenance({ ...INPUT, activity }).activity?.coding).toEqual([
      { system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code, display },
    ]);
  });

  it.each<[string, ProvenanceInput]>([
    ['with every field', INPUT],
    ['for a create', { ...INPUT, activity: 'create' }],
    ['for a delete', { ...INPUT, activity: 'delete' }],
    ['with an identifier-only source', { ...INPUT, sourceOrganisation: { identifier: { value: 'ehr-1' } } }],
    ['with a display-only source', { ...INPUT, sourceOrganisation: { display: 'Example EHR' } }],
    [
      'with a Bundle fullUrl as the source entity',
      { ...INPUT, sourceEntity: 'urn:uuid:9e41ff6d-5be6-4e6a-8b85-abd4e7f58400' },
    ],
    [
      'with a logical source entity (source without a known FHIR base)',
      {
        ...INPUT,
        sourceEntity: {
          type: 'Patient',
          identifier: { system: 'urn:fhir-trail:source:demo', value: 'Patient/1' },
        },
      },
    ],
    ['with a Date and a zone offset', { ...INPUT, recorded: new Date('2026-11-25T10:15:30Z') }],
    ['with an offset instant', { ...INPUT, recorded: '2026-11-25T11:15:30+01:00' }],
    ['naming its mapping profile', { ...INPUT, policy: ['urn:fhir-trail:mapping-profile:epic-lab|3'] }],
  ])('passes validateResource %s', (_label, input) => {
    expect(validateResource(buildProvenance(input))).toEqual({ valid: true, warnings: [] });
  });

  it('targets the version of a notified resource (athenahealth AuditEvent entry)', () => {
    const bundle = readJsonFixture('subscriptions/athenahealth/send-patient-notification.json') as {
      entry: {
        fullUrl: string;
        resource: { resourceType: string; id: string; meta: { versionId: string } };
      }[];
    };
    const entry = bundle.entry[1];
    const provenance = buildProvenance({
      ...INPUT,
      target: {
        resourceType: entry.resource.resourceType,
        id: entry.resource.id,
        versionId: entry.resource.meta.versionId,
      },
      activity: 'create',
      sourceEntity: entry.fullUrl,
    });
    expect(provenance.target).toEqual([
      { reference: 'AuditEvent/ead73c9e-ab6e-4db5-9b73-1f73cb243682/_history/0' },
    ]);
    expect(validateResource(provenance).valid).toBe(true);
  });

  it.each<[string, ProvenanceInput, string]>([
    ['a bad Provenance id', { ...INPUT, id: 'prov 1' }, 'id'],
    [
      'a bad target type',
      { ...INPUT, target: { ...INPUT.target, resourceType: 'patient' } },
      'target.resourceType',
    ],
    ['a bad target id', { ...INPUT, target: { ...INPUT.target, id: 'Chalmers_1' } }, 'target.id'],
    ['a bad versionId', { ...INPUT, target: { ...INPUT.target, versionId: '' } }, 'target.versionId'],
    ['a recorded without zone', { ...INPUT, recorded: '2026-11-25T10:15:30' }, 'recorded'],
    ['a recorded without seconds', { ...INPUT, recorded: '2026-11-25T10:15Z' }, 'recorded'],
    ['an invalid Date', { ...INPUT, recorded: new Date('nope') }, 'recorded'],
    ['an empty source organisation', { ...INPUT, sourceOrganisation: {} }, 'sourceOrganisation'],
    ['an empty source entity', { ...INPUT, sourceEntity: '' }, 'sourceEntity'],
    [
      'a source entity with neither reference nor identifier',
      { ...INPUT, sourceEntity: { type: 'Patient' } },
      'sourceEntity',
    ],
  ])('rejects %s, naming the field but not the value', (_label, input, field) => {
    expect(() => buildProvenance(input)).toThrow(TypeError);
    expect(() => buildProvenance(input)).toThrow(field);
    expect(() => buildProvenance(input)).not.toThrow('Chalmers');
  });
});
