import type { OperationOutcome } from '@medplum/fhirtypes';
import { LEDGER, type LedgerConnection, STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { FhirDestinationSimulator } from './support/fhir-destination-simulator';
import { eventually, TestStack } from './support/test-apps';

const CONSENT_KEY = 'patient-app-consent-key-0003';
const ADMIN = { authorization: 'Bearer dev-admin-key', 'content-type': 'application/json' };
const CONSENT_HEADERS = {
  authorization: `Bearer ${CONSENT_KEY}`,
  'content-type': 'application/fhir+json',
  'x-fhir-trail-source': 'demo',
};
const ERASED = 'Patient/p-erase-1';
const KEPT = 'Patient/p-erase-2';
const ORG = 'Organization/hospital-e';

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
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] },
    provision: {
      provision: [
        {
          type: 'permit',
          actor: [
            {
              role: {
                coding: [
                  { system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' },
                ],
              },
              reference: { reference: ORG },
            },
          ],
          purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
          class: [{ system: 'http://hl7.org/fhir/resource-types', code: 'Observation' }],
        },
      ],
    },
  };
}

function observation(version: number): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    id: 'obs-erase-1',
    meta: { versionId: String(version) },
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: ERASED },
    valueQuantity: { value: 60 + version, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

/**
 * Erasure reaches consent data: the erased patient's stored consents (resource and policy) are
 * deleted, their registry grants are revoked on chain, nothing about them is shared afterwards, and
 * no new consent can be recorded for them. Another patient's consent stays.
 */
describe('erasure reaches consents and the consent registry', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  const destination = new FhirDestinationSimulator();

  beforeAll(async () => {
    await destination.start();
    stack = await TestStack.create('consent-erasure', { CONSENT_API_KEY: CONSENT_KEY });
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
    const response = await fetch(`${base}/admin/destinations`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({
        id: 'dest-e',
        name: 'dest-e',
        source: 'demo',
        organisation: ORG,
        fhirBaseUrl: destination.baseUrl,
        auth: { kind: 'bearer', token: 'token-for-dest-e-000000' },
        resourceTypes: ['Observation'],
        purpose: 'TREAT',
        retry: { maxAttempts: 2, backoffMs: 100 },
      }),
    });
    expect(response.status).toBe(201);
  });

  afterAll(async () => {
    await stack?.close();
    await destination.stop();
  });

  const putConsent = (id: string, patient: string) =>
    fetch(`${base}/fhir/R4/Consent/${id}`, {
      method: 'PUT',
      headers: CONSENT_HEADERS,
      body: JSON.stringify(consent(id, patient)),
    });

  const pairOf = (patientRef: string) =>
    store.consents.pair({ sourceId: 'demo', patientRef, recipientOrg: ORG });

  const sendVersion = async (version: number) => {
    const response = await fetch(`${base}/hooks/demo`, {
      method: 'POST',
      headers: { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' },
      body: JSON.stringify(observation(version)),
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as OperationOutcome).id!;
  };

  it('deletes the consents, revokes the registry grant on chain, and shares nothing more', async () => {
    expect((await putConsent('erase-consent', ERASED)).status).toBe(200);
    expect((await putConsent('kept-consent', KEPT)).status).toBe(200);
    await eventually(
      async () => {
        const pair = await pairOf(ERASED);
        return pair?.confirmedBlock !== null && pair?.confirmed.active ? pair : undefined;
      },
      15_000,
      'the grant confirmed on chain',
    );
    await sendVersion(1);
    await eventually(
      async () => (await store.sharing.decisionsFor('dest-e')).find((d) => d.decision === 'delivered'),
      20_000,
      'the first version delivered',
    );
    expect(destination.deliveredOf('Observation/obs-erase-1')).toHaveLength(1);
    const auditBefore = (await store.sharing.decisionsFor('dest-e'))[0]?.auditEvent;
    expect(JSON.stringify(auditBefore)).toContain(ERASED);

    const erase = await fetch(`${base}/admin/patients/$erase`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({ source: 'demo', patient: ERASED }),
    });
    expect(erase.status).toBe(200);
    const outcome = (await erase.json()) as OperationOutcome;
    expect(outcome.issue?.[0].details?.text).toContain('1 consent(s) deleted');
    expect(outcome.issue?.[0].details?.text).toContain('1 consent registry grant(s) withdrawn');

    // The disclosure stays logged, but its AuditEvent no longer names the patient or the resource.
    const auditAfter = (await store.sharing.decisionsFor('dest-e'))[0]?.auditEvent;
    expect(auditAfter).toMatchObject({ resourceType: 'AuditEvent' });
    expect(auditAfter?.['entity']).toBeUndefined();
    expect(JSON.stringify(auditAfter)).not.toContain(ERASED);
    expect(JSON.stringify(auditAfter)).not.toContain('obs-erase-1');

    // The consent content and policy are gone; the other patient's stays.
    expect(await store.consents.forPatient('demo', ERASED)).toEqual([]);
    expect(await store.consents.forPatient('demo', KEPT)).toHaveLength(1);
    const read = await fetch(`${base}/fhir/R4/Consent/erase-consent`, { headers: CONSENT_HEADERS });
    expect(read.status).toBe(404);
    const rows = await store.db
      .selectFrom('consents')
      .select('id')
      .where('patient_ref', '=', ERASED)
      .execute();
    expect(rows).toEqual([]);

    // The registry sync revokes the pair on chain; the finalised chain state says so.
    const revoked = await eventually(
      async () => {
        const pair = await pairOf(ERASED);
        return pair && !pair.desired.active && pair.confirmedBlock !== null && !pair.confirmed.active
          ? pair
          : undefined;
      },
      15_000,
      'the grant revoked on chain',
    );
    const registry = stack.bridge!.get<LedgerConnection>(LEDGER).consentRegistry!;
    const onChain = await registry.readGrant(
      `0x${revoked.patientKey.toString('hex')}`,
      `0x${revoked.recipientKey.toString('hex')}`,
    );
    expect(onChain.active).toBe(false);
    expect((await pairOf(KEPT))?.desired.active).toBe(true);

    // A later version about the erased patient is not stored, so never shared.
    const inboxId = await sendVersion(2);
    await eventually(
      async () =>
        (await store.deadLetters.list({ sourceId: 'demo' })).find(
          (d) => d.inboxId === inboxId && d.reasonCode === 'patient-erased',
        ),
      20_000,
      'the later version dead-lettered as about an erased patient',
    );
    expect(destination.deliveredOf('Observation/obs-erase-1')).toHaveLength(1);
    expect(await store.sharing.decisionsFor('dest-e')).toHaveLength(1);

    // No consent can be recorded for the erased patient again.
    const again = await putConsent('erase-consent', ERASED);
    expect(again.status).toBe(422);
    const refusal = (await again.json()) as OperationOutcome;
    expect(refusal.issue?.[0]).toMatchObject({ code: 'business-rule', expression: ['Consent.patient'] });
    expect(await store.consents.forPatient('demo', ERASED)).toEqual([]);
  });
});
