import type { Patient } from '@medplum/fhirtypes';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { FhirSourceSimulator, type SubscriptionNotifier } from './support/fhir-source-simulator';
import { eventually, TestStack } from './support/test-apps';

const SOURCE = 'sim';
const TOKEN = 'simulated-ehr-secret-0123456789';

/**
 * Never lose, never double, against a simulated EHR over real HTTP: duplicates, gaps repaired with
 * $events, id-only fetch-back, heartbeats, status alerts, and silence past the heartbeat.
 */
describe('intake that survives real senders', () => {
  let simulator: FhirSourceSimulator;
  let stack: TestStack;
  let store: Store;
  let notifier: SubscriptionNotifier;
  let subscription: string;

  beforeAll(async () => {
    simulator = new FhirSourceSimulator();
    const fhirBase = await simulator.start();
    stack = await TestStack.create('recovery', { GAP_GRACE_MS: '300', RECOVERY_SWEEP_INTERVAL_MS: '300' });
    await stack.startBridge();
    store = stack.bridge!.get<Store>(STORE);
    await store.sources.upsert({
      id: SOURCE,
      name: 'Simulated EHR',
      organisation: { display: 'Simulated Hospital' },
      fhirBaseUrl: fhirBase,
      token: TOKEN,
      senderProfile: { counter: 'subscription' },
    });
    await stack.startWorker();
    notifier = simulator.notifier({
      endpoint: `${stack.baseUrl}/hooks/${SOURCE}`,
      headers: [`Authorization: Bearer ${TOKEN}`],
    });
    subscription = `Subscription/${notifier.subscriptionId}`;
  });

  afterAll(async () => {
    await stack.close();
    await simulator.stop();
  });

  const versionsOf = (type: string, id: string) => store.resources.history(store.db, SOURCE, type, id);
  const patient = (id: string, family: string): Patient => ({
    resourceType: 'Patient',
    id,
    name: [{ family }],
  });

  it('answers a handshake with exactly 200 and records the subscription without advancing its counter', async () => {
    const handshake = await notifier.sendHandshake();
    expect(handshake.status).toBe(200);
    const view = await eventually(() => store.subscriptions.find(SOURCE, subscription));
    expect(view.lastEventNumber).toBeNull();
  });

  it('processes the same notification sent five times once, and counts the duplicates', async () => {
    const first = await notifier.sendEvent(patient('dup', 'Once'));
    expect(first.status).toBe(200);
    for (let i = 0; i < 4; i++) {
      const again = await fetch(first.url, { method: 'POST', headers: first.headers, body: first.body });
      expect(again.status).toBe(200);
    }
    await eventually(async () =>
      (await store.subscriptions.find(SOURCE, subscription))?.duplicates === 4 ? true : undefined,
    );
    expect(await versionsOf('Patient', 'dup')).toHaveLength(1);
  });

  it('never advances the event counter on a heartbeat', async () => {
    const before = (await store.subscriptions.find(SOURCE, subscription))?.lastEventNumber;
    expect((await notifier.sendHeartbeat()).status).toBe(200);
    const after = await eventually(async () => {
      const view = await store.subscriptions.find(SOURCE, subscription);
      return view?.lastHeartbeatAt ? view : undefined;
    });
    expect(after.lastEventNumber).toBe(before);
  });

  it('repairs a gap of two event numbers through $events', async () => {
    await notifier.sendEvent(patient('gap-before', 'Before'));
    // Applied first, so the gap is exactly the two events the sender never delivered.
    await eventually(async () =>
      (await versionsOf('Patient', 'gap-before')).length === 1 ? true : undefined,
    );
    const missedA = simulator.put(patient('gap-a', 'MissedA'));
    const missedB = simulator.put(patient('gap-b', 'MissedB'));
    simulator.recordEvent(notifier.subscriptionId, missedA);
    simulator.recordEvent(notifier.subscriptionId, missedB);
    const after = await notifier.sendEvent(patient('gap-after', 'After'));
    expect(after.status).toBe(200);
    await eventually(
      async () => ((await versionsOf('Patient', 'gap-b')).length === 1 ? true : undefined),
      15_000,
      'the gap repaired',
    );
    expect(await versionsOf('Patient', 'gap-a')).toHaveLength(1);
    expect(simulator.stats.requests.some((r) => r.path.endsWith('/$events') && r.status === 200)).toBe(true);
    const gaps = await store.db.selectFrom('event_gaps').selectAll().execute();
    expect(gaps.map((g) => [g.from_number, g.to_number, g.status])).toEqual([
      [expect.any(String), expect.any(String), 'repaired'],
    ]);
    expect(Number(gaps[0].to_number) - Number(gaps[0].from_number)).toBe(1);
  });

  it('fetches the resource back for an id-only notification', async () => {
    const delivery = await notifier.sendEvent(patient('id-only', 'Fetched'), { content: 'id-only' });
    expect(delivery.status).toBe(200);
    const [version] = await eventually(async () => {
      const versions = await versionsOf('Patient', 'id-only');
      return versions.length > 0 ? versions : undefined;
    });
    expect(version.content).toMatchObject({
      resourceType: 'Patient',
      id: 'id-only',
      name: [{ family: 'Fetched' }],
    });
    expect(simulator.readCount('Patient', 'id-only')).toBe(1);
  });

  it('keeps a late older version without letting it overwrite the newer one', async () => {
    const v1 = simulator.put(patient('ordered', 'First'));
    const v2 = simulator.put(patient('ordered', 'Second'));
    const send = (resource: Patient) =>
      fetch(`${stack.baseUrl}/hooks/${SOURCE}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/fhir+json' },
        body: JSON.stringify(resource),
      });
    expect((await send(v2)).status).toBe(200);
    await eventually(async () => ((await versionsOf('Patient', 'ordered')).length === 1 ? true : undefined));
    expect((await send(v1)).status).toBe(200);
    const versions = await eventually(async () => {
      const all = await versionsOf('Patient', 'ordered');
      return all.length === 2 ? all : undefined;
    });
    expect(versions.map((v) => v.applied)).toEqual([true, false]);
    const head = await store.resources.head(store.db, SOURCE, 'Patient', 'ordered');
    expect(head?.sourceVersionId).toBe('2');
  });

  it('raises an alert when the sender reports status error', async () => {
    const bundle = simulator.notificationBundle({
      subscriptionId: notifier.subscriptionId,
      shape: 'backport',
      type: 'heartbeat',
      content: 'empty',
      events: [],
      status: 'error',
    });
    const response = await fetch(`${stack.baseUrl}/hooks/${SOURCE}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(bundle),
    });
    expect(response.status).toBe(200);
    const view = await eventually(async () => {
      const found = await store.subscriptions.find(SOURCE, subscription);
      return found?.alert ? found : undefined;
    });
    expect(view.alert).toMatch(/status error/);
    // ...and the operator sees it in the status API.
    const status = await fetch(`${stack.baseUrl}/admin/status?source=${SOURCE}`, {
      headers: { authorization: 'Bearer dev-admin-key' },
    });
    expect(status.status).toBe(200);
    const body = (await status.json()) as {
      alerts: { sourceId: string; subscription: string; alert: string; at: string }[];
    };
    expect(body.alerts.map((a) => [a.sourceId, a.subscription])).toEqual([[SOURCE, subscription]]);
    expect(body.alerts[0].alert).toMatch(/status error/);
    expect(Date.parse(body.alerts[0].at)).not.toBeNaN();
  });

  it('creates a Subscription on the source with its own secret, records the grant, and accepts that secret', async () => {
    const response = await fetch(`${stack.baseUrl}/admin/sources/${SOURCE}/subscriptions`, {
      method: 'POST',
      headers: { authorization: 'Bearer dev-admin-key', 'content-type': 'application/json' },
      body: JSON.stringify({
        profile: 'backport',
        topic: 'http://example.org/fhir/SubscriptionTopic/patient-change',
        content: 'full-resource',
        heartbeatPeriodSeconds: 120,
        endpoint: `${stack.baseUrl}/hooks/${SOURCE}`,
      }),
    });
    expect(response.status).toBe(201);
    const created = (await response.json()) as {
      reference: string;
      subscription: { heartbeatPeriodSeconds: number };
    };
    expect(created.reference).toMatch(/^Subscription\//);
    expect(created.subscription.heartbeatPeriodSeconds).toBe(120);
    const id = created.reference.replace('Subscription/', '');
    const stored = simulator.subscription(id) as { channel: { header: string[] } };
    const [header] = stored.channel.header;
    expect(header).toMatch(/^Authorization: Bearer \S{20,}$/);
    expect(header).not.toContain(TOKEN);
    // The source now notifies with the subscription's own secret, which the bridge accepts.
    const own = simulator.notifier({ subscriptionId: id, endpoint: `${stack.baseUrl}/hooks/${SOURCE}` });
    expect((await own.sendEvent(patient('managed', 'Managed'))).status).toBe(200);
    await eventually(async () => ((await versionsOf('Patient', 'managed')).length === 1 ? true : undefined));
  });

  it('takes the classic shapes: HAPI PUT and DELETE, a Medplum delete, and an empty ping that re-queries the source', async () => {
    const classic = simulator.notifier({
      subscriptionId: notifier.subscriptionId,
      endpoint: `${stack.baseUrl}/hooks/${SOURCE}`,
      headers: [`Authorization: Bearer ${TOKEN}`],
    });
    expect((await classic.sendHapiUpdate(patient('hapi', 'Put'))).status).toBe(200);
    await eventually(async () => ((await versionsOf('Patient', 'hapi')).length === 1 ? true : undefined));
    expect((await classic.sendHapiDelete('Patient', 'hapi')).status).toBe(200);
    const afterDelete = await eventually(async () => {
      const versions = await versionsOf('Patient', 'hapi');
      return versions.length === 2 ? versions : undefined;
    });
    expect(afterDelete[1]).toMatchObject({ interaction: 'delete', content: null });
    expect(afterDelete[1].provenance).toMatchObject({ activity: { coding: [{ code: 'DELETE' }] } });

    await classic.sendMedplum(patient('medplum', 'Bare'));
    await eventually(async () => ((await versionsOf('Patient', 'medplum')).length === 1 ? true : undefined));
    expect((await classic.sendMedplumDelete('Patient', 'medplum')).status).toBe(200);
    await eventually(async () => ((await versionsOf('Patient', 'medplum')).length === 2 ? true : undefined));
    expect((await store.resources.head(store.db, SOURCE, 'Patient', 'medplum'))?.deleted).toBe(true);

    // A change the source made without telling us, then a bare ping: the worker searches the
    // source's known resource types for what changed since it last heard from it.
    simulator.put(patient('pinged', 'FoundBySearch'));
    expect((await classic.sendPing()).status).toBe(200);
    await eventually(async () => ((await versionsOf('Patient', 'pinged')).length === 1 ? true : undefined));
    expect(
      simulator.stats.requests.some((r) => r.path.endsWith('/Patient') && r.query.includes('_lastUpdated')),
    ).toBe(true);
  });

  it('calls $status when a subscription stays silent past its heartbeat', async () => {
    await store.subscriptions.setHeartbeatPeriod(SOURCE, subscription, 1);
    await eventually(
      () =>
        Promise.resolve(simulator.stats.requests.some((r) => r.path.endsWith('/$status')) ? true : undefined),
      15_000,
      'a $status call',
    );
  });
});
