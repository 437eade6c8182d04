import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database';
import { PatientKeyDestroyedError, unwrapKey, wrapKey } from './patient-keys.repository';
import { Store } from './store';

const MASTER_KEY = Buffer.alloc(32, 7);

describe('Store on PostgreSQL', () => {
  let database: TestDatabase;
  let store: Store;

  beforeAll(async () => {
    database = await createTestDatabase('store');
    store = await Store.open({ databaseUrl: database.url, masterKey: MASTER_KEY, migrate: true });
    await store.sources.upsert({ id: 'ehr', name: 'EHR', organisation: { display: 'Org' }, token: 's3cret' });
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  it('runs migrations idempotently', async () => {
    const again = await Store.open({ databaseUrl: database.url, masterKey: MASTER_KEY, migrate: true });
    await again.close();
    const head = await store.ledger.head();
    expect(head.treeSize).toBe(0);
    // RFC 9162: the empty tree's root is SHA-256 of the empty string.
    expect(head.root.toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });

  it('stores only a hash of source secrets', async () => {
    const source = await store.sources.findById('ehr');
    expect(source?.tokenSha256).toHaveLength(32);
    const raw = await store.db
      .selectFrom('sources')
      .selectAll()
      .where('id', '=', 'ehr')
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(raw)).not.toContain('s3cret');
  });

  it('relays only rows that are still pending and not recently enqueued', async () => {
    const id = await store.inbox.insert({
      sourceId: 'ehr',
      method: 'POST',
      path: '/hooks/ehr',
      headers: {},
      body: Buffer.from('{}'),
      shape: 'bare-resource',
      notificationType: 'rest-hook',
      eventCount: 1,
    });
    expect(await store.inbox.claimForRelay(new Date(Date.now() - 60_000), 10)).not.toContain(id);
    expect(await store.inbox.claimForRelay(new Date(Date.now() + 1_000), 10)).toContain(id);
    await store.transaction(async (trx) => {
      expect(await store.inbox.lockForProcessing(trx, id)).toMatchObject({ id, attempts: 1 });
      await store.inbox.finish(trx, id, 'done');
    });
    expect(await store.inbox.claimForRelay(new Date(Date.now() + 1_000), 10)).not.toContain(id);
    await store.transaction(async (trx) => {
      expect(await store.inbox.lockForProcessing(trx, id)).toBeUndefined();
    });
  });

  it('relays around a row an ingest transaction holds, without waiting for it', async () => {
    const entry = {
      sourceId: 'ehr',
      method: 'POST',
      path: '/hooks/ehr',
      headers: {},
      body: Buffer.from('{}'),
      shape: 'bare-resource',
      notificationType: 'rest-hook',
      eventCount: 1,
    };
    const held = await store.inbox.insert(entry);
    const free = await store.inbox.insert(entry);
    await store.transaction(async (trx) => {
      expect(await store.inbox.lockForProcessing(trx, held)).toMatchObject({ id: held });
      // On another connection, while the row is locked: the relay must skip it, not block on it.
      // (Were it blocked, the failed expectation rolls this transaction back and frees it.)
      const relayed = await Promise.race([
        store.inbox.claimForRelay(new Date(Date.now() + 1_000), 10),
        new Promise<'blocked'>((resolve) => setTimeout(() => resolve('blocked'), 2_000).unref()),
      ]);
      expect(relayed).not.toBe('blocked');
      expect(relayed).toContain(free);
      expect(relayed).not.toContain(held);
      await store.inbox.finish(trx, held, 'done');
    });
    expect(await store.inbox.claimForRelay(new Date(Date.now() + 1_000), 10)).not.toContain(held);
  });

  it('numbers versions per resource without gaps under concurrent writers', async () => {
    const inboxId = await store.inbox.insert({
      sourceId: 'ehr',
      method: 'POST',
      path: '/hooks/ehr',
      headers: {},
      body: Buffer.from('{}'),
      shape: 'bare-resource',
      notificationType: 'rest-hook',
      eventCount: 10,
    });
    const versions = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store.transaction((trx) =>
          store.resources.insertVersion(trx, {
            sourceId: 'ehr',
            resourceType: 'Patient',
            resourceId: 'p1',
            interaction: 'update',
            content: { resourceType: 'Patient', id: 'p1' },
            inboxId,
            entryIndex: i,
            recordedAt: new Date(),
          }),
        ),
      ),
    );
    expect(versions.map((v) => v.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('keeps patient keys wrapped, stable per patient, and refuses destroyed ones', async () => {
    const first = await store.patientKeys.getOrCreate('ehr', 'Patient/p1');
    const second = await store.patientKeys.getOrCreate('ehr', 'Patient/p1');
    const other = await store.patientKeys.getOrCreate('ehr', 'Patient/p2');
    expect(second.equals(first)).toBe(true);
    expect(other.equals(first)).toBe(false);
    const row = await store.db
      .selectFrom('patient_keys')
      .select('wrapped_key')
      .where('patient_ref', '=', 'Patient/p1')
      .executeTakeFirstOrThrow();
    expect(row.wrapped_key?.includes(first)).toBe(false);
    await store.db
      .updateTable('patient_keys')
      .set({ wrapped_key: null })
      .where('patient_ref', '=', 'Patient/p2')
      .execute();
    await expect(store.patientKeys.getOrCreate('ehr', 'Patient/p2')).rejects.toBeInstanceOf(
      PatientKeyDestroyedError,
    );
  });

  it('binds a wrapped key to its patient', () => {
    const key = Buffer.alloc(32, 1);
    const wrapped = wrapKey(MASTER_KEY, key, 'ehr|Patient/a');
    expect(unwrapKey(MASTER_KEY, wrapped, 'ehr|Patient/a').equals(key)).toBe(true);
    expect(() => unwrapKey(MASTER_KEY, wrapped, 'ehr|Patient/b')).toThrow();
  });
});
