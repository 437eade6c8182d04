import {
  dataClassBitmap,
  dateTimeBounds,
  decide,
  interpretConsent,
  purposeBitmap,
  PURPOSES_OF_USE,
  R4_RESOURCE_TYPES,
  registryScopeAllows,
  registryScopesOf,
  type ConsentPolicy,
  type ConsentRequest,
} from '@fhir-trail/fhir-mapping';

const SCOPE = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }],
};
const OPTOUT = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] };
const PRCP = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }],
};
const purpose = (code: string) => ({ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code });
const recipient = (reference: string) => ({ role: PRCP, reference: { reference } });
const resourceClass = (code: string) => ({ system: 'http://hl7.org/fhir/resource-types', code });
const PSY = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' };

/** A patient app's typical consent: deny by default, permit hospital A for treatment of some types, except psychiatry. */
function grantToA(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'Consent',
    id: 'grant-a',
    status: 'active',
    scope: SCOPE,
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: 'Patient/p1', display: 'not read' },
    policyRule: OPTOUT,
    provision: {
      provision: [
        {
          type: 'permit',
          actor: [recipient('Organization/hospital-a')],
          purpose: [purpose('TREAT')],
          class: [resourceClass('Observation'), resourceClass('Condition')],
          period: { start: '2026-01-01', end: '2026-12-31' },
          provision: [{ type: 'deny', securityLabel: [PSY] }],
        },
      ],
    },
    ...overrides,
  };
}

function policy(resource: unknown): ConsentPolicy {
  const result = interpretConsent(resource);
  if (!result.ok) throw new Error(JSON.stringify(result.outcome));
  return result.policy;
}

const base: ConsentRequest = {
  patient: 'Patient/p1',
  recipientOrg: 'Organization/hospital-a',
  purpose: 'TREAT',
  resourceType: 'Observation',
  securityLabels: [],
  at: Date.parse('2026-06-01T00:00:00Z'),
};

