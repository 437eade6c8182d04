import type { OperationOutcome } from '@medplum/fhirtypes';

import { loadFhirDefinitions, validateResource } from '@fhir-trail/fhir-mapping';

import { listJsonFixtures, readJsonFixture } from '../../../test/fixtures/fixture-files';
import { withValue, without } from '../../../test/fixtures/json-edit';

function outcomeOf(resource: unknown): OperationOutcome {
  const result = validateResource(resource);
  if (result.valid) throw new Error('expected an invalid outcome');
  return result.outcome;
}

function errorExpressions(outcome: OperationOutcome): string[] {
  return outcome.issue
    .filter((issue) => issue.severity === 'error' || issue.severity === 'fatal')
    .flatMap((issue) => issue.expression ?? []);
}

beforeAll(() => {
  loadFhirDefinitions();
});

describe('loadFhirDefinitions', () => {
  it('indexes the definitions once per process and reports how long that took', () => {
    const again = loadFhirDefinitions();
    expect(again.loadedNow).toBe(false);
    expect(again.durationMs).toBeGreaterThan(0);
    expect(loadFhirDefinitions()).toEqual(again);
  });
});

/** Published R4 examples that are not valid themselves, with the element at fault. */
const INVALID_EXAMPLES: Readonly<Record<string, string>> = {
  // Its attachment's data is not base64 (the published example's own defect; the Java validator agrees).
  'r4-examples/DiagnosticReport-gingival-mass.json': 'DiagnosticReport.presentedForm[0].data',
};

describe('validateResource: valid R4 examples', () => {
  it.each(listJsonFixtures('r4-examples').filter((file) => !(file in INVALID_EXAMPLES)))(
    '%s is valid',
    (file) => {
      const result = validateResource(readJsonFixture(file));
      expect(result).toEqual({ valid: true, warnings: expect.any(Array) as unknown });
    },
  );

  it.each(Object.entries(INVALID_EXAMPLES))('%s is flagged at %s', (file, expression) => {
    const result = validateResource(readJsonFixture(file));
    expect(result.valid).toBe(false);
    expect(result.valid ? [] : result.outcome.issue?.flatMap((issue) => issue.expression ?? [])).toContain(
      expression,
    );
  });

  it('accepts Patient-example with no warnings', () => {
    expect(validateResource(readJsonFixture('r4-examples/Patient-example.json'))).toEqual({
      valid: true,
      warnings: [],
    });
  });

  it('accepts the resources inside notification fixtures', () => {
    const bundle = readJsonFixture(
      'subscriptions/r4-backport__event-notification__full-resource__inferno.json',
    );
    expect(validateResource(bundle).valid).toBe(true);
  });
});

describe('validateResource: invalid resources', () => {
  const patient = readJsonFixture('r4-examples/Patient-example.json');
  const observation = readJsonFixture('r4-examples/Observation-example.json');

  it.each<[string, unknown, string]>([
    ['an Observation missing code', without(observation, ['code']), 'Observation.code'],
    ['an unknown property', withValue(patient, ['favouriteColour'], 'blue'), 'Patient.favouriteColour'],
    ['a bad date', withValue(patient, ['birthDate'], '1974-13-45'), 'Patient.birthDate'],
    ['a date with the wrong format', withValue(patient, ['birthDate'], '25/12/1974'), 'Patient.birthDate'],
    ['a string where an array belongs', withValue(patient, ['name'], 'Peter'), 'Patient.name'],
    ['a wrong JSON type', withValue(patient, ['active'], 'yes'), 'Patient.active'],
    ['an empty array', withValue(patient, ['telecom'], []), 'Patient.telecom'],
    ['an id with invalid characters', withValue(patient, ['id'], 'bad id_1'), 'Patient.id'],
    [
      'a contained resource with a bad id',
      withValue(observation, ['contained'], [{ resourceType: 'Patient', id: 'a_b' }]),
      'Observation.contained[0].id',
    ],
  ])('rejects %s, naming the element', (_label, resource, expression) => {
    const outcome = outcomeOf(resource);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(errorExpressions(outcome)).toContain(expression);
  });

  it('does not echo the offending value in issue texts', () => {
    const outcome = outcomeOf(
      withValue(withValue(patient, ['birthDate'], 'Chalmers-1974'), ['id'], 'Chalmers_1'),
    );
    expect(JSON.stringify(outcome)).not.toContain('Chalmers');
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'Patient'],
    ['an array', [readJsonFixture('r4-examples/Patient-example.json')]],
  ])('reports %s as an invalid structure', (_label, value) => {
    const outcome = outcomeOf(value);
    expect(outcome.issue).toEqual([
      { severity: 'error', code: 'structure', details: { text: 'A resource must be a JSON object' } },
    ]);
  });

  it('reports a missing resourceType clearly', () => {
    expect(outcomeOf(without(patient, ['resourceType'])).issue).toEqual([
      {
        severity: 'error',
        code: 'structure',
        details: { text: 'The resource has no resourceType' },
        expression: ['resourceType'],
      },
    ]);
  });

  it('reports an unknown resourceType', () => {
    expect(outcomeOf({ resourceType: 'Patient2' }).issue[0]?.code).toBe('structure');
  });
});

/**
 * Cases from the HL7 validator's shared test suite (FHIR/fhir-test-cases). The verdict (valid or
 * not) must agree with the Java reference validator's expected outcome; the expression is ours,
 * which names the element itself where Java sometimes names its parent (`Observation` for a
 * missing `Observation.code`). Java's terminology findings (synthea's status code) are out of scope.
 */
describe('validateResource: agreement with the reference validator (fhir-test-cases)', () => {
  it.each<[string, string, string | undefined]>([
    ['Observation-ex-pain.json', 'R4.Observation-ex-pain.json-base.json', 'Observation.code'],
    ['patient-id-bad-1.json', 'R4.patient-id-bad-1-R4-base.json', 'Patient.id'],
    ['patient-id-bad-2.json', 'R4.patient-id-bad-2-R4-base.json', 'Patient.id'],
    ['patient-id-bad-3.json', 'R4.patient-id-bad-3-R4-base.json', 'Patient.id'],
    ['resource-invalid-id-0.json', 'R4.resource-invalid-id-0-base.json', undefined],
    ['resource-invalid-id-1.json', 'R4.resource-invalid-id-1-base.json', 'Location.id'],
    ['resource-invalid-id-2.json', 'R4.resource-invalid-id-2-base.json', 'Location.id'],
    ['resource-invalid-id-3.json', 'R4.resource-invalid-id-3-base.json', 'Location.contained[0].id'],
    ['empty-array.json', 'R4.empty-array-base.json', 'DocumentReference.category[0].coding'],
    ['synthea.json', 'R4.synthea-base.json', 'Encounter.reasonCode'],
    ['json-comments.json', 'R4.comments-4-base.json', 'Patient.fhir_comments'],
  ])('%s', (input, expectedOutcome, expression) => {
    const java = readJsonFixture(`invalid/expected-outcomes/${expectedOutcome}`) as Partial<OperationOutcome>;
    const javaFindsErrors = (java.issue ?? []).some(
      (issue) => issue.severity === 'error' || issue.severity === 'fatal',
    );
    const result = validateResource(readJsonFixture(`invalid/${input}`));
    expect(!result.valid).toBe(javaFindsErrors);
    if (result.valid) return;
    expect(errorExpressions(result.outcome)).toContain(expression);
  });
});
