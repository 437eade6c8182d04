import {
  dataClassBitmap,
  interpretConsent,
  purposeBitmap,
  registryScopesOf,
  validateResource,
  loadFhirDefinitions,
} from '@fhir-trail/fhir-mapping';
import { type SignedMessage, signedConsent } from './signed-grant.service';

const KEY = `0x${'ab'.repeat(32)}`;

function grant(overrides: Partial<SignedMessage> = {}): SignedMessage {
  return {
    patientKey: KEY,
    recipientKey: KEY,
    purposes: purposeBitmap(['TREAT', 'HRESCH']),
    dataClasses: dataClassBitmap(['Observation', 'Condition']),
    validFrom: 0n,
    validUntil: 0n,
    nonce: 0n,
    deadline: 0n,
    ...overrides,
  };
}

/**
 * The Consent a signed grant is recorded as must imply exactly the registry scope that was signed,
 * or the registry sync would overwrite the patient's grant with a different one.
 */
describe('signedConsent', () => {
  beforeAll(() => loadFhirDefinitions());

  it.each([
    ['open-ended', 0n, 0n],
    ['bounded on both sides', 1_767_225_600n, 1_798_761_601n],
    ['from a start only', 1_767_225_601n, 0n],
    ['until an end only', 0n, 1_798_761_599n],
  ])('round-trips the signed scope exactly (%s)', (_case, validFrom, validUntil) => {
    const signed = grant({ validFrom, validUntil });
    const resource = signedConsent('eip712-x', 'Patient/p-1', 'Organization/org-1', signed);
    const validation = validateResource(resource);
    expect(validation.valid ? [] : validation.outcome.issue).toEqual([]);
    const interpreted = interpretConsent(resource);
    if (!interpreted.ok) throw new Error(JSON.stringify(interpreted.outcome));
    expect(interpreted.policy.status).toBe('active');
    expect(registryScopesOf([interpreted.policy])).toEqual([
      {
        recipientOrg: 'Organization/org-1',
        purposes: signed.purposes,
        dataClasses: signed.dataClasses,
        validFrom: Number(validFrom),
        validUntil: Number(validUntil),
      },
    ]);
  });

  it('a revocation is the same Consent, inactive: it implies no registry grant', () => {
    const resource = signedConsent('eip712-x', 'Patient/p-1', 'Organization/org-1', undefined);
    const interpreted = interpretConsent(resource);
    if (!interpreted.ok) throw new Error(JSON.stringify(interpreted.outcome));
    expect(interpreted.policy.status).toBe('inactive');
    expect(registryScopesOf([interpreted.policy])).toEqual([]);
  });
});
