import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Wraps and unwraps data keys (per-patient keys) under a key-encryption key the store never holds
 * in the clear when a KMS is used. The default, {@link LocalKeyWrapper}, keeps the master key in
 * process memory (from LEDGER_MASTER_KEY). To use a cloud KMS (AWS KMS `Encrypt`/`Decrypt` with an
 * encryption context, Google Cloud KMS `encrypt`/`decrypt` with additional authenticated data,
 * Azure Key Vault `wrapKey`/`unwrapKey`, or a PKCS#11 HSM), implement this interface with that
 * client — `context` must be bound as associated data / encryption context — and pass it to
 * `Store.open({ keyWrapper })`. Wrapped keys are opaque bytes to the store.
 */
export interface KeyWrapper {
  /** Names the key-encryption key, e.g. `local:aes-256-gcm` or a KMS key ARN (no secret). */
  readonly id: string;
  /** Encrypts `key`, binding `context` (what the key belongs to) as associated data. */
  wrap(key: Buffer, context: string): Promise<Buffer>;
  /** Decrypts what {@link wrap} returned for the same `context`; rejects if either was altered. */
  unwrap(wrapped: Buffer, context: string): Promise<Buffer>;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** AES-256-GCM envelope: iv || tag || ciphertext, the context bound as associated data. */
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

/** The default {@link KeyWrapper}: AES-256-GCM under a 32-byte master key from configuration. */
export class LocalKeyWrapper implements KeyWrapper {
  readonly id = 'local:aes-256-gcm';

  constructor(private readonly masterKey: Buffer) {
    if (masterKey.length !== 32) throw new RangeError('the master key must be 32 bytes (AES-256)');
  }

  // A throw inside the executor becomes a rejection, as a KMS client's would.
  wrap(key: Buffer, context: string): Promise<Buffer> {
    return new Promise((resolve) => resolve(wrapKey(this.masterKey, key, context)));
  }

  unwrap(wrapped: Buffer, context: string): Promise<Buffer> {
    return new Promise((resolve) => resolve(unwrapKey(this.masterKey, wrapped, context)));
  }
}
