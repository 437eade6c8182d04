import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database';
import { type KeyWrapper, LocalKeyWrapper } from './key-wrapper';
import { PatientKeyDestroyedError, patientKeyContext } from './patient-keys.repository';
import { Store } from './store';

const MASTER_KEY = Buffer.alloc(32, 9);

/**
 * A stand-in for a cloud KMS: wraps with its own key-encryption key, which the store never sees,
 * and records each call (what a KMS audit log would show).
 */
class RecordingKms implements KeyWrapper {
  readonly id = 'test-kms:key-1';
  readonly calls: string[] = [];
  private readonly inner = new LocalKeyWrapper(Buffer.alloc(32, 3));

  wrap(key: Buffer, context: string): Promise<Buffer> {
    this.calls.push(`wrap ${context}`);
    return this.inner.wrap(key, context);
  }

  unwrap(wrapped: Buffer, context: string): Promise<Buffer> {
    this.calls.push(`unwrap ${context}`);
    return this.inner.unwrap(wrapped, context);
  }
}

describe('patient keys on PostgreSQL, wrapped by a pluggable KeyWrapper', () => {
  let database: TestDatabase;
  let store: Store;
  const kms = new RecordingKms();

  beforeAll(async () => {
    database = await createTestDatabase('patient-keys');
    store = await Store.open({
      databaseUrl: database.url,
      masterKey: MASTER_KEY,
      keyWrapper: kms,
      migrate: true,
    });
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  it('wraps and unwraps through the configured wrapper, bound to (source, patient)', async () => {
    const key = await store.patientKeys.getOrCreate('ehr', 'Patient/k1');
    expect(kms.calls).toEqual([`wrap ${patientKeyContext('ehr', 'Patient/k1')}`]);
    await expect(store.patientKeys.find('ehr', 'Patient/k1')).resolves.toEqual({ state: 'active', key });
    expect(kms.calls.at(-1)).toBe(`unwrap ${patientKeyContext('ehr', 'Patient/k1')}`);
    // The master key of the configuration does not open a KMS-wrapped key.
    const row = await store.db
      .selectFrom('patient_keys')
      .select('wrapped_key')
      .where('patient_ref', '=', 'Patient/k1')
      .executeTakeFirstOrThrow();
    await expect(
      new LocalKeyWrapper(MASTER_KEY).unwrap(row.wrapped_key!, patientKeyContext('ehr', 'Patient/k1')),
    ).rejects.toThrow();
    // A wrapped key moved to another patient's row no longer unwraps.
    await store.patientKeys.getOrCreate('ehr', 'Patient/k2');
    await store.db
      .updateTable('patient_keys')
      .set({ wrapped_key: row.wrapped_key })
      .where('patient_ref', '=', 'Patient/k2')
      .execute();
    await expect(store.patientKeys.find('ehr', 'Patient/k2')).rejects.toThrow();
  });

  it('destroys a key under a lock, keeps a tombstone, and refuses it afterwards', async () => {
    await store.patientKeys.getOrCreate('ehr', 'Patient/k3');
    const erasureEventId = randomUUID();
    await store.transaction(async (trx) => {
      const state = await store.patientKeys.lockForErasure(trx, 'ehr', 'Patient/k3');
      expect(state.state).toBe('active');
      await store.patientKeys.destroy(trx, 'ehr', 'Patient/k3', erasureEventId);
    });
    await expect(store.patientKeys.find('ehr', 'Patient/k3')).resolves.toMatchObject({
      state: 'destroyed',
      erasureEventId,
    });
    await expect(store.patientKeys.getOrCreate('ehr', 'Patient/k3')).rejects.toBeInstanceOf(
      PatientKeyDestroyedError,
    );
    await expect(store.patientKeys.find('ehr', 'Patient/nobody')).resolves.toEqual({ state: 'missing' });
  });
});
