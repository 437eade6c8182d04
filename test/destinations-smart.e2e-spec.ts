import type { OperationOutcome } from '@medplum/fhirtypes';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { FhirDestinationSimulator } from './support/fhir-destination-simulator';
import { generateKeyPair } from './support/fhir-source-simulator';
import { eventually, TestStack } from './support/test-apps';

const CONSENT_KEY = 'patient-app-consent-key-0005';
const ADMIN = { authorization: 'Bearer dev-admin-key', 'content-type': 'application/json' };
const ORG = 'Organization/hospital-smart';
const PROFILE = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab';
const SECOND_TOKEN = 'second-source-token-0000';

/** A consent permitting ORG everything for treatment, for one patient of one source. */
function consent(id: string, patient: string): Record<string, unknown> {
  return {
    resourceType: 'Consent',
    id,
    status: 'active',
    scope: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }],
    },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: patient },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    provision: {
      actor: [
        {
          role: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }],
          },
          reference: { reference: ORG },
        },
      ],
      purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
    },
  };
}

function observation(id: string, patient: string, profile?: string): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    id,
    ...(profile ? { meta: { profile: [profile] } } : {}),
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] },
    subject: { reference: patient },
    valueQuantity: { value: 5.4, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
  };
}

/**
 * Destinations authenticated with SMART Backend Services (client_credentials + private_key_jwt,
 * the fhir-client token provider) instead of a bearer token, and filtered by sources and by
 * profile (meta.profile) besides resource types: checked against a destination simulator with its
 * own token endpoint over real HTTP.
 */
