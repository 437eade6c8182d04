import type { Resource } from '@medplum/fhirtypes';
import { identityMapping, mappingProfilePolicy } from './mapping-profile-registry';

describe('identityMapping (sources without a mapping profile)', () => {
  const identity = identityMapping();

  it('stores the resource as sent, under the identity|0 policy', () => {
    const observation = {
      resourceType: 'Observation',
      id: 'hr-1',
      status: 'final',
      code: { text: 'heart rate' },
    } as Resource;
    const mapped = identity.normalise(observation);
    expect(mapped).toMatchObject({ valid: true, output: observation });
    expect(identity.label).toBe('identity|0');
    expect(identity.policy).toBe(mappingProfilePolicy('identity', 0));
    expect(identity.storedId('Observation', 'hr-1')).toBe('hr-1');
  });

  it('checks required bindings, which @medplum/core alone does not', () => {
    const mapped = identity.normalise({
      resourceType: 'Observation',
      id: 'hr-2',
      status: 'not-a-status',
      code: { text: 'heart rate' },
    } as unknown as Resource);
    expect(mapped.valid).toBe(false);
    expect(mapped.outcome.issue).toEqual([
      expect.objectContaining({
        severity: 'error',
        code: 'code-invalid',
        expression: ['Observation.status'],
      }),
    ]);
  });

  it('does not convert versions: a DSTU2-shaped resource is judged as R4', () => {
    // DSTU2 HumanName.family is an array; as R4 that is a type error, not a conversion.
    const mapped = identity.normalise({
      resourceType: 'Patient',
      id: 'p-1',
      name: [{ family: ['Chalmers'], given: ['Peter'] }],
    } as unknown as Resource);
    expect(mapped.valid).toBe(false);
    expect(mapped.outcome.issue).toEqual([
      expect.objectContaining({ severity: 'error', code: 'structure', expression: ['Patient.name.family'] }),
    ]);
  });
});
