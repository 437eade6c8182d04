import type { OperationOutcome } from '@medplum/fhirtypes';
import { type TypedDataField, Wallet } from 'ethers';
import { dataClassIndex, purposeIndex } from '@fhir-trail/fhir-mapping';
import { parseLedgerEventRecord } from '@fhir-trail/ledger';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { FhirDestinationSimulator } from './support/fhir-destination-simulator';
import { eventually, TestStack } from './support/test-apps';

const CONSENT_KEY = 'patient-app-consent-key-0004';
const ADMIN = { authorization: 'Bearer dev-admin-key', 'content-type': 'application/json' };
const APP = {
  authorization: `Bearer ${CONSENT_KEY}`,
  'content-type': 'application/json',
  'x-fhir-trail-source': 'demo',
};
const PATIENT = 'Patient/p-signed-1';
const ORG = 'Organization/hospital-s';

interface SigningData {
  readonly domain: { name: string; version: string; chainId: string; verifyingContract: string };
  readonly types: { ConsentGrant: TypedDataField[]; ConsentRevoke: TypedDataField[] };
  readonly patientKey: string;
  readonly recipientKey: string;
  readonly nonce: string;
  readonly purposeBits: string[];
  readonly dataClassBits: string[];
}

/**
 * A patient app's EIP-712 grant through the bridge, on the embedded chain: the bridge checks the
 * signature, deadline and nonce before relaying, relays with the registrar key, waits for finality,
 * records the grant as a Consent with a consent ledger leaf and mirrors the pair; deliveries to that
 * recipient are then allowed, and a signed revocation stops them.
 */
