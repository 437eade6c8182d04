import { loadFhirDefinitions, validateResource } from '@fhir-trail/fhir-mapping';
import {
  type ProofBundle,
  createProvider,
  parseLedgerEventRecord,
  verifyProofBundle,
} from '@fhir-trail/ledger';
import { LEDGER, type LedgerConnection, STORE } from '@fhir-trail/runtime';
import type { SharingDecision, Store } from '@fhir-trail/store';
import { FhirDestinationSimulator } from './support/fhir-destination-simulator';
import { eventually, TestStack } from './support/test-apps';

const CONSENT_KEY = 'patient-app-consent-key-0002';
const ADMIN = { authorization: 'Bearer dev-admin-key', 'content-type': 'application/json' };
const PATIENT = 'Patient/p-share-1';
const PRCP = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }],
};

function consent(status: 'active' | 'inactive'): Record<string, unknown> {
  return {
    resourceType: 'Consent',
    id: 'share-consent',
    status,
    scope: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }],
    },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: PATIENT },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] },
    provision: {
      provision: [
        {
          type: 'permit',
          actor: [{ role: PRCP, reference: { reference: 'Organization/hospital-a' } }],
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
    id: 'obs-share-1',
    meta: { versionId: String(version) },
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: PATIENT },
    valueQuantity: { value: 60 + version, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

describe('consent-gated sharing to two destination FHIR servers over real HTTP', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  const a = new FhirDestinationSimulator();
  const b = new FhirDestinationSimulator();

  beforeAll(async () => {
    loadFhirDefinitions();
    await Promise.all([a.start(), b.start()]);
    stack = await TestStack.create('sharing', { CONSENT_API_KEY: CONSENT_KEY });
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
    const destinations = [
      { id: 'dest-a', organisation: 'Organization/hospital-a', url: a.baseUrl, purpose: 'TREAT' },
      { id: 'dest-b', organisation: 'Organization/hospital-b', url: b.baseUrl, purpose: 'TREAT' },
      // Hospital A again, but asking for research: its consent covers treatment only.
      {
        id: 'dest-a-research',
        organisation: 'Organization/hospital-a',
        url: `${b.baseUrl}/research`,
        purpose: 'HRESCH',
      },
    ];
    for (const d of destinations) {
      const response = await fetch(`${base}/admin/destinations`, {
        method: 'POST',
        headers: ADMIN,
        body: JSON.stringify({
          id: d.id,
          name: d.id,
          source: 'demo',
          organisation: d.organisation,
          fhirBaseUrl: d.url,
          auth: { kind: 'bearer', token: `token-for-${d.id}-000000` },
          resourceTypes: ['Observation'],
          purpose: d.purpose,
          retry: { maxAttempts: 3, backoffMs: 100 },
        }),
      });
      expect(response.status).toBe(201);
      const view = (await response.json()) as Record<string, unknown>;
      expect(view).toMatchObject({ id: d.id, hasBearerToken: true, enabled: true });
      expect(JSON.stringify(view)).not.toContain('token-for');
    }
  });

  afterAll(async () => {
    await stack.close();
    await Promise.all([a.stop(), b.stop()]);
  });

  const putConsent = async (status: 'active' | 'inactive', waitForChain = true) => {
    const response = await fetch(`${base}/fhir/R4/Consent/share-consent`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${CONSENT_KEY}`,
        'content-type': 'application/fhir+json',
        'x-fhir-trail-source': 'demo',
      },
      body: JSON.stringify(consent(status)),
    });
    expect(response.status).toBe(200);
    if (waitForChain) await chainConfirms(status);
  };

  const chainConfirms = (status: 'active' | 'inactive') =>
    eventually(
      async () => {
        const pair = await store.consents.pair({
          sourceId: 'demo',
          patientRef: PATIENT,
          recipientOrg: 'Organization/hospital-a',
        });
        return pair?.confirmedBlock !== null && pair?.confirmed.active === (status === 'active')
          ? pair
          : undefined;
      },
      15_000,
      `the registry pair confirmed ${status}`,
    );

  const sendVersion = async (version: number) => {
    const response = await fetch(`${base}/hooks/demo`, {
      method: 'POST',
      headers: { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' },
      body: JSON.stringify(observation(version)),
    });
    expect(response.status).toBe(200);
  };

  /** The decisions for the version-th stored version of the Observation, once every destination has one. */
  const decisionsFor = (version: number) =>
    eventually(
      async () => {
        const all = await Promise.all(
          ['dest-a', 'dest-b', 'dest-a-research'].map((id) => store.sharing.decisionsFor(id)),
        );
        const [forA, forB, forResearch] = all.map((list) =>
          list.find((d) => d.auditEvent['entity'] && entityVersion(d) === version),
        );
        return forA && forB && forResearch ? { a: forA, b: forB, research: forResearch } : undefined;
      },
      20_000,
      `decisions for version ${version}`,
    );

  it('granted: delivered to A only; B (not named) and A-for-research (wrong purpose) are denied and logged', async () => {
    await putConsent('active');
    await sendVersion(1);
    const decisions = await decisionsFor(1);
    expect(decisions.a).toMatchObject({
      decision: 'delivered',
      reason: 'permitted-by-consent',
      consentRef: 'Consent/share-consent',
    });
    // The consent's OPTOUT root rule denies everyone it does not except.
    expect(decisions.b).toMatchObject({ decision: 'denied', reason: 'denied-by-consent' });
    expect(decisions.research).toMatchObject({ decision: 'denied', reason: 'denied-by-consent' });

    expect(a.deliveredOf('Observation/obs-share-1')).toHaveLength(1);
    expect(a.received[0]?.authorization).toBe('Bearer token-for-dest-a-000000');
    expect(b.received).toHaveLength(0);

    for (const d of Object.values(decisions)) await expectAuditAndLeaf(d);
    expect(decisions.a.auditEvent['outcome']).toBe('0');
    expect(decisions.b.auditEvent['outcome']).toBe('4');
  });

  it('revoked: the next version is not delivered to A, and the denial is logged — even before the revoke is final on chain', async () => {
    // The revocation window on the bridge is zero: the withdrawn policy is committed before the
    // PUT answers, and every later delivery attempt checks it. Only the public registry lags,
    // by the finality of the revoke transaction.
    await putConsent('inactive', false);
    await sendVersion(2);
    const decisions = await decisionsFor(2);
    expect(decisions.a).toMatchObject({ decision: 'denied', reason: 'no-applicable-consent' });
    await expectAuditAndLeaf(decisions.a);
    expect(a.deliveredOf('Observation/obs-share-1')).toHaveLength(1);
    await chainConfirms('inactive');
  });

  it('re-granted: delivered to A again', async () => {
    await putConsent('active');
    await sendVersion(3);
    const decisions = await decisionsFor(3);
    expect(decisions.a.decision).toBe('delivered');
    const delivered = a.deliveredOf('Observation/obs-share-1');
    expect(delivered).toHaveLength(2);
    expect(delivered[1]).toMatchObject({ valueQuantity: { value: 63 } });
  });

  it('destination down: retried per its policy, then recorded as failed with an AuditEvent and a leaf', async () => {
    a.down = true;
    const before = a.received.length;
    await sendVersion(4);
    const decisions = await decisionsFor(4);
    expect(decisions.a).toMatchObject({
      decision: 'failed',
      attempts: 3,
      reason: 'the destination answered HTTP 503',
    });
    expect(a.received.length - before).toBe(3);
    expect(decisions.a.auditEvent['outcome']).toBe('8');
    await expectAuditAndLeaf(decisions.a);
    const deadLetters = await store.deadLetters.list({ sourceId: 'demo' });
    expect(deadLetters.filter((d) => d.reasonCode === 'delivery-failed')).toHaveLength(1);
    a.down = false;
  });

  it("the patient's access log lists every decision as an AuditEvent whose proof bundle verifies on chain", async () => {
    const ledger = stack.bridge!.get<LedgerConnection>(LEDGER);
    const expected = (
      await Promise.all(['dest-a', 'dest-b', 'dest-a-research'].map((id) => store.sharing.decisionsFor(id)))
    ).flat();
    const provider = createProvider(ledger.rpcUrl);
    try {
      const entries = await eventually(
        async () => {
          const response = await fetch(`${base}/fhir/R4/AuditEvent?patient=${PATIENT}`, {
            headers: { authorization: `Bearer ${CONSENT_KEY}`, 'x-fhir-trail-source': 'demo' },
          });
          expect(response.status).toBe(200);
          const bundle = (await response.json()) as {
            total: number;
            entry: { resource: Record<string, unknown> }[];
          };
          const proofs = bundle.entry.map((e) => proofOf(e.resource));
          return bundle.total === expected.length && proofs.every((p) => p.status === 'anchored')
            ? bundle.entry
            : undefined;
        },
        20_000,
        'an access log with every proof anchored',
      );
      expect(entries.map((e) => e.resource['id']).sort()).toEqual(expected.map((d) => d.eventId).sort());
      for (const entry of entries) {
        await expect(verifyProofBundle(proofOf(entry.resource), provider)).resolves.toMatchObject({
          verified: true,
        });
      }
    } finally {
      provider.destroy();
    }
    const other = await fetch(`${base}/fhir/R4/AuditEvent?patient=Patient/someone-else`, {
      headers: { authorization: `Bearer ${CONSENT_KEY}`, 'x-fhir-trail-source': 'demo' },
    });
    expect(((await other.json()) as { total: number }).total).toBe(0);
    const anonymous = await fetch(`${base}/fhir/R4/AuditEvent?patient=${PATIENT}`, {
      headers: { 'x-fhir-trail-source': 'demo' },
    });
    expect(anonymous.status).toBe(401);
  });

  it('period mismatch: a consent whose period has ended allows nothing', async () => {
    const expired = {
      ...consent('active'),
      id: 'expired-consent',
      patient: { reference: 'Patient/p-share-2' },
      provision: {
        provision: [
          {
            ...(consent('active')['provision'] as { provision: Record<string, unknown>[] }).provision[0],
            period: { start: '2020-01-01', end: '2020-12-31' },
          },
        ],
      },
    };
    const response = await fetch(`${base}/fhir/R4/Consent/expired-consent`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${CONSENT_KEY}`,
        'content-type': 'application/fhir+json',
        'x-fhir-trail-source': 'demo',
      },
      body: JSON.stringify(expired),
    });
    expect(response.status).toBe(200);
    // Its registry grant is mirrored too (with the 2020 period), so only the period can refuse.
    await eventually(
      async () => {
        const pair = await store.consents.pair({
          sourceId: 'demo',
          patientRef: 'Patient/p-share-2',
          recipientOrg: 'Organization/hospital-a',
        });
        return pair?.confirmedBlock !== null && pair?.confirmed.active ? pair : undefined;
      },
      15_000,
      'the expired grant mirrored',
    );
    const before = a.received.length;
    const hook = await fetch(`${base}/hooks/demo`, {
      method: 'POST',
      headers: { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' },
      body: JSON.stringify({
        ...observation(1),
        id: 'obs-share-2',
        subject: { reference: 'Patient/p-share-2' },
      }),
    });
    expect(hook.status).toBe(200);
    const decision = await eventually(
      async () =>
        (await store.sharing.decisionsFor('dest-a')).find((d) =>
          JSON.stringify(d.auditEvent).includes('Observation/obs-share-2/'),
        ),
      20_000,
      'the decision for the second patient',
    );
    expect(decision).toMatchObject({
      decision: 'denied',
      reason: 'denied-by-consent',
      consentRef: 'Consent/expired-consent',
    });
    expect(a.received.length).toBe(before);
  });

  async function expectAuditAndLeaf(decision: SharingDecision): Promise<void> {
    const validation = validateResource(decision.auditEvent);
    expect(validation.valid ? [] : validation.outcome.issue).toEqual([]);
    expect(decision.auditEvent).toMatchObject({
      resourceType: 'AuditEvent',
      type: { code: '110106' },
    });
    expect(decision.auditEvent['purposeOfEvent']).toHaveLength(1);
    await expectLeaf(decision);
  }

  async function expectLeaf(decision: SharingDecision): Promise<void> {
    const row = await store.db
      .selectFrom('ledger_events')
      .select(['record', 'kind'])
      .where('event_id', '=', decision.eventId)
      .executeTakeFirstOrThrow();
    const record = parseLedgerEventRecord(JSON.parse(row.record) as unknown);
    expect(record).toMatchObject({
      kind: 'sharing',
      decision: decision.decision,
      recipient: `destination:${decision.destinationId}`,
    });
    expect(row.record).not.toContain('p-share-1');
  }
});

function proofOf(auditEvent: Record<string, unknown>): ProofBundle {
  const [extension] = auditEvent['extension'] as { valueAttachment: { data: string } }[];
  return JSON.parse(Buffer.from(extension.valueAttachment.data, 'base64').toString('utf8')) as ProofBundle;
}

function entityVersion(decision: SharingDecision): number {
  const entities = decision.auditEvent['entity'] as { what?: { reference?: string } }[];
  const reference =
    entities.map((e) => e.what?.reference ?? '').find((r) => r.startsWith('Observation/')) ?? '';
  return Number(/_history\/(\d+)$/.exec(reference)?.[1]);
}
