import { createHmac } from 'node:crypto';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { parseNotification, type ParsedNotification } from '@fhir-trail/fhir-mapping';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { listJsonFixtures, readFixtureBytes, readJsonFixture } from './fixtures/fixture-files';
import { FhirSourceSimulator } from './support/fhir-source-simulator';
import { eventually, TestStack } from './support/test-apps';

/** athenahealth's published test secret (test/fixtures/subscriptions/athenahealth/SOURCES.md). */
const ATHENA_SECRET = 'SecretHashKeyForConsumer1';
const TOKEN = 'corpus-sender-secret-0123456789';
/** The one vector that is not a notification: a `$status` operation response (a searchset). */
const NOT_A_NOTIFICATION = new Set(['subscriptions/r4-backport__status-operation-response__inferno.json']);

const FIXTURES = [...listJsonFixtures('subscriptions')];

/**
 * Every notification vector in the corpus, sent over HTTP to a running bridge with the source
 * settings its sender needs (bearer or athenahealth HMAC; the IG counter or per-bundle numbers; a
 * FHIR base to fetch id-only foci from): the answer the standard expects, and every event ending
 * as a stored version with Provenance or a dead letter with a reason — nothing crashes, nothing
 * is silently dropped.
 */
describe('the subscription notification corpus, over HTTP', () => {
  let simulator: FhirSourceSimulator;
  let stack: TestStack;
  let store: Store;
  let fhirBase: string;

  beforeAll(async () => {
    simulator = new FhirSourceSimulator();
    fhirBase = await simulator.start();
    stack = await TestStack.create('corpus');
    await stack.startBridge();
    store = stack.bridge!.get<Store>(STORE);
    await stack.startWorker();
  });

  afterAll(async () => {
    await stack.close();
    await simulator.stop();
  });

  it('covers every vector', () => {
    expect(FIXTURES.length).toBeGreaterThanOrEqual(30);
  });

  it.each(FIXTURES.map((file, index) => [file, index] as const))('%s', async (file, index) => {
    const athena = file.includes('/athenahealth/');
    const sourceId = `corpus-${index}`;
    await store.sources.upsert({
      id: sourceId,
      name: `Corpus sender ${index}`,
      organisation: { display: athena ? 'athenahealth' : 'Reference sender' },
      fhirBaseUrl: fhirBase,
      ...(athena
        ? { senderAuth: { signature: { kind: 'hub-signature', secret: ATHENA_SECRET } } }
        : { token: TOKEN }),
      senderProfile: { counter: athena ? 'per-bundle' : 'subscription' },
    });
    const body = readFixtureBytes(file);
    const expected = expectedNotification(file);
    // The resources an id-only notification points at exist at the source, so fetch-back finds them.
    for (const event of expected?.events ?? []) {
      if (event.content !== 'full-resource' && event.focus?.resourceType && event.focus.id) {
        simulator.put({ resourceType: event.focus.resourceType, id: event.focus.id } as never);
      }
    }

    const response = await fetch(`${stack.baseUrl}/hooks/${sourceId}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/fhir+json',
        ...(athena
          ? { 'x-hub-signature': `sha256=${createHmac('sha256', ATHENA_SECRET).update(body).digest('hex')}` }
          : { authorization: `Bearer ${TOKEN}` }),
      },
      body,
    });
    const outcome = (await response.json()) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');

    if (!expected) {
      expect(response.status).toBe(400);
      expect(outcome.issue?.[0]).toMatchObject({ severity: 'error' });
      // Refused, but kept for an engineer to inspect.
      const kept = await store.deadLetters.list({ sourceId });
      expect(kept.map((d) => d.reasonCode)).toEqual(['malformed-notification']);
      return;
    }
    expect(response.status).toBe(200);
    const inboxId = outcome.id!;
    const status = await eventually(async () => {
      const found = await store.inbox.findStatus(inboxId);
      return found && found.status !== 'received' ? found.status : undefined;
    });
    const [versions, letters] = await Promise.all([
      store.db
        .selectFrom('resource_versions as v')
        .leftJoin('provenances as p', 'p.resource_version_id', 'v.id')
        .select(['v.id', 'p.id as provenance'])
        .where('v.inbox_id', '=', inboxId)
        .execute(),
      store.deadLetters.list({ inboxId }),
    ]);
    // Each event is accounted for: stored (with its Provenance) or a dead letter with a reason.
    expect(versions.length + letters.length).toBeGreaterThanOrEqual(expected.events.length);
    expect(versions.every((v) => v.provenance !== null)).toBe(true);
    expect(
      letters.every(
        (d) => d.reasonCode.length > 0 && (d.outcome as unknown as OperationOutcome).issue?.length,
      ),
    ).toBe(true);
    expect(['done', 'dead-letter']).toContain(status);
    if (expected.events.length === 0) expect(status).toBe('done');
  });
});

function expectedNotification(file: string): ParsedNotification | undefined {
  if (NOT_A_NOTIFICATION.has(file)) return undefined;
  return parseNotification({ method: 'POST', body: readJsonFixture(file), headers: {} });
}
