import { getAddress } from 'ethers';
import type { ConsistencyProofDocument } from './consistency-proof';
import { type LedgerEventRecord, eventLeafHash } from './event-record';
import { toHashHex } from './hex-encoding';
import { LedgerError } from './ledger-error';
import { rootFromInclusionPath } from './merkle-proof';
import { type AnchoredProofBundle, PROOF_BUNDLE_FORMAT } from './proof-bundle';

/** The `f` tag of compact (version 2) bundles. */
export const COMPACT_PROOF_BUNDLE_FORMAT = 'fhir-trail/proof-bundle@2';

/**
 * An anchored proof bundle in its compact form (~1.4 KB at 10^6 leaves instead of ~2.4 KB): the
 * event record as JSON (it is what gets hashed), and everything else as one base64url string `p`
 * of raw bytes. What the verifier can recompute is left out: the leaf hash (from the record) and
 * the root (from the record, the index, the size and the path — then checked against the root the
 * `Anchored` event published). {@link expandProofBundle} turns it back into the v1 form exactly.
 *
 * `p` holds, in order: leaf index, tree size, chain id (unsigned LEB128 varints); the contract
 * address (20 bytes); the transaction hash (32); the block number (varint); the block hash (32);
 * the log index (varint); then the inclusion path, 32 bytes per hash, bottom-up.
 */
export interface CompactProofBundle {
  readonly f: typeof COMPACT_PROOF_BUNDLE_FORMAT;
  readonly e: LedgerEventRecord;
  readonly p: string;
  /** Optional consistency proof document, as in v1 bundles. */
  readonly c?: ConsistencyProofDocument;
}

/** The compact form of an anchored bundle (v1 in, v2 out; the v1 form stays valid everywhere). */
export function compactProofBundle(bundle: AnchoredProofBundle): CompactProofBundle {
  const { anchor } = bundle;
  const bytes = Buffer.concat([
    varint(BigInt(bundle.leafIndex)),
    varint(BigInt(bundle.treeSize)),
    varint(BigInt(anchor.chainId)),
    hexBytes(anchor.contract, 20),
    hexBytes(anchor.txHash, 32),
    varint(BigInt(anchor.blockNumber)),
    hexBytes(anchor.blockHash, 32),
    varint(BigInt(anchor.logIndex)),
    ...bundle.inclusionPath.map((h) => hexBytes(h, 32)),
  ]);
  return {
    f: COMPACT_PROOF_BUNDLE_FORMAT,
    e: bundle.event,
    p: bytes.toString('base64url'),
    ...(bundle.consistency === undefined ? {} : { c: bundle.consistency }),
  };
}

/** True for a document that says it is a compact bundle (well-formed or not). */
export function isCompactProofBundle(json: unknown): boolean {
  return (
    typeof json === 'object' && json !== null && (json as { f?: unknown }).f === COMPACT_PROOF_BUNDLE_FORMAT
  );
}

/**
 * The v1 form of a compact bundle; any other document is returned as it is, so callers can pass
 * whatever they read (v1 bundles keep working). Throws `INVALID_PROOF_BUNDLE` (with `details.field`)
 * when a compact bundle is malformed. The result still goes through `parseProofBundle`.
 */
export function expandProofBundle(json: unknown): unknown {
  if (!isCompactProofBundle(json)) return json;
  const compact = json as Record<string, unknown>;
  const unknownField = Object.keys(compact).find((k) => !['f', 'e', 'p', 'c'].includes(k));
  if (unknownField !== undefined) fail(unknownField, 'is not a field of a compact proof bundle');
  const encoded = compact['p'];
  if (typeof encoded !== 'string' || !/^[A-Za-z0-9_-]+$/.test(encoded)) fail('p', 'must be base64url');
  const reader = new ByteReader(Buffer.from(encoded, 'base64url'));
  const leafIndex = reader.count('leaf index');
  const treeSize = reader.count('tree size');
  const chainId = reader.varint('chain id');
  const contract = getAddress(reader.hex(20, 'contract'));
  const txHash = reader.hex(32, 'transaction hash');
  const blockNumber = reader.count('block number');
  const blockHash = reader.hex(32, 'block hash');
  const logIndex = reader.count('log index');
  const path = reader.hashes();
  let leaf: Buffer;
  try {
    leaf = eventLeafHash(compact['e'] as LedgerEventRecord);
  } catch (error) {
    throw new LedgerError('INVALID_PROOF_BUNDLE', 'e: not an event record', {
      cause: error,
      details: { field: 'e' },
    });
  }
  // A path that fits no tree of this size yields no root: keep the bundle checkable, so the
  // verifier reports the failed inclusion check rather than a format error.
  const root = rootFromInclusionPath(leaf, leafIndex, treeSize, path) ?? Buffer.alloc(32);
  const expanded: Record<string, unknown> = {
    format: PROOF_BUNDLE_FORMAT,
    status: 'anchored',
    event: compact['e'],
    leafHash: toHashHex(leaf),
    leafIndex,
    treeSize,
    inclusionPath: path.map(toHashHex),
    root: toHashHex(root),
    anchor: {
      chainId: chainId.toString(),
      contract,
      txHash,
      blockNumber,
      blockHash,
      logIndex,
    },
  };
  if (compact['c'] !== undefined) expanded['consistency'] = compact['c'];
  return expanded;
}

function fail(field: string, problem: string): never {
  throw new LedgerError('INVALID_PROOF_BUNDLE', `${field}: ${problem}`, { details: { field } });
}

/** Unsigned LEB128. */
function varint(value: bigint): Buffer {
  const out: number[] = [];
  let v = value;
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

function hexBytes(hex: string, size: number): Buffer {
  const bytes = Buffer.from(hex.replace(/^0x/, ''), 'hex');
  if (bytes.length !== size) {
    throw new LedgerError('INVALID_ARGUMENT', `expected ${size} bytes of hex, got ${bytes.length}`);
  }
  return bytes;
}

class ByteReader {
  private offset = 0;

  constructor(private readonly bytes: Buffer) {}

  varint(what: string): bigint {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.offset >= this.bytes.length) fail('p', `ends inside the ${what}`);
      const byte = this.bytes[this.offset];
      this.offset += 1;
      value |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value;
    }
    return fail('p', `the ${what} is too long`);
  }

  count(what: string): number {
    const value = this.varint(what);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail('p', `the ${what} is too large`);
    return Number(value);
  }

  hex(size: number, what: string): string {
    if (this.offset + size > this.bytes.length) fail('p', `ends inside the ${what}`);
    const hex = `0x${this.bytes.subarray(this.offset, this.offset + size).toString('hex')}`;
    this.offset += size;
    return hex;
  }

  /** The rest: whole 32-byte hashes. */
  hashes(): Buffer[] {
    const rest = this.bytes.length - this.offset;
    if (rest % 32 !== 0) fail('p', 'the inclusion path is not a whole number of 32-byte hashes');
    const out: Buffer[] = [];
    for (let at = this.offset; at < this.bytes.length; at += 32) out.push(this.bytes.subarray(at, at + 32));
    return out;
  }
}
