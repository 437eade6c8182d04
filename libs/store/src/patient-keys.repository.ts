import { randomBytes } from 'node:crypto';
import type { StoreDb } from './database';
import type { KeyWrapper } from './key-wrapper';

export { unwrapKey, wrapKey } from './key-wrapper';

/** Raised when a patient's key was destroyed (erasure): their events can no longer be linked. */
/**
 * Key scope of resources outside any Patient compartment (Organizations, Practitioners...): they share
 * one key per source. Every writer of ledger events and the auditor use this one value.
 */
export const SOURCE_KEY_SCOPE = '*';

export class PatientKeyDestroyedError extends Error {
  readonly code = 'PATIENT_KEY_DESTROYED';
  constructor() {
    super('the patient key was destroyed (erasure)');
  }
}

/** A patient key as the verifier sees it: usable, destroyed by an erasure, or never created. */
export type PatientKeyState =
  | { readonly state: 'active'; readonly key: Buffer }
  | { readonly state: 'destroyed'; readonly destroyedAt: Date; readonly erasureEventId: string | null }
  | { readonly state: 'missing' };

/** The associated data a patient key is wrapped with: moving a wrapped key to another row breaks it. */
export function patientKeyContext(sourceId: string, patientRef: string): string {
  return `${sourceId}|${patientRef}`;
}

/**
 * Per-patient keys for pseudonyms and keyed digests, stored only wrapped by a {@link KeyWrapper}
 * (the master key, or a KMS). Destroying a key (crypto-shredding) makes every digest made with it
 * unlinkable; the row stays as a tombstone (`wrapped_key` null, `destroyed_at` set).
 */
export class PatientKeysRepository {
  constructor(
    private readonly db: StoreDb,
    private readonly wrapper: KeyWrapper,
  ) {}

  /** The key for (source, patient), created on first use; throws {@link PatientKeyDestroyedError} after erasure. */
  async getOrCreate(sourceId: string, patientRef: string, db: StoreDb = this.db): Promise<Buffer> {
    const context = patientKeyContext(sourceId, patientRef);
    const existing = await this.find(sourceId, patientRef, db, true);
    if (existing.state === 'active') return existing.key;
    if (existing.state === 'destroyed') throw new PatientKeyDestroyedError();
    const fresh = randomBytes(32);
    const inserted = await db
      .insertInto('patient_keys')
      .values({
        source_id: sourceId,
        patient_ref: patientRef,
        wrapped_key: await this.wrapper.wrap(fresh, context),
      })
      .onConflict((oc) => oc.columns(['source_id', 'patient_ref']).doNothing())
      .returning('source_id')
      .executeTakeFirst();
    if (inserted) return fresh;
    // Another transaction created it meanwhile.
    const raced = await this.find(sourceId, patientRef, db, true);
    if (raced.state === 'active') return raced.key;
    throw new PatientKeyDestroyedError();
  }

  /** The key's state, without creating it. Rejects when a wrapped key no longer unwraps (altered). */
  async find(
    sourceId: string,
    patientRef: string,
    db: StoreDb = this.db,
    lock = false,
  ): Promise<PatientKeyState> {
    const query = db
      .selectFrom('patient_keys')
      .select(['wrapped_key', 'destroyed_at', 'erasure_event_id'])
      .where('source_id', '=', sourceId)
      .where('patient_ref', '=', patientRef);
    // In the caller's transaction, a share lock keeps an erasure waiting until that transaction's
    // versions are committed (and so are erased with the rest).
    const row = await (lock ? query.forShare() : query).executeTakeFirst();
    if (!row) return { state: 'missing' };
    if (!row.wrapped_key) {
      return {
        state: 'destroyed',
        destroyedAt: row.destroyed_at ?? new Date(0),
        erasureEventId: row.erasure_event_id,
      };
    }
    return {
      state: 'active',
      key: await this.wrapper.unwrap(row.wrapped_key, patientKeyContext(sourceId, patientRef)),
    };
  }

  /**
   * Locks the key row for an erasure and returns the key (or its tombstone). Must run in the
   * erasure's transaction, so ingest cannot use the key while it is being destroyed.
   */
  async lockForErasure(trx: StoreDb, sourceId: string, patientRef: string): Promise<PatientKeyState> {
    const row = await trx
      .selectFrom('patient_keys')
      .select('source_id')
      .where('source_id', '=', sourceId)
      .where('patient_ref', '=', patientRef)
      .forUpdate()
      .executeTakeFirst();
    if (!row) return { state: 'missing' };
    return this.find(sourceId, patientRef, trx);
  }

  /** Destroys the key: `wrapped_key` null, the time and the erasure event kept as a tombstone. */
  async destroy(trx: StoreDb, sourceId: string, patientRef: string, erasureEventId: string): Promise<Date> {
    const row = await trx
      .updateTable('patient_keys')
      .set({ wrapped_key: null, destroyed_at: new Date(), erasure_event_id: erasureEventId })
      .where('source_id', '=', sourceId)
      .where('patient_ref', '=', patientRef)
      .returning('destroyed_at')
      .executeTakeFirstOrThrow();
    return row.destroyed_at ?? new Date();
  }
}
