import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database';
import type { NewInboxEntry } from './inbox.repository';
import { Store } from './store';

const entry = (body: string, sourceId = 'ehr'): NewInboxEntry => ({
  sourceId,
  method: 'POST',
  path: `/hooks/${sourceId}`,
  contentType: 'application/fhir+json',
  headers: { 'content-type': 'application/fhir+json', 'x-hub-signature': `sha256=${body}` },
  body: Buffer.from(body),
  shape: 'bare-resource',
  notificationType: 'rest-hook',
  eventCount: 1,
});

describe('InboxRepository.insertMany', () => {
  let database: TestDatabase;
  let store: Store;

  beforeAll(async () => {
    database = await createTestDatabase('inbox');
    store = await Store.open({ databaseUrl: database.url, masterKey: Buffer.alloc(32, 7), migrate: true });
    await store.sources.upsert({ id: 'ehr', name: 'EHR', organisation: { display: 'Org' }, token: 's3cret' });
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  it('commits every row in one statement and returns each its own id, in the order given', async () => {
    const bodies = Array.from({ length: 40 }, (_, i) => `{"n":${i}}`);
    const ids = await store.inbox.insertMany(bodies.map((body) => entry(body)));
    expect(ids).toHaveLength(40);
    expect(new Set(ids).size).toBe(40);
    // Monotonic, as bigserial ids are, and each one names the row of its own notification.
    expect(ids.map(Number)).toEqual([...ids.map(Number)].sort((a, b) => a - b));
    for (const [i, id] of ids.entries()) {
      const row = await store.inbox.find(id);
      expect(row?.body.toString()).toBe(bodies[i]);
      expect(row?.headers['x-hub-signature']).toBe(`sha256=${bodies[i]}`);
      expect(row?.status).toBe('received');
    }
    expect(await store.inbox.insertMany([entry('{"alone":true}')])).toHaveLength(1);
    expect(await store.inbox.insertMany([])).toEqual([]);
  });

  it('is atomic: a row the database refuses keeps every row of the statement out', async () => {
    const before = await store.inbox.countByStatus();
    await expect(
      store.inbox.insertMany([entry('{"a":1}'), entry('{"b":2}', 'no-such-source'), entry('{"c":3}')]),
    ).rejects.toThrow();
    expect(await store.inbox.countByStatus()).toEqual(before);
  });
});
