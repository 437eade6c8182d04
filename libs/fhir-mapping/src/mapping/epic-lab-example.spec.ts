import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Observation } from '@medplum/fhirtypes';

import {
  compileMappingProfile,
  normaliseResource,
  parseMappingProfile,
  parseResourceJson,
} from '@fhir-trail/fhir-mapping';

/** The README's worked example: examples/mapping/epic-lab-loinc.profile.json on an Epic-style lab Observation. */
const EXAMPLES = join(__dirname, '..', '..', '..', '..', 'examples', 'mapping');

const profile = compileMappingProfile(
  parseMappingProfile(
    JSON.parse(readFileSync(join(EXAMPLES, 'epic-lab-loinc.profile.json'), 'utf8')) as unknown,
  ),
);
const input = parseResourceJson(readFileSync(join(EXAMPLES, 'epic-lab-observation.json')));

describe('worked example: Epic lab Observation -> LOINC with UCUM units', () => {
  const result = normaliseResource(profile, input, { sourceId: 'epic-prod' });
  const output = result.output as Observation;

  it('is valid R4 and says what changed', () => {
    expect(result.outcome.issue).toEqual([]);
    expect(result.valid).toBe(true);
    expect(result.changed).toBe(true);
    expect(result.sourceVersion).toBe('R4');
  });

  it('adds the LOINC coding beside the Epic one', () => {
    expect(output.code.coding).toEqual([
      { system: 'urn:oid:1.2.840.114350.1.13.99999.1.7.2.768282', code: '1554', display: 'GLUCOSE' },
      { system: 'http://loinc.org', code: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma' },
    ]);
    expect(result.changes).toContainEqual({
      op: 'add',
      path: 'Observation.code.coding[1]',
      after: {
        system: 'http://loinc.org',
        code: '2345-7',
        display: 'Glucose [Mass/volume] in Serum or Plasma',
      },
    });
  });

  it('reports glucose in mmol/L with UCUM codes, reference range too', () => {
    expect(output.valueQuantity).toEqual({
      value: 6.99,
      unit: 'mmol/L',
      system: 'http://unitsofmeasure.org',
      code: 'mmol/L',
    });
    expect(output.referenceRange?.[0]).toEqual({
      low: { value: 3.89, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
      high: { value: 5.5, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
      text: '70 - 99 mg/dL',
    });
  });

  it('names the identifier system canonically, trims the padded value, and keeps this source apart', () => {
    expect(output.identifier).toEqual([
      {
        use: 'official',
        type: { text: 'Lab Result ID' },
        system: 'https://bridge.example.org/fhir/sid/epic-lab-result-id',
        value: '9000451',
      },
    ]);
    expect(output.id).toBe('epic-prod-eFAKE.lab-result.glucose01');
    expect(output.subject?.reference).toBe('Patient/epic-prod-eFAKE.patient01');
    expect(output.basedOn?.[0]?.reference).toBe('ServiceRequest/epic-prod-eFAKE.order.glucose01');
  });

  it("drops Epic's extensions and stamps meta", () => {
    expect(output.extension).toBeUndefined();
    expect(output.meta).toEqual({
      lastUpdated: '2024-03-04T15:12:08Z',
      source: 'urn:fhir-trail:source:epic-prod',
      tag: [{ system: 'https://bridge.example.org/fhir/CodeSystem/mapping', code: 'epic-lab-loinc' }],
    });
  });

  it('dead-letters a lab code the map does not know (unmapped: fail), naming the coding', () => {
    const unknown = structuredClone(input) as Observation;
    unknown.code.coding = [{ system: 'urn:oid:1.2.840.114350.1.13.99999.1.7.2.768282', code: '9999' }];
    const failed = normaliseResource(profile, unknown, { sourceId: 'epic-prod' });
    expect(failed.valid).toBe(false);
    expect(failed.outcome.issue).toEqual([
      expect.objectContaining({
        severity: 'error',
        code: 'code-invalid',
        expression: ['Observation.code.coding[0]'],
      }),
    ]);
  });
});
