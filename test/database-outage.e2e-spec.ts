import type { OperationOutcome } from '@medplum/fhirtypes';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { eventually, TestStack } from './support/test-apps';
import { TcpProxy } from './support/tcp-proxy';

const HEADERS = { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' };

/** A stopped database gives 503s with Retry-After and never a false 200; nothing accepted is lost. */
describe('PostgreSQL unavailable', () => {
  let proxy: TcpProxy;
  let stack: TestStack;
  let store: Store;

  beforeAll(async () => {
    proxy = await TcpProxy.start('127.0.0.1', 5432);
    stack = await TestStack.create('outage', {}, (url) => {
      const viaProxy = new URL(url);
      viaProxy.port = String(proxy.port);
      return viaProxy.toString();
    });
    await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
  });

  afterAll(async () => {
    proxy.restore();
    await stack.close();
    await proxy.close();
  });

  const send = (id: string) =>
    fetch(`${stack.baseUrl}/hooks/demo`, {
      method: 'POST',
      headers: HEADERS,
      body: JSON.stringify({ resourceType: 'Patient', id, meta: { versionId: '1' } }),
    });

  it('answers 503 with Retry-After while the database is down, then accepts again, losing nothing', async () => {
    const accepted: string[] = [];
    const before = await send('before-outage');
    expect(before.status).toBe(200);
    accepted.push(((await before.json()) as OperationOutcome).id!);

    proxy.cut();
    for (let i = 0; i < 5; i++) {
      const response = await send(`during-outage-${i}`);
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      const outcome = (await response.json()) as OperationOutcome;
      expect(outcome.issue?.[0]).toMatchObject({ severity: 'error', code: 'transient' });
    }

    proxy.restore();
    const after = await eventually(async () => {
      const response = await send('after-outage');
      return response.status === 200 ? response : undefined;
    });
    accepted.push(((await after.json()) as OperationOutcome).id!);

    // Every 200 is a committed row that ends processed; no 503'd notification was stored.
    for (const id of accepted) {
      await eventually(
        async () => ((await store.inbox.findStatus(id))?.status === 'done' ? true : undefined),
        20_000,
      );
    }
    const stored = await store.db
      .selectFrom('resource_versions')
      .select('resource_id')
      .orderBy('resource_id')
      .execute();
    expect(stored.map((r) => r.resource_id)).toEqual(['after-outage', 'before-outage']);
  });
});