describe('EIP-712 signed grants relayed by the bridge', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  const destination = new FhirDestinationSimulator();
  const patient = new Wallet(Wallet.createRandom().privateKey);
  const stranger = new Wallet(Wallet.createRandom().privateKey);
  let signing: SigningData;

  beforeAll(async () => {
    await destination.start();
    stack = await TestStack.create('signed-grant', { CONSENT_API_KEY: CONSENT_KEY });
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
    const response = await fetch(`${base}/admin/destinations`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({
        id: 'dest-s',
        name: 'dest-s',
        source: 'demo',
        organisation: ORG,
        fhirBaseUrl: destination.baseUrl,
        auth: { kind: 'bearer', token: 'token-for-dest-s-000000' },
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

  const signingData = async (): Promise<SigningData> => {
    const response = await fetch(
      `${base}/fhir/R4/Consent/$signed-grant?patient=${PATIENT}&recipient=${ORG}`,
      { headers: APP },
    );
    expect(response.status).toBe(200);
    return (await response.json()) as SigningData;
  };

  /** Builds and signs the typed data the way the README shows a patient app doing it. */
  const signedGrant = async (signer: Wallet, nonce: string, deadline: number, data = signing) => {
    const message = {
      patientKey: data.patientKey,
      recipientKey: data.recipientKey,
      purposes: (1n << BigInt(purposeIndex('TREAT'))).toString(),
      dataClasses: (1n << BigInt(dataClassIndex('Observation'))).toString(),
      validFrom: '0',
      validUntil: '0',
      nonce,
      deadline: String(deadline),
    };
    const signature = await signer.signTypedData(
      data.domain,
      { ConsentGrant: data.types.ConsentGrant },
      message,
    );
    return { patient: PATIENT, recipient: ORG, primaryType: 'ConsentGrant', message, signature };
  };

  const relay = (body: unknown) =>
    fetch(`${base}/fhir/R4/Consent/$signed-grant`, {
      method: 'POST',
      headers: APP,
      body: JSON.stringify(body),
    });

  const expectRefusal = async (response: Response, status: number, expression: string) => {
    expect(response.status).toBe(status);
    const outcome = (await response.json()) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue?.[0]?.expression).toEqual([expression]);
  };

  const sendObservation = async (id: string) => {
    const response = await fetch(`${base}/hooks/demo`, {
      method: 'POST',
      headers: { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'Observation',
        id,
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        subject: { reference: PATIENT },
        valueQuantity: { value: 61, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
      }),
    });
    expect(response.status).toBe(200);
  };

  const decisionFor = (id: string) =>
    eventually(
      async () =>
        (await store.sharing.decisionsFor('dest-s')).find((d) =>
          JSON.stringify(d.auditEvent).includes(`Observation/${id}/`),
        ),
      20_000,
      `the decision for ${id}`,
    );

  const now = () => Math.floor(Date.now() / 1000);

  it('tells the app what to sign, after the patient’s signer is bound by the operator', async () => {
    signing = await signingData();
    expect(signing.domain).toMatchObject({ name: 'FhirTrailConsentRegistry', version: '1' });
    expect(signing.patientKey).toMatch(/^0x[0-9a-f]{64}$/);
    expect(signing.nonce).toBe('0');
    expect(signing.purposeBits[0]).toBe('TREAT');
    const bind = await fetch(`${base}/admin/patients/$bind-consent-signer`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({ source: 'demo', patient: PATIENT, signer: patient.address }),
    });
    expect(bind.status).toBe(200);
    const badSigner = await fetch(`${base}/admin/patients/$bind-consent-signer`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({ source: 'demo', patient: PATIENT, signer: 'not-an-address' }),
    });
    await expectRefusal(badSigner, 400, 'signer');
  });

  it('refuses a bad signature, an expired one and wrong keys before relaying anything', async () => {
    await expectRefusal(await relay(await signedGrant(stranger, '0', now() + 600)), 403, 'signature');
    const tampered = await signedGrant(patient, '0', now() + 600);
    await expectRefusal(
      await relay({ ...tampered, message: { ...tampered.message, purposes: '4' } }),
      403,
      'signature',
    );
    await expectRefusal(await relay(await signedGrant(patient, '0', now() - 10)), 422, 'message.deadline');
    const otherOrg = await relay({
      ...(await signedGrant(patient, '0', now() + 600)),
      recipient: 'Organization/x',
    });
    await expectRefusal(otherOrg, 422, 'message.recipientKey');
    await expectRefusal(await relay({ ...tampered, signature: '0x1234' }), 400, 'signature');
    // None of it reached the chain or the store: the nonce is unused, no consent recorded.
    expect((await signingData()).nonce).toBe('0');
    expect(await store.consents.forPatient('demo', PATIENT)).toEqual([]);
  });

  it('relays a good grant: final on chain, mirrored, a consent leaf, and deliveries allowed for that pair', async () => {
    const body = await signedGrant(patient, '0', now() + 600);
    const response = await relay(body);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-fhir-trail-tx-hash')).toMatch(/^0x[0-9a-f]{64}$/);
    const consent = (await response.json()) as Record<string, unknown>;
    expect(consent).toMatchObject({
      resourceType: 'Consent',
      status: 'active',
      patient: { reference: PATIENT },
    });

    // The mirror holds the finalised grant as soon as the relay answers.
    const pair = await store.consents.pair({ sourceId: 'demo', patientRef: PATIENT, recipientOrg: ORG });
    expect(pair?.confirmedBlock).not.toBeNull();
    expect(pair?.confirmed).toMatchObject({ active: true, purposes: 1n });
    expect(pair?.desired.active).toBe(true);
    const stored = await store.consents.findByConsentId('demo', consent['id'] as string);
    expect(stored?.origin).toBe('signed');

    const leaf = await store.db
      .selectFrom('ledger_events')
      .select(['record'])
      .where('kind', '=', 'consent')
      .where('resource_id', '=', consent['id'] as string)
      .executeTakeFirstOrThrow();
    expect(parseLedgerEventRecord(JSON.parse(leaf.record) as unknown)).toMatchObject({
      kind: 'consent',
      decision: 'granted',
      actor: 'eip712:patient',
    });
    expect(leaf.record).not.toContain('p-signed-1');

    await sendObservation('obs-signed-1');
    expect(await decisionFor('obs-signed-1')).toMatchObject({
      decision: 'delivered',
      consentRef: `Consent/${consent['id'] as string}`,
    });
    expect(destination.deliveredOf('Observation/obs-signed-1')).toHaveLength(1);

    // Replaying the same signed grant is refused (the nonce was used).
    await expectRefusal(await relay(body), 409, 'message.nonce');
  });

  it('documents the signed-grant and bind-signer operations in the OpenAPI document', async () => {
    const openApi = (await (await fetch(`${base}/docs/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    expect(Object.keys(openApi.paths['/fhir/R4/Consent/$signed-grant'] ?? {}).sort()).toEqual([
      'get',
      'post',
    ]);
    expect(Object.keys(openApi.paths['/admin/patients/$bind-consent-signer'] ?? {})).toEqual(['post']);
  });

  it('a signed revocation withdraws the grant: the next delivery is denied', async () => {
    const data = await signingData();
    expect(data.nonce).toBe('1');
    const message = {
      patientKey: data.patientKey,
      recipientKey: data.recipientKey,
      nonce: data.nonce,
      deadline: String(now() + 600),
    };
    const signature = await patient.signTypedData(
      data.domain,
      { ConsentRevoke: data.types.ConsentRevoke },
      message,
    );
    const response = await relay({
      patient: PATIENT,
      recipient: ORG,
      primaryType: 'ConsentRevoke',
      message,
      signature,
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as Record<string, unknown>)['status']).toBe('inactive');
    const pair = await store.consents.pair({ sourceId: 'demo', patientRef: PATIENT, recipientOrg: ORG });
    expect(pair?.confirmed.active).toBe(false);
    await sendObservation('obs-signed-2');
    expect(await decisionFor('obs-signed-2')).toMatchObject({ decision: 'denied' });
    expect(destination.deliveredOf('Observation/obs-signed-2')).toHaveLength(0);
  });
});
