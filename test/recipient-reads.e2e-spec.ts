import { createHmac } from 'node:crypto';
import { loadFhirDefinitions, validateResource } from '@fhir-trail/fhir-mapping';
import {
  type ProofBundle,
  createProvider,
  parseLedgerEventRecord,
  verifyProofBundle,
} from '@fhir-trail/ledger';
import { LEDGER, type LedgerConnection, STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { eventually, TestStack } from './support/test-apps';

const CONSENT_KEY = 'patient-app-consent-key-0003';
const JWT_SECRET = 'recipient-jwt-secret-for-the-e2e-test-0001';
const JWT_ISSUER = 'https://auth.hospital-a.example';
const JWT_AUDIENCE = 'https://bridge.example/fhir/R4';
const ADMIN = { authorization: 'Bearer dev-admin-key', 'content-type': 'application/json' };
const PATIENT = 'Patient/p-read-1';
const READ_KEY = { a: 'read-key-of-hospital-a-0000000000001', b: 'read-key-of-hospital-b-0000000000002' };
const PRCP = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }],
};

/** Hospital A may receive the patient's Observations for treatment; everyone else nothing. */
function consent(status: 'active' | 'inactive'): Record<string, unknown> {
  return {
    resourceType: 'Consent',
    id: 'read-consent',
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

const OBSERVATION = {
  resourceType: 'Observation',
  id: 'obs-read-1',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
  subject: { reference: PATIENT },
  valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
};
const CONDITION = {
  resourceType: 'Condition',
  id: 'cond-read-1',
  code: { coding: [{ system: 'http://snomed.info/sct', code: '38341003' }] },
  subject: { reference: PATIENT },
};

function hs256(payload: Record<string, unknown>, secret = JWT_SECRET): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(payload)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

describe('reads by recipients over real HTTP: consent-checked, logged, proven', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;

  beforeAll(async () => {
    loadFhirDefinitions();
    stack = await TestStack.create('reads', {
      CONSENT_API_KEY: CONSENT_KEY,
      RECIPIENT_JWT_SECRET: JWT_SECRET,
      RECIPIENT_JWT_ISSUER: JWT_ISSUER,
      RECIPIENT_JWT_AUDIENCE: JWT_AUDIENCE,
    });
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
    for (const [id, organisation, readKey] of [
      ['dest-a', 'Organization/hospital-a', READ_KEY.a],
      ['dest-b', 'Organization/hospital-b', READ_KEY.b],
    ] as const) {
      const response = await fetch(`${base}/admin/destinations`, {
        method: 'POST',
        headers: ADMIN,
        body: JSON.stringify({
          id,
          name: id,
          source: 'demo',
          organisation,
          // Deliveries are not under test here: these destinations want no type the test sends.
          fhirBaseUrl: 'http://127.0.0.1:9/fhir',
          resourceTypes: ['Device'],
          readKey,
        }),
      });
      expect(response.status).toBe(201);
      const view = (await response.json()) as Record<string, unknown>;
      expect(view).toMatchObject({ id, hasReadKey: true });
      expect(JSON.stringify(view)).not.toContain('read-key-of');
    }
    await putConsent('active');
    for (const resource of [OBSERVATION, CONDITION]) {
      const hook = await fetch(`${base}/hooks/demo`, {
        method: 'POST',
        headers: { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' },
        body: JSON.stringify(resource),
      });
      expect(hook.status).toBe(200);
    }
    await eventually(
      async () =>
        (await store.sharing.currentVersion('demo', 'Observation', 'obs-read-1')) &&
        (await store.sharing.currentVersion('demo', 'Condition', 'cond-read-1')),
      20_000,
      'both resources stored',
    );
  });

  afterAll(async () => {
    await stack.close();
  });

  async function putConsent(status: 'active' | 'inactive', waitForChain = true): Promise<void> {
    const response = await fetch(`${base}/fhir/R4/Consent/read-consent`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${CONSENT_KEY}`,
        'content-type': 'application/fhir+json',
        'x-fhir-trail-source': 'demo',
      },
      body: JSON.stringify(consent(status)),
    });
    expect(response.status).toBe(200);
    if (!waitForChain) return;
    await eventually(
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
  }

  const get = (path: string, token?: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });

  const accessRows = () => store.db.selectFrom('access_decisions').selectAll().orderBy('id').execute();

  /** The access decisions written since `before` (a count of rows). */
  const newAccess = async (before: number) => (await accessRows()).slice(before);

  async function expectAccessLeaf(eventId: string, decision: 'delivered' | 'denied', destination: string) {
    const row = await store.db
      .selectFrom('ledger_events')
      .select(['record', 'kind', 'key_scope', 'created_at'])
      .where('event_id', '=', eventId)
      .executeTakeFirstOrThrow();
    expect(row.kind).toBe('access');
    expect(row.key_scope).toBe(PATIENT);
    const record = parseLedgerEventRecord(JSON.parse(row.record) as unknown);
    expect(record).toMatchObject({
      kind: 'access',
      decision,
      recipient: `destination:${destination}`,
      purpose: 'TREAT',
    });
    expect(row.record).not.toContain('p-read-1');
    expect(row.record).not.toContain('obs-read-1');
  }

  it('without a valid credential: 401 OperationOutcome, nothing read or logged', async () => {
    const before = (await accessRows()).length;
    for (const token of [undefined, 'not-a-read-key-000000000000000000000', hs256({ sub: 'dest-a' })]) {
      const response = await get('/fhir/R4/Observation/obs-read-1', token);
      expect(response.status).toBe(401);
      const body = (await response.json()) as { resourceType: string; issue: { code: string }[] };
      expect(body).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'security' }] });
    }
    expect(await newAccess(before)).toHaveLength(0);
  });

  it('consented organisation A reads the Observation: 200, with an AuditEvent (BALP Read) and an access leaf', async () => {
    const before = (await accessRows()).length;
    const response = await get('/fhir/R4/Observation/obs-read-1', READ_KEY.a);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/fhir+json');
    expect(await response.json()).toMatchObject({
      resourceType: 'Observation',
      id: 'obs-read-1',
      valueQuantity: { value: 72 },
    });
    const [logged, ...more] = await newAccess(before);
    expect(more).toHaveLength(0);
    expect(logged).toMatchObject({
      destination_id: 'dest-a',
      decision: 'delivered',
      reason: 'permitted-by-consent',
      consent_ref: 'Consent/read-consent',
    });
    const validation = validateResource(logged.audit_event);
    expect(validation.valid ? [] : validation.outcome.issue).toEqual([]);
    expect(logged.audit_event).toMatchObject({
      type: { code: 'rest' },
      subtype: [{ code: 'read' }],
      action: 'R',
      outcome: '0',
      agent: [{ who: { reference: 'Organization/hospital-a' }, requestor: true }, { requestor: false }],
      entity: [
        { what: { reference: PATIENT } },
        { what: { reference: 'Observation/obs-read-1/_history/1' } },
        { what: { reference: 'Consent/read-consent' } },
      ],
    });
    await expectAccessLeaf(logged.event_id, 'delivered', 'dest-a');
  });

  it('organisation B (not named by the consent) is refused: 403 without PHI, logged as denied', async () => {
    const before = (await accessRows()).length;
    const response = await get('/fhir/R4/Observation/obs-read-1', READ_KEY.b);
    expect(response.status).toBe(403);
    const text = await response.text();
    expect(JSON.parse(text)).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [{ code: 'forbidden' }],
    });
    expect(text).not.toMatch(/p-read-1|obs-read-1|72/);
    const [logged] = await newAccess(before);
    expect(logged).toMatchObject({
      destination_id: 'dest-b',
      decision: 'denied',
      reason: 'denied-by-consent',
    });
    expect(logged.audit_event).toMatchObject({
      outcome: '4',
      agent: [{ who: { reference: 'Organization/hospital-b' } }, { requestor: false }],
    });
    await expectAccessLeaf(logged.event_id, 'denied', 'dest-b');
  });

  it('a purpose the consent does not cover (parameter or header) is refused and logged', async () => {
    const before = (await accessRows()).length;
    expect((await get('/fhir/R4/Observation/obs-read-1?purpose=HRESCH', READ_KEY.a)).status).toBe(403);
    expect(
      (await get('/fhir/R4/Observation/obs-read-1', READ_KEY.a, { 'x-fhir-trail-purpose': 'HMARKT' })).status,
    ).toBe(403);
    const logged = await newAccess(before);
    expect(
      logged.map((l) => [
        l.decision,
        (l.audit_event['purposeOfEvent'] as { coding: { code: string }[] }[])[0].coding[0].code,
      ]),
    ).toEqual([
      ['denied', 'HRESCH'],
      ['denied', 'HMARKT'],
    ]);
    const bad = await get('/fhir/R4/Observation/obs-read-1?purpose=FUN', READ_KEY.a);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ issue: [{ expression: ['purpose'] }] });
  });

  it('unknown resource or type: 404; the Condition (not consented) is 403', async () => {
    expect((await get('/fhir/R4/Observation/no-such-obs', READ_KEY.a)).status).toBe(404);
    expect((await get('/fhir/R4/NoSuchType/obs-read-1', READ_KEY.a)).status).toBe(404);
    expect((await get('/fhir/R4/Condition/cond-read-1', READ_KEY.a)).status).toBe(403);
  });

  it('search by patient returns only the consented types, and logs each resource considered', async () => {
    const search = async (type: string, patient: string, token: string) => {
      const response = await get(`/fhir/R4/${type}?patient=${patient}`, token);
      expect(response.status).toBe(200);
      return (await response.json()) as {
        type: string;
        total: number;
        entry?: { resource: { id: string } }[];
      };
    };
    const before = (await accessRows()).length;
    const observations = await search('Observation', PATIENT, READ_KEY.a);
    expect(observations).toMatchObject({ type: 'searchset', total: 1 });
    expect(observations.entry?.map((e) => e.resource.id)).toEqual(['obs-read-1']);
    // The bare-id form of the parameter finds the same.
    expect((await search('Observation', 'p-read-1', READ_KEY.a)).total).toBe(1);
    expect((await search('Condition', PATIENT, READ_KEY.a)).total).toBe(0);
    expect((await search('Observation', PATIENT, READ_KEY.b)).total).toBe(0);
    expect((await search('Observation', 'Patient/someone-else', READ_KEY.a)).total).toBe(0);
    const logged = await newAccess(before);
    expect(logged.map((l) => [l.destination_id, l.decision])).toEqual([
      ['dest-a', 'delivered'],
      ['dest-a', 'delivered'],
      ['dest-a', 'denied'],
      ['dest-b', 'denied'],
    ]);
    const validation = validateResource(logged[2].audit_event);
    expect(validation.valid ? [] : validation.outcome.issue).toEqual([]);
    expect(logged[2].audit_event).toMatchObject({
      subtype: [{ code: 'search-type' }],
      action: 'E',
      entity: [
        { what: { reference: PATIENT } },
        { what: { reference: 'Condition/cond-read-1/_history/1' } },
        { role: { code: '24' }, query: Buffer.from(`Condition?patient=${PATIENT}`).toString('base64') },
        { what: { reference: 'Consent/read-consent' } },
      ],
    });
    const missing = await get('/fhir/R4/Observation', READ_KEY.a);
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ issue: [{ expression: ['patient'] }] });
  });

  it('an OAuth2 bearer JWT (HS256) whose sub names destination A reads like its read key; bad JWTs are 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: JWT_ISSUER, aud: JWT_AUDIENCE, sub: 'dest-a', exp: now + 300 };
    const before = (await accessRows()).length;
    expect((await get('/fhir/R4/Observation/obs-read-1', hs256(claims))).status).toBe(200);
    const [logged] = await newAccess(before);
    expect(logged).toMatchObject({ destination_id: 'dest-a', decision: 'delivered' });
    expect(logged.audit_event).toMatchObject({ agent: [{ altId: 'jwt:dest-a' }, { requestor: false }] });
    for (const bad of [
      hs256({ ...claims, exp: now - 3600 }),
      hs256({ ...claims, aud: 'https://elsewhere.example' }),
      hs256({ ...claims, iss: 'https://evil.example' }),
      hs256({ ...claims, sub: 'no-such-destination' }),
      hs256(claims, 'a-different-secret-of-enough-length-0000'),
    ]) {
      expect((await get('/fhir/R4/Observation/obs-read-1', bad)).status).toBe(401);
    }
    expect(await newAccess(before)).toHaveLength(1);
  });

  it('is documented in OpenAPI, and leaves the Consent and AuditEvent routes to their own keys', async () => {
    const openApi = (await (await fetch(`${base}/docs/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    expect(Object.keys(openApi.paths)).toEqual(
      expect.arrayContaining(['/fhir/R4/{type}/{id}', '/fhir/R4/{type}', '/fhir/R4/AuditEvent']),
    );
    expect(Object.keys(openApi.paths['/fhir/R4/{type}/{id}']['get'] as object)).toContain('responses');
    // A recipient read key opens neither the patient's Consent nor the access log.
    expect(
      (await get('/fhir/R4/Consent/read-consent', READ_KEY.a, { 'x-fhir-trail-source': 'demo' })).status,
    ).toBe(401);
    expect(
      (await get(`/fhir/R4/AuditEvent?patient=${PATIENT}`, READ_KEY.a, { 'x-fhir-trail-source': 'demo' }))
        .status,
    ).toBe(401);
  });

  it("reads appear in the patient's access log, each with a proof bundle that verifies once anchored", async () => {
    const ledger = stack.bridge!.get<LedgerConnection>(LEDGER);
    const expected = (await accessRows()).map((r) => r.event_id);
    expect(expected.length).toBeGreaterThanOrEqual(10);
    const provider = createProvider(ledger.rpcUrl);
    try {
      const entries = await eventually(
        async () => {
          const response = await get(`/fhir/R4/AuditEvent?patient=${PATIENT}`, CONSENT_KEY, {
            'x-fhir-trail-source': 'demo',
          });
          expect(response.status).toBe(200);
          const bundle = (await response.json()) as { entry: { resource: Record<string, unknown> }[] };
          const reads = bundle.entry.filter((e) => expected.includes(e.resource['id'] as string));
          return reads.length === expected.length &&
            reads.every((e) => proofOf(e.resource).status === 'anchored')
            ? reads
            : undefined;
        },
        20_000,
        'every read in the access log, anchored',
      );
      for (const entry of entries) {
        const proof = proofOf(entry.resource);
        expect(proof.event).toMatchObject({ kind: 'access' });
        await expect(verifyProofBundle(proof, provider)).resolves.toMatchObject({ verified: true });
      }
    } finally {
      provider.destroy();
    }
  });

  it('revoked: A is refused at once (before the revoke is final on chain), and the denial is logged', async () => {
    await putConsent('inactive', false);
    const before = (await accessRows()).length;
    const response = await get('/fhir/R4/Observation/obs-read-1', READ_KEY.a);
    expect(response.status).toBe(403);
    const [logged] = await newAccess(before);
    expect(logged).toMatchObject({
      destination_id: 'dest-a',
      decision: 'denied',
      reason: 'no-applicable-consent',
    });
    await expectAccessLeaf(logged.event_id, 'denied', 'dest-a');
  });
});

function proofOf(auditEvent: Record<string, unknown>): ProofBundle {
  const [extension] = auditEvent['extension'] as { valueAttachment: { data: string } }[];
  return JSON.parse(Buffer.from(extension.valueAttachment.data, 'base64').toString('utf8')) as ProofBundle;
}