describe('interpretConsent + decide on a constructed consent', () => {
  const grant = policy(grantToA());

  it('reads the rule tree: OPTOUT base, a permit exception, a deny exception inside it', () => {
    expect(grant.rule).toMatchObject({
      effect: 'deny',
      path: 'Consent.provision',
      exceptions: [
        {
          effect: 'permit',
          path: 'Consent.provision.provision[0]',
          actors: [{ kind: 'organisation', reference: 'Organization/hospital-a' }],
          purposes: ['TREAT'],
          resourceTypes: ['Observation', 'Condition'],
          validFrom: Date.parse('2026-01-01T00:00:00Z'),
          validUntil: Date.parse('2027-01-01T00:00:00Z'),
          exceptions: [{ effect: 'deny', securityLabels: [`${PSY.system}|${PSY.code}`] }],
        },
      ],
    });
    expect(JSON.stringify(grant)).not.toContain('not read');
  });

  it.each<[string, Partial<ConsentRequest>, string, string | undefined]>([
    ['the named recipient, purpose and type', {}, 'permit', 'Consent.provision.provision[0]'],
    [
      'emergency treatment (a specialisation of TREAT)',
      { purpose: 'ETREAT' },
      'permit',
      'Consent.provision.provision[0]',
    ],
    ['another organisation', { recipientOrg: 'Organization/hospital-b' }, 'deny', 'Consent.provision'],
    ['research', { purpose: 'HRESCH' }, 'deny', 'Consent.provision'],
    ['a type not granted', { resourceType: 'MedicationRequest' }, 'deny', 'Consent.provision'],
    [
      'a psychiatry-labelled record',
      { securityLabels: [`${PSY.system}|${PSY.code}`] },
      'deny',
      'Consent.provision.provision[0].provision[0]',
    ],
    ['after the period', { at: Date.parse('2027-01-01T00:00:00Z') }, 'deny', 'Consent.provision'],
    ['another patient', { patient: 'Patient/p2' }, 'deny', undefined],
  ])('%s -> %s', (_label, change, decision, rulePath) => {
    const result = decide([grant], { ...base, ...change });
    expect(result.decision).toBe(decision);
    expect(result.rulePath).toBe(rulePath);
  });

  it('only active consents count', () => {
    for (const status of ['inactive', 'rejected', 'entered-in-error', 'draft', 'proposed']) {
      const p = policy(grantToA({ status }));
      expect(p.status).toBe(status);
      expect(decide([p], base)).toEqual({ decision: 'deny', reason: 'no-applicable-consent' });
    }
  });

  it('a deny naming a practitioner applies to an organisation delivery that cannot rule them out', () => {
    const denyNurse = policy({
      resourceType: 'Consent',
      id: 'deny-nurse',
      status: 'active',
      scope: SCOPE,
      patient: { reference: 'Patient/p1' },
      provision: { type: 'deny', actor: [recipient('Practitioner/nurse')] },
    });
    expect(decide([grant, denyNurse], base)).toMatchObject({
      decision: 'deny',
      consentRef: 'Consent/deny-nurse',
    });
    expect(
      decide([grant, denyNurse], { ...base, recipientPractitioner: 'Practitioner/doctor' }),
    ).toMatchObject({
      decision: 'permit',
      consentRef: 'Consent/grant-a',
    });
  });

  it('an action list without access or disclose never concerns sharing', () => {
    const collectOnly = policy({
      resourceType: 'Consent',
      id: 'collect',
      status: 'active',
      scope: SCOPE,
      patient: { reference: 'Patient/p1' },
      provision: {
        type: 'permit',
        action: [
          { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentaction', code: 'collect' }] },
        ],
      },
    });
    expect(decide([collectOnly], base).reason).toBe('no-applicable-consent');
  });

  it('maps the scope to registry bitmaps', () => {
    expect(purposeBitmap(['TREAT', 'HRESCH'])).toBe(0b101n);
    const bits = dataClassBitmap(['Observation', 'Condition']);
    expect(bits).toBe(
      (1n << BigInt(R4_RESOURCE_TYPES.indexOf('Observation'))) |
        (1n << BigInt(R4_RESOURCE_TYPES.indexOf('Condition'))),
    );
    expect(() => dataClassBitmap(['NotAType'])).toThrow(RangeError);
  });
});

describe('interpretConsent refusals carry the FHIRPath of the element', () => {
  it.each<[string, Record<string, unknown>, number, string, string]>([
    ['not a Consent', { resourceType: 'Patient' }, 400, 'structure', 'Consent'],
    ['no status', { status: undefined }, 400, 'required', 'Consent.status'],
    ['unknown status', { status: 'revoked' }, 400, 'value', 'Consent.status'],
    [
      'research scope',
      { scope: { coding: [{ system: SCOPE.coding[0].system, code: 'research' }] } },
      422,
      'not-supported',
      'Consent.scope',
    ],
    ['a contained patient', { patient: { reference: '#p' } }, 400, 'required', 'Consent.patient'],
    ['no base and no root type', { policyRule: undefined }, 422, 'not-supported', 'Consent.provision.type'],
    ['an unknown element', { colour: 'blue' }, 400, 'invalid', 'Consent.colour'],
    [
      'implicitRules',
      { implicitRules: 'http://example.org/rules' },
      422,
      'not-supported',
      'Consent.implicitRules',
    ],
  ])('%s', (_label, change, status, code, expression) => {
    const resource = Object.fromEntries(Object.entries(grantToA(change)).filter(([, v]) => v !== undefined));
    const result = interpretConsent(change['resourceType'] === 'Patient' ? change : resource);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.status).toBe(status);
    expect(result.outcome.issue).toContainEqual(expect.objectContaining({ code, expression: [expression] }));
  });

  it('refuses a bad period, purpose, class and actor inside a nested rule', () => {
    const result = interpretConsent(
      grantToA({
        provision: {
          provision: [
            {
              type: 'permit',
              actor: [{ role: PRCP, reference: { reference: 'Group/g1' } }],
              purpose: [purpose('SECRET')],
              class: [resourceClass('NotAType')],
              period: { start: '2026-02-30' },
            },
          ],
        },
      }),
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.status).toBe(400);
    expect(result.outcome.issue.map((i) => i.expression?.[0]).sort()).toEqual(
      [
        'Consent.provision.provision[0].actor[0].reference',
        'Consent.provision.provision[0].class[0].code',
        'Consent.provision.provision[0].period.start',
        'Consent.provision.provision[0].purpose[0]',
      ].sort(),
    );
    expect(JSON.stringify(result.outcome)).not.toContain('g1');
  });

  it('uses the caller reference when the resource has no id', () => {
    const noId = Object.fromEntries(Object.entries(grantToA()).filter(([k]) => k !== 'id'));
    expect(interpretConsent(noId).ok).toBe(false);
    const result = interpretConsent(noId, { consentRef: 'Consent/assigned' });
    expect(result.ok && result.policy.consentRef).toBe('Consent/assigned');
  });
});

