import { DocumentFields } from './document-fields';
import { toHashHex } from './hex-encoding';

/** The `format` tag of version 1 consistency proof documents. */
export const CONSISTENCY_PROOF_FORMAT = 'fhir-trail/consistency-proof@1';

/**
 * An RFC 9162 consistency proof between two anchored tree heads, as `GET /ledger/consistency`
 * answers it and as a proof bundle may carry it (`consistency`): the tree of `fromSize` leaves
 * with root `fromRoot` is a prefix of the tree of `toSize` leaves with root `toRoot`. Hashes are
 * `0x`-prefixed lowercase hex. The roots are there for reading; a verifier takes them from the
 * checkpoint and the bundle it trusts, never from this document.
 */
export interface ConsistencyProofDocument {
  readonly format: typeof CONSISTENCY_PROOF_FORMAT;
  readonly fromSize: number;
  readonly fromRoot: string;
  readonly toSize: number;
  readonly toRoot: string;
  /** RFC 9162 §2.1.4 PROOF(fromSize, D[toSize]), bottom-up; empty when the sizes are equal. */
  readonly consistencyPath: readonly string[];
}

const FIELDS: ReadonlySet<string> = new Set([
  'format',
  'fromSize',
  'fromRoot',
  'toSize',
  'toRoot',
  'consistencyPath',
]);
/** RFC 9162 consistency proofs have at most about 2·log2(n) hashes; sizes are below 2^64. */
const MAX_PATH = 130;

/** Builds the document from its parts (hashes as bytes, written as 0x-hex). */
export function consistencyProofDocument(parts: {
  readonly fromSize: number;
  readonly fromRoot: Uint8Array;
  readonly toSize: number;
  readonly toRoot: Uint8Array;
  readonly consistencyPath: readonly Uint8Array[];
}): ConsistencyProofDocument {
  return {
    format: CONSISTENCY_PROOF_FORMAT,
    fromSize: parts.fromSize,
    fromRoot: toHashHex(parts.fromRoot),
    toSize: parts.toSize,
    toRoot: toHashHex(parts.toRoot),
    consistencyPath: parts.consistencyPath.map(toHashHex),
  };
}

/**
 * Checks that `json` is a well-formed v1 consistency proof document and returns it typed. Throws
 * a `LedgerError` with code `INVALID_CONSISTENCY_PROOF` (or `errorCode`) naming the first wrong
 * field (prefixed with `field`, e.g. `consistency.toSize` inside a bundle). Shape only: whether the
 * proof holds is for `verifyConsistency`.
 */
export function parseConsistencyProof(
  json: unknown,
  field = 'consistency proof',
  errorCode: 'INVALID_CONSISTENCY_PROOF' | 'INVALID_PROOF_BUNDLE' = 'INVALID_CONSISTENCY_PROOF',
): ConsistencyProofDocument {
  const check = new DocumentFields(errorCode);
  const document = check.object(json, field);
  const at = (name: string): string => (field === 'consistency proof' ? name : `${field}.${name}`);
  check.onlyKnown(document, FIELDS, at(''), 'a consistency proof');
  if (document['format'] !== CONSISTENCY_PROOF_FORMAT) {
    check.fail(at('format'), `must be "${CONSISTENCY_PROOF_FORMAT}"`);
  }
  const fromSize = check.count(document['fromSize'], at('fromSize'), 1);
  check.hash(document['fromRoot'], at('fromRoot'));
  const toSize = check.count(document['toSize'], at('toSize'), 1);
  check.hash(document['toRoot'], at('toRoot'));
  if (fromSize > toSize) check.fail(at('fromSize'), `must not exceed toSize (${toSize})`);
  const path = check.hashList(document['consistencyPath'], at('consistencyPath'));
  if (path.length > MAX_PATH) check.fail(at('consistencyPath'), `must hold at most ${MAX_PATH} hashes`);
  return json as ConsistencyProofDocument;
}