describe('destinations: SMART Backend Services auth, source and profile filters', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  const destination = new FhirDestinationSimulator();
  const keys = generateKeyPair('ES384');

  beforeAll(async () => {
    await destination.start();
    destination.requireSmart('fhir-trail-bridge', keys.publicJwk);
    stack = await TestStack.create('destinations-smart', { CONSENT_API_KEY: CONSENT_KEY });
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
    const second = await fetch(`${base}/admin/sources`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({
        id: 'second',
        name: 'Second EHR',
        organisation: { display: 'Second EHR' },
        senderAuth: { bearer: { token: SECOND_TOKEN } },
        senderProfile: { counter: 'none' },
      }),
    });
    expect(second.status).toBe(201);
  });

  afterAll(async () => {
    await stack?.close();
    await destination.stop();
  });

  const register = (body: Record<string, unknown>) =>
    fetch(`${base}/admin/destinations`, { method: 'POST', headers: ADMIN, body: JSON.stringify(body) });

  const smartDestination = {
    id: 'dest-smart',
    name: 'SMART destination',
    source: 'demo',
    organisation: ORG,
    auth: {
      kind: 'smart-backend',
      clientId: 'fhir-trail-bridge',
      scope: 'system/Observation.cu',
      keyId: keys.kid,
      algorithm: 'ES384',
      privateKey: keys.privateJwk,
    },
    resourceTypes: ['Observation'],
    sources: ['second'],
    profiles: [PROFILE],
    retry: { maxAttempts: 2, backoffMs: 100 },
  };

  const grant = async (source: string, id: string, patient: string) => {
    const response = await fetch(`${base}/fhir/R4/Consent/${id}`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${CONSENT_KEY}`,
        'content-type': 'application/fhir+json',
        'x-fhir-trail-source': source,
      },
      body: JSON.stringify(consent(id, patient)),
    });
    expect(response.status).toBe(200);
    await eventually(
      async () => {
        const pair = await store.consents.pair({ sourceId: source, patientRef: patient, recipientOrg: ORG });
        return pair?.confirmedBlock !== null && pair?.confirmed.active ? pair : undefined;
      },
      15_000,
      `the ${source} grant confirmed`,
    );
  };

  const send = async (source: string, token: string, resource: Record<string, unknown>) => {
    const response = await fetch(`${base}/hooks/${source}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(resource),
    });
    expect(response.status).toBe(200);
  };

  it('refuses an unusable key, an unknown source and a bad profile URL with the path', async () => {
    const badKey = await register({
      ...smartDestination,
      fhirBaseUrl: destination.baseUrl,
      auth: { ...smartDestination.auth, algorithm: 'RS384' },
    });
    expect(badKey.status).toBe(400);
    expect(((await badKey.json()) as OperationOutcome).issue?.[0]?.expression).toEqual(['auth.privateKey']);
    const unknownSource = await register({
      ...smartDestination,
      fhirBaseUrl: destination.baseUrl,
      sources: ['nowhere'],
    });
    expect(unknownSource.status).toBe(400);
    expect(((await unknownSource.json()) as OperationOutcome).issue?.[0]?.expression).toEqual(['sources[0]']);
    const badProfile = await register({
      ...smartDestination,
      fhirBaseUrl: destination.baseUrl,
      profiles: ['not a url'],
    });
    expect(badProfile.status).toBe(400);
    expect(((await badProfile.json()) as OperationOutcome).issue?.[0]?.expression).toEqual(['profiles[0]']);
    expect(await store.sharing.findDestination('dest-smart')).toBeUndefined();
  });

  it('registers a SMART destination without echoing its key', async () => {
    const response = await register({ ...smartDestination, fhirBaseUrl: destination.baseUrl });
    expect(response.status).toBe(201);
    const text = await response.text();
    expect(text).not.toContain(keys.privateJwk.d!);
    expect(JSON.parse(text)).toMatchObject({
      id: 'dest-smart',
      hasBearerToken: false,
      smartBackend: { clientId: 'fhir-trail-bridge', keyId: keys.kid, algorithm: 'ES384' },
      sources: ['second'],
      profiles: [PROFILE],
    });
  });

  it('delivers with a SMART access token: profile-matching versions of both sources, nothing else', async () => {
    await grant('demo', 'smart-consent-1', 'Patient/ps-1');
    await grant('second', 'smart-consent-2', 'Patient/ps-2');

    await send('demo', 'demo-token', observation('obs-no-profile', 'Patient/ps-1'));
    await send(
      'demo',
      'demo-token',
      observation('obs-other-profile', 'Patient/ps-1', 'http://example.org/other'),
    );
    await send('demo', 'demo-token', observation('obs-lab-demo', 'Patient/ps-1', `${PROFILE}|6.1.0`));
    await send('second', SECOND_TOKEN, observation('obs-lab-second', 'Patient/ps-2', PROFILE));

    await eventually(
      async () => {
        const delivered = (await store.sharing.decisionsFor('dest-smart')).filter(
          (d) => d.decision === 'delivered',
        );
        return delivered.length === 2 ? delivered : undefined;
      },
      20_000,
      'both profile-matching versions delivered',
    );
    expect(destination.deliveredOf('Observation/obs-lab-demo')).toHaveLength(1);
    expect(destination.deliveredOf('Observation/obs-lab-second')).toHaveLength(1);
    // The versions without the profile were never wanted: no request, no decision.
    expect(destination.received.map((r) => r.path)).not.toContain('/fhir/Observation/obs-no-profile');
    expect(destination.received.map((r) => r.path)).not.toContain('/fhir/Observation/obs-other-profile');
    expect(await store.sharing.decisionsFor('dest-smart')).toHaveLength(2);

    // One token (discovered endpoint, signed assertion) served both deliveries.
    expect(destination.smart).toMatchObject({ tokenRequests: 1, tokensIssued: 1, refused: [] });
    const authorizations = destination.received.filter((r) => r.status === 200).map((r) => r.authorization);
    expect(new Set(authorizations).size).toBe(1);
    expect(authorizations[0]).toMatch(/^Bearer [A-Za-z0-9_-]{20,}$/);
  });

  it('a refused token is dropped and a fresh one fetched on the retry', async () => {
    destination.revokeTokens();
    await send('demo', 'demo-token', observation('obs-lab-again', 'Patient/ps-1', PROFILE));
    const decision = await eventually(
      async () =>
        (await store.sharing.decisionsFor('dest-smart')).find((d) =>
          JSON.stringify(d.auditEvent).includes('Observation/obs-lab-again/'),
        ),
      20_000,
      'the decision after the token was revoked',
    );
    expect(decision).toMatchObject({ decision: 'delivered', attempts: 2 });
    expect(destination.smart.tokensIssued).toBe(2);
    expect(destination.received.filter((r) => r.status === 401)).toHaveLength(1);
  });
});