describe('dateTimeBounds', () => {
  it.each([
    ['2016', '2016-01-01T00:00:00.000Z', '2017-01-01T00:00:00.000Z'],
    ['2016-02', '2016-02-01T00:00:00.000Z', '2016-03-01T00:00:00.000Z'],
    ['2016-02-29', '2016-02-29T00:00:00.000Z', '2016-03-01T00:00:00.000Z'],
    ['2016-06-23T17:02:33+10:00', '2016-06-23T07:02:33.000Z', '2016-06-23T07:02:34.000Z'],
    ['2016-06-23T17:02:33.5Z', '2016-06-23T17:02:33.500Z', '2016-06-23T17:02:33.501Z'],
  ])('%s covers [%s, %s)', (value, from, until) => {
    const b = dateTimeBounds(value);
    expect(b && new Date(b.from).toISOString()).toBe(from);
    expect(b && new Date(b.until).toISOString()).toBe(until);
  });

  it.each(['2015-02-29', '2016-13', '2016-01-01T10:00Z', '2016-01-01T10:00:00', 'yesterday', 20160101])(
    'refuses %j',
    (value) => {
      expect(dateTimeBounds(value)).toBeUndefined();
    },
  );
});

describe('registryScopesOf', () => {
  it('mirrors each named recipient organisation of an active permit, clipped to its enclosing periods', () => {
    const grant = policy(grantToA());
    const deny = policy({
      resourceType: 'Consent',
      id: 'deny-b',
      status: 'active',
      scope: SCOPE,
      patient: { reference: 'Patient/p1' },
      provision: { type: 'deny', actor: [recipient('Organization/hospital-b')] },
    });
    const scopes = registryScopesOf([grant, deny, policy(grantToA({ id: 'old', status: 'inactive' }))]);
    expect(scopes).toEqual([
      {
        recipientOrg: 'Organization/hospital-a',
        purposes: purposeBitmap(['TREAT']),
        dataClasses: dataClassBitmap(['Observation', 'Condition']),
        validFrom: Date.parse('2026-01-01T00:00:00Z') / 1000,
        validUntil: Date.parse('2027-01-01T00:00:00Z') / 1000,
      },
    ]);
    const [a] = scopes;
    const june = Date.parse('2026-06-01T00:00:00Z') / 1000;
    const obs = R4_RESOURCE_TYPES.indexOf('Observation');
    expect(registryScopeAllows(a, PURPOSES_OF_USE.indexOf('TREAT'), obs, june)).toBe(true);
    expect(registryScopeAllows(a, PURPOSES_OF_USE.indexOf('HRESCH'), obs, june)).toBe(false);
    expect(registryScopeAllows(a, 0, R4_RESOURCE_TYPES.indexOf('Patient'), june)).toBe(false);
    expect(registryScopeAllows(a, 0, obs, Date.parse('2027-01-01T00:00:00Z') / 1000)).toBe(false);
  });

  it('an unbounded permit without purposes or classes mirrors all bits, open-ended', () => {
    const open = policy({
      resourceType: 'Consent',
      id: 'open',
      status: 'active',
      scope: SCOPE,
      patient: { reference: 'Patient/p1' },
      provision: { type: 'permit', actor: [recipient('Organization/x'), recipient('Practitioner/y')] },
    });
    expect(registryScopesOf([open])).toEqual([
      {
        recipientOrg: 'Organization/x',
        purposes: purposeBitmap(PURPOSES_OF_USE),
        dataClasses: dataClassBitmap(R4_RESOURCE_TYPES),
        validFrom: 0,
        validUntil: 0,
      },
    ]);
  });
});
