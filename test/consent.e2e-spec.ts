import type { OperationOutcome } from '@medplum/fhirtypes';
import { PURPOSES_OF_USE, R4_RESOURCE_TYPES, purposeBitmap, dataClassBitmap } from '@fhir-trail/fhir-mapping';
import { type ProofBundle, consentRegistryInterface, parseLedgerEventRecord } from '@fhir-trail/ledger';
import { LEDGER, type LedgerConnection, STORE, recipientKeyOf } from '@fhir-trail/runtime';
import type { RegistryPair, Store } from '@fhir-trail/store';
import { readFixtureBytes } from './fixtures/fixture-files';
import { eventually, TestStack } from './support/test-apps';

const CONSENT_KEY = 'patient-app-consent-key-0001';
const SCOPE = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }],
};
const PRCP = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }],
};

/** A patient app's consent: nothing by default, hospital A may receive Observations for treatment. */
function grantTo(org: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: SCOPE,
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: 'Patient/p-consent-1' },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] },
    provision: {
      provision: [
        {
          type: 'permit',
          actor: [{ role: PRCP, reference: { reference: org } }],
          purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
          class: [{ system: 'http://hl7.org/fhir/resource-types', code: 'Observation' }],
        },
      ],
    },
    ...extra,
  };
}

describe('consent intake: patient-app API and source intake -> policy, ledger leaf, registry on chain', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  let ledger: LedgerConnection;

  beforeAll(async () => {
    stack = await TestStack.create('consent', { CONSENT_API_KEY: CONSENT_KEY });
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
    ledger = stack.bridge!.get<LedgerConnection>(LEDGER);
  });

  afterAll(async () => {
    await stack.close();
  });

  const send = (
    method: 'POST' | 'PUT' | 'GET',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) =>
    fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${CONSENT_KEY}`,
        'content-type': 'application/fhir+json',
        'x-fhir-trail-source': 'demo',
        ...headers,
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });

  /** The pair's mirror row once the worker has confirmed `active` at a finalised block. */
  const confirmedPair = (recipientOrg: string, active: boolean) =>
    eventually(
      async () => {
        const pair = await store.consents.pair({
          sourceId: 'demo',
          patientRef: 'Patient/p-consent-1',
          recipientOrg,
        });
        return pair && pair.confirmedBlock !== null && pair.confirmed.active === active ? pair : undefined;
      },
      15_000,
      `the registry pair for ${recipientOrg} confirmed ${active ? 'active' : 'inactive'}`,
    );

  const isConsentedOnChain = async (pair: RegistryPair, resourceType: string, purpose: string) => {
    const data = await ledger.provider.call({
      to: ledger.consentRegistry!.contractAddress,
      data: consentRegistryInterface.encodeFunctionData('isConsented', [
        pair.patientKey,
        pair.recipientKey,
        PURPOSES_OF_USE.indexOf(purpose as never),
        R4_RESOURCE_TYPES.indexOf(resourceType as never),
        Math.floor(Date.now() / 1000),
      ]),
    });
    return consentRegistryInterface.decodeFunctionResult('isConsented', data)[0] as boolean;
  };

  it('refuses without a key (401), without a source (400), and a Consent it cannot read (422 with paths)', async () => {
    const noKey = await send('POST', '/fhir/R4/Consent', grantTo('Organization/hospital-a'), {
      authorization: '',
    });
    expect(noKey.status).toBe(401);
    expect(((await noKey.json()) as OperationOutcome).issue[0]?.code).toBe('security');

    const noSource = await send('POST', '/fhir/R4/Consent', grantTo('Organization/hospital-a'), {
      'x-fhir-trail-source': 'nope',
    });
    expect(noSource.status).toBe(400);

    const pkb = await send(
      'POST',
      '/fhir/R4/Consent',
      readFixtureBytes('r4-examples/Consent-consent-example-pkb.json').toString(),
    );
    expect(pkb.status).toBe(422);
    const outcome = (await pkb.json()) as OperationOutcome;
    expect(outcome.issue[0]).toMatchObject({
      code: 'not-supported',
      expression: ['Consent.provision.provision[0].type'],
    });

    const malformed = await send(
      'POST',
      '/fhir/R4/Consent',
      grantTo('Organization/hospital-a', { status: 'revoked' }),
    );
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as OperationOutcome).issue[0]?.expression).toEqual(['Consent.status']);
    expect(await store.consents.forPatient('demo', 'Patient/p-consent-1')).toEqual([]);
  });

  it('a posted grant is stored, logged as a consent leaf with a proof, and mirrored on chain at finality', async () => {
    const created = await send('POST', '/fhir/R4/Consent', grantTo('Organization/hospital-a'));
    expect(created.status).toBe(201);
    const body = (await created.json()) as { id: string; meta: { versionId: string } };
    expect(created.headers.get('location')).toBe(`Consent/${body.id}/_history/1`);
    expect(body.meta.versionId).toBe('1');

    const read = await send('GET', `/fhir/R4/Consent/${body.id}`);
    expect(read.status).toBe(200);
    expect(((await read.json()) as { status: string }).status).toBe('active');

    const pair = await confirmedPair('Organization/hospital-a', true);
    expect(pair.recipientKey).toEqual(
      recipientKeyOf(stack.config.ledger.masterKey, 'demo', 'Organization/hospital-a'),
    );
    expect(pair.confirmed).toEqual({
      active: true,
      purposes: purposeBitmap(['TREAT']),
      dataClasses: dataClassBitmap(['Observation']),
      validFrom: 0,
      validUntil: 0,
    });
    expect(pair.txHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await isConsentedOnChain(pair, 'Observation', 'TREAT')).toBe(true);
    expect(await isConsentedOnChain(pair, 'Observation', 'HRESCH')).toBe(false);
    expect(await isConsentedOnChain(pair, 'Condition', 'TREAT')).toBe(false);

    // The consent leaf: no ids, the patient pseudonym, anchored with a proof.
    const bundle = await eventually(
      async () => {
        const response = await fetch(`${base}/ledger/proofs?source=demo&resource=Consent/${body.id}`);
        if (response.status !== 200) return undefined;
        const { bundles } = (await response.json()) as { bundles: ProofBundle[] };
        return bundles[0]?.status === 'anchored' ? bundles[0] : undefined;
      },
      15_000,
      'an anchored consent leaf',
    );
    const record = parseLedgerEventRecord(bundle.event);
    expect(record).toMatchObject({
      kind: 'consent',
      subject: 'Consent',
      actor: 'api:consent-key',
      source: 'demo',
    });
    expect(`0x${pair.patientKey.toString('hex')}`).toBe(record.patient);
    expect(JSON.stringify(record)).not.toContain('p-consent-1');
    expect(JSON.stringify(record)).not.toContain(body.id);
  });

  it('withdrawing it (PUT status inactive) revokes the pair on chain', async () => {
    const [stored] = await store.consents.forPatient('demo', 'Patient/p-consent-1');
    const withdrawn = await send(
      'PUT',
      `/fhir/R4/Consent/${stored.consentId}`,
      grantTo('Organization/hospital-a', { id: stored.consentId, status: 'inactive' }),
    );
    expect(withdrawn.status).toBe(200);
    expect(((await withdrawn.json()) as { meta: { versionId: string } }).meta.versionId).toBe('2');
    const pair = await confirmedPair('Organization/hospital-a', false);
    expect(await isConsentedOnChain(pair, 'Observation', 'TREAT')).toBe(false);

    const mismatch = await send(
      'PUT',
      '/fhir/R4/Consent/other-id',
      grantTo('Organization/hospital-a', { id: 'x' }),
    );
    expect(mismatch.status).toBe(400);
  });

  it("moving a Consent to another patient (PUT) takes the first patient's grants with it", async () => {
    const put = (patient: string) =>
      send('PUT', '/fhir/R4/Consent/moving', {
        ...grantTo('Organization/hospital-m', { id: 'moving' }),
        patient: { reference: patient },
      });
    const pairOf = (patientRef: string, active: boolean) =>
      eventually(
        async () => {
          const pair = await store.consents.pair({
            sourceId: 'demo',
            patientRef,
            recipientOrg: 'Organization/hospital-m',
          });
          return pair && pair.confirmedBlock !== null && pair.confirmed.active === active ? pair : undefined;
        },
        15_000,
        `${patientRef} confirmed ${active ? 'active' : 'inactive'}`,
      );
    expect((await put('Patient/p-move-a')).status).toBe(200);
    await pairOf('Patient/p-move-a', true);
    expect((await put('Patient/p-move-b')).status).toBe(200);
    await pairOf('Patient/p-move-b', true);
    const first = await pairOf('Patient/p-move-a', false);
    expect(await isConsentedOnChain(first, 'Observation', 'TREAT')).toBe(false);
  });

  it("a Consent in a source's normal intake becomes a policy; one it cannot read becomes a dead letter", async () => {
    const hook = (resource: unknown) =>
      fetch(`${base}/hooks/demo`, {
        method: 'POST',
        headers: { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' },
        body: typeof resource === 'string' ? resource : JSON.stringify(resource),
      });
    expect((await hook(grantTo('Organization/clinic-b', { id: 'from-ehr-1' }))).status).toBe(200);
    const pair = await confirmedPair('Organization/clinic-b', true);
    expect(await isConsentedOnChain(pair, 'Observation', 'TREAT')).toBe(true);
    const stored = await store.consents.findByConsentId('demo', 'from-ehr-1');
    expect(stored).toMatchObject({ origin: 'intake', status: 'active', version: 1 });

    expect(
      (await hook(readFixtureBytes('r4-examples/Consent-consent-example-Out.json').toString())).status,
    ).toBe(200);
    const deadLetter = await eventually(
      async () =>
        (await store.deadLetters.list({ sourceId: 'demo' })).find(
          (d) => d.reasonCode === 'consent-not-interpreted',
        ),
      10_000,
      'a consent dead letter',
    );
    expect(JSON.stringify(deadLetter.outcome)).toContain('Consent.provision.actor[0].role');
    expect(await store.consents.findByConsentId('demo', 'consent-example-Out')).toBeUndefined();
  });
});
