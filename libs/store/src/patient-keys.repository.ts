import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { StoreDb } from './database';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** AES-256-GCM envelope: iv || tag || ciphertext, the source and patient bound as associated data. */
export function wrapKey(masterKey: Buffer, key: Buffer, context: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', masterKey, iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(key), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]);
}

export function unwrapKey(masterKey: Buffer, wrapped: Buffer, context: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', masterKey, wrapped.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(context, 'utf8'));
  decipher.setAuthTag(wrapped.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(wrapped.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
}

/** Raised when a patient's key was destroyed (erasure): their events can no longer be linked. */
export class PatientKeyDestroyedError extends Error {
  readonly code = 'PATIENT_KEY_DESTROYED';
  constructor() {
    super('the patient key was destroyed (erasure)');
  }
}

/**
 * Per-patient keys for pseudonyms and keyed digests, stored only wrapped under the master key.
 * Destroying a key (crypto-shredding) makes every digest made with it unlinkable.
 */
export class PatientKeysRepository {
  constructor(
    private readonly db: StoreDb,
    private readonly masterKey: Buffer,
  ) {}

  /** The key for (source, patient), created on first use. */
  async getOrCreate(sourceId: string, patientRef: string, db: StoreDb = this.db): Promise<Buffer> {
    const context = `${sourceId}|${patientRef}`;
    const fresh = randomBytes(32);
    const inserted = await db
      .insertInto('patient_keys')
      .values({
        source_id: sourceId,
        patient_ref: patientRef,
        wrapped_key: wrapKey(this.masterKey, fresh, context),
      })
      .onConflict((oc) => oc.columns(['source_id', 'patient_ref']).doNothing())
      .returning('source_id')
      .executeTakeFirst();
    if (inserted) return fresh;
    const row = await db
      .selectFrom('patient_keys')
      .select('wrapped_key')
      .where('source_id', '=', sourceId)
      .where('patient_ref', '=', patientRef)
      .executeTakeFirstOrThrow();
    if (!row.wrapped_key) throw new PatientKeyDestroyedError();
    return unwrapKey(this.masterKey, row.wrapped_key, context);
  }
}
