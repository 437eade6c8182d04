import { LedgerError } from './ledger-error';

const HASH_HEX = /^0x[0-9a-f]{64}$/;

/** True when `value` is a 32-byte hash written as `0x`-prefixed lowercase hex (the JSON form). */
export function isHashHex(value: unknown): value is string {
  return typeof value === 'string' && HASH_HEX.test(value);
}

/** Writes a 32-byte hash as `0x`-prefixed lowercase hex. */
export function toHashHex(hash: Uint8Array): string {
  if (hash.length !== 32) {
    throw new LedgerError('INVALID_ARGUMENT', `a hash must be 32 bytes, got ${hash.length}`);
  }
  return `0x${Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('hex')}`;
}

/** Reads a 32-byte hash from `0x`-prefixed lowercase hex; `what` names the value in the error. */
export function fromHashHex(value: string, what = 'hash'): Buffer {
  if (!HASH_HEX.test(value)) {
    throw new LedgerError('INVALID_ARGUMENT', `${what} must be 0x-prefixed lowercase hex of 32 bytes`);
  }
  return Buffer.from(value.slice(2), 'hex');
}
