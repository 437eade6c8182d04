import { decide, interpretConsent, type ConsentPolicy, type ConsentRequest } from '@fhir-trail/fhir-mapping';

import { readJsonFixture } from '../../../../test/fixtures/fixture-files';

/**
 * Every official R4 Consent example (test/fixtures/r4-examples/Consent-*.json) is either read into
 * a policy, with the decisions it yields for concrete requests, or refused with the path and reason.
 * The coded elements decide, never the narrative: several examples' narratives ("withhold...")
 * disagree with their codes (policyRule OPTIN), and the tests say so where it matters.
 */

const at = (iso: string): number => Date.parse(iso);

function request(overrides: Partial<ConsentRequest> = {}): ConsentRequest {
  return {
    patient: 'Patient/f001',
    recipientOrg: 'Organization/other-clinic',
    purpose: 'TREAT',
    resourceType: 'Observation',
    securityLabels: [],
    at: at('2015-06-01T00:00:00Z'),
    ...overrides,
  };
}

function policyOf(file: string): ConsentPolicy {
  const result = interpretConsent(readJsonFixture(`r4-examples/${file}`));
  if (!result.ok) throw new Error(`expected ${file} to be interpreted: ${JSON.stringify(result.outcome)}`);
  return result.policy;
}

function refusalOf(file: string): { status: number; issues: Array<{ code: string; expression: string[] }> } {
  const result = interpretConsent(readJsonFixture(`r4-examples/${file}`));
  if (result.ok) throw new Error(`expected ${file} to be refused`);
  return {
    status: result.status,
    issues: result.outcome.issue.map((i) => ({ code: i.code, expression: i.expression ?? [] })),
  };
}

describe('official R4 Consent examples that are interpreted', () => {
  it('consent-example-basic: OPTIN permits any recipient while provision.period holds (end day included)', () => {
    const basic = policyOf('Consent-consent-example-basic.json');
    expect(basic).toMatchObject({
      consentRef: 'Consent/consent-example-basic',
      patient: 'Patient/f001',
      status: 'active',
    });
    expect(decide([basic], request())).toEqual({
      decision: 'permit',
      reason: 'permitted-by-consent',
      consentRef: 'Consent/consent-example-basic',
      rulePath: 'Consent.provision',
    });
    expect(decide([basic], request({ at: at('2016-01-01T23:59:59Z') })).decision).toBe('permit');
    expect(decide([basic], request({ at: at('2016-01-02T00:00:00Z') }))).toEqual({
      decision: 'deny',
      reason: 'no-applicable-consent',
    });
    expect(decide([basic], request({ at: at('1963-12-31T23:59:59Z') })).decision).toBe('deny');
    // Another patient's request is not covered by this patient's consent.
    expect(decide([basic], request({ patient: 'Patient/example' })).reason).toBe('no-applicable-consent');
  });

  it('consent-example-notOrg: the root deny names Organization/f001 as recipient; deny overrides basic', () => {
    const notOrg = policyOf('Consent-consent-example-notOrg.json');
    expect(decide([notOrg], request({ recipientOrg: 'Organization/f001' }))).toEqual({
      decision: 'deny',
      reason: 'denied-by-consent',
      consentRef: 'Consent/consent-example-notOrg',
      rulePath: 'Consent.provision',
    });
    expect(decide([notOrg], request()).reason).toBe('no-applicable-consent');
    const basic = policyOf('Consent-consent-example-basic.json');
    expect(decide([basic, notOrg], request({ recipientOrg: 'Organization/f001' })).consentRef).toBe(
      'Consent/consent-example-notOrg',
    );
    expect(decide([basic, notOrg], request()).decision).toBe('permit');
  });

  it('consent-example-notThem: OPTIN read as a permit for Practitioner/f204 only (the narrative says withhold)', () => {
    const notThem = policyOf('Consent-consent-example-notThem.json');
    const orgDelivery = request({ recipientOrg: 'Organization/f001' });
    expect(decide([notThem], { ...orgDelivery, recipientPractitioner: 'Practitioner/f204' })).toMatchObject({
      decision: 'permit',
      consentRef: 'Consent/consent-example-notThem',
    });
    expect(decide([notThem], { ...orgDelivery, recipientPractitioner: 'Practitioner/other' }).decision).toBe(
      'deny',
    );
    // A delivery to an organisation cannot show that only f204 sees it: a permit never applies in doubt.
    expect(decide([notThem], orgDelivery)).toEqual({ decision: 'deny', reason: 'no-applicable-consent' });
  });

  it('consent-example-notTime: OPTIN read as a permit during January 2015 (provision.period is the rule validity)', () => {
    const notTime = policyOf('Consent-consent-example-notTime.json');
    expect(decide([notTime], request({ at: at('2015-01-15T10:00:00Z') })).decision).toBe('permit');
    expect(decide([notTime], request({ at: at('2015-02-01T12:00:00Z') })).decision).toBe('permit');
    expect(decide([notTime], request({ at: at('2015-02-02T00:00:00Z') })).decision).toBe('deny');
    expect(decide([notTime], request({ at: at('2014-12-31T23:59:59Z') })).decision).toBe('deny');
  });
});

describe('official R4 Consent examples that are refused', () => {
  it.each([
    ['Consent-consent-example-Out.json', ['Consent.provision.actor[0].role']],
    ['Consent-consent-example-notAuthor.json', ['Consent.provision.actor[0].role']],
    [
      'Consent-consent-example-grantor.json',
      ['Consent.provision.actor[0].role', 'Consent.provision.actor[1].reference'],
    ],
    [
      'Consent-consent-example-Emergency.json',
      [
        'Consent.provision.actor[0].role',
        'Consent.provision.provision[0].type',
        'Consent.provision.provision[0].actor[0].role',
      ],
    ],
    ['Consent-consent-example-notThis.json', ['Consent.provision.data']],
    ['Consent-consent-example-smartonfhir.json', ['Consent.provision.provision[0].type']],
    [
      'Consent-consent-example-signature.json',
      [
        'Consent.provision.provision[0].type',
        'Consent.provision.provision[0].code',
        'Consent.provision.provision[0].actor[0].role',
        'Consent.provision.provision[0].class[0]',
      ],
    ],
  ])('%s is refused (422 not-supported) at %j', (file, paths) => {
    const refusal = refusalOf(file);
    expect(refusal.status).toBe(422);
    expect(refusal.issues.every((i) => i.code === 'not-supported')).toBe(true);
    expect(refusal.issues.flatMap((i) => i.expression).sort()).toEqual([...paths].sort());
  });

  it('consent-example-pkb is refused: its eleven nested rules have no type', () => {
    const refusal = refusalOf('Consent-consent-example-pkb.json');
    expect(refusal.status).toBe(422);
    expect(refusal.issues.map((i) => i.expression[0])).toEqual(
      Array.from({ length: 11 }, (_, i) => `Consent.provision.provision[${i}].type`),
    );
  });
});
