import { loadFhirDefinitions, validateResource } from '@fhir-trail/fhir-mapping';
import { QUEUES } from '@fhir-trail/jobs';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { FhirDestinationSimulator } from './support/fhir-destination-simulator';
import { eventually, TestStack } from './support/test-apps';

/** This spec's own Redis database: it flushes it (foundation uses 7, resilience 9). */
const REDIS_DB = 12;
const REDIS_URL = `redis://127.0.0.1:6379/${REDIS_DB}`;
const CONSENT_KEY = 'patient-app-consent-key-0003';
const ADMIN = { authorization: 'Bearer dev-admin-key', 'content-type': 'application/json' };
const PATIENT = 'Patient/p-relay-1';
const PRCP = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }],
};

const consent = {
  resourceType: 'Consent',
  id: 'relay-consent',
  status: 'active',
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

function observation(id: string): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    id,
    meta: { versionId: '1' },
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: PATIENT },
    valueQuantity: { value: 61, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

describe('share relay: a version stored as shareable reaches its destination even when Redis loses its jobs', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  const destination = new FhirDestinationSimulator();

  beforeAll(async () => {
    loadFhirDefinitions();
    const redis = new Redis(REDIS_URL);
    await redis.flushdb();
    redis.disconnect();
    await destination.start();
    stack = await TestStack.create('share-relay', { REDIS_URL, CONSENT_API_KEY: CONSENT_KEY });
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
    const created = await fetch(`${base}/admin/destinations`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({
        id: 'dest-relay',
        name: 'dest-relay',
        source: 'demo',
        organisation: 'Organization/hospital-a',
        fhirBaseUrl: destination.baseUrl,
        auth: { kind: 'bearer', token: 'token-for-dest-relay-000000' },
        resourceTypes: ['Observation'],
        purpose: 'TREAT',
        retry: { maxAttempts: 3, backoffMs: 100 },
      }),
    });
    expect(created.status).toBe(201);
    const granted = await fetch(`${base}/fhir/R4/Consent/relay-consent`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${CONSENT_KEY}`,
        'content-type': 'application/fhir+json',
        'x-fhir-trail-source': 'demo',
      },
      body: JSON.stringify(consent),
    });
    expect(granted.status).toBe(200);
    await eventually(
      async () => {
        const pair = await store.consents.pair({
          sourceId: 'demo',
          patientRef: PATIENT,
          recipientOrg: 'Organization/hospital-a',
        });
        return pair?.confirmedBlock !== null && pair?.confirmed.active ? pair : undefined;
      },
      15_000,
      'the grant confirmed on chain',
    );
  });

  afterAll(async () => {
    await stack.close();
    await destination.stop();
  });

  const post = async (id: string) => {
    const response = await fetch(`${base}/hooks/demo`, {
      method: 'POST',
      headers: { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' },
      body: JSON.stringify(observation(id)),
    });
    expect(response.status).toBe(200);
  };

  const flushRedis = async () => {
    const redis = new Redis(REDIS_URL);
    try {
      await redis.flushdb();
      expect(await redis.dbsize()).toBe(0);
    } finally {
      redis.disconnect();
    }
  };

  /** The one version stored for `Observation/<id>`, with its share-outbox row. */
  const outboxRow = (id: string) =>
    store.db
      .selectFrom('resource_versions')
      .innerJoin('share_outbox', 'share_outbox.resource_version_id', 'resource_versions.id')
      .select(['resource_versions.id', 'share_outbox.fanned_out_at'])
      .where('resource_versions.resource_type', '=', 'Observation')
      .where('resource_versions.resource_id', '=', id)
      .executeTakeFirst();

  /** Delivered exactly once, with exactly one decision and a valid AuditEvent, and its outbox row closed. */
  const expectDeliveredOnce = async (id: string) => {
    const decision = await eventually(
      async () =>
        (await store.sharing.decisionsFor('dest-relay')).find((d) =>
          JSON.stringify(d.auditEvent).includes(`Observation/${id}/`),
        ),
      20_000,
      `the decision for ${id}`,
    );
    expect(decision).toMatchObject({ decision: 'delivered', consentRef: 'Consent/relay-consent' });
    const validation = validateResource(decision.auditEvent);
    expect(validation.valid ? [] : validation.outcome.issue).toEqual([]);
    expect(decision.auditEvent).toMatchObject({ resourceType: 'AuditEvent', type: { code: '110106' } });
    await eventually(
      async () => ((await outboxRow(id))?.fanned_out_at ? true : undefined),
      5_000,
      'the outbox row fanned out',
    );
    // Several relay intervals later: still one delivery, one decision.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(destination.deliveredOf(`Observation/${id}`)).toHaveLength(1);
    const decisions = (await store.sharing.decisionsFor('dest-relay')).filter((d) =>
      JSON.stringify(d.auditEvent).includes(`Observation/${id}/`),
    );
    expect(decisions).toHaveLength(1);
  };

  it('fan-out job lost after the ingest commit: the share relay enqueues it again from the outbox', async () => {
    // Hold share jobs in Redis so the flush lands between the ingest commit and the fan-out.
    const shareQueue = new Queue(QUEUES.share, {
      connection: { url: REDIS_URL },
      prefix: stack.config.queuePrefix,
    });
    try {
      await shareQueue.pause();
      await post('obs-relay-1');
      const row = await eventually(() => outboxRow('obs-relay-1'), 10_000, 'the stored version');
      expect(row.fanned_out_at).toBeNull();
      await eventually(
        async () => ((await shareQueue.getJobCounts('paused', 'waiting')).paused ? true : undefined),
        5_000,
        'the fan-out job held in Redis',
      );
    } finally {
      await shareQueue.close();
    }
    await stack.stopWorker();
    await flushRedis();
    expect((await outboxRow('obs-relay-1'))?.fanned_out_at).toBeNull();
    expect(destination.deliveredOf('Observation/obs-relay-1')).toHaveLength(0);
    await stack.startWorker();
    await expectDeliveredOnce('obs-relay-1');
  });

  it('loses nothing when Redis is flushed after acceptance: ingested by the inbox relay, then shared once', async () => {
    await stack.stopWorker();
    await post('obs-relay-2');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await flushRedis();
    await stack.startWorker();
    await expectDeliveredOnce('obs-relay-2');
  });
});
