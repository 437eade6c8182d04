import { type ConsistencyProofDocument, parseConsistencyProof } from './consistency-proof';
import { DocumentFields, HEX32, isCount } from './document-fields';
import { type LedgerEventRecord, parseLedgerEventRecord } from './event-record';
import { isHashHex, toHashHex } from './hex-encoding';
import { LedgerError, isLedgerError } from './ledger-error';

/** The `format` tag of version 1 bundles. */
export const PROOF_BUNDLE_FORMAT = 'fhir-trail/proof-bundle@1';

/** Where and how a tree head was anchored on chain. */
export interface AnchorReference {
  /** EIP-155 chain id, decimal, e.g. `"31337"`. */
  readonly chainId: string;
  /** Address of the FhirTrailAnchor contract. */
  readonly contract: string;
  readonly txHash: string;
  readonly blockNumber: number;
  readonly blockHash: string;
  /** Index of the `Anchored` log within its block. */
  readonly logIndex: number;
}

/**
 * Everything needed to check one event offline against a JSON-RPC endpoint (~1 KB of JSON, in the
 * spirit of C2SP tlog-proof and Sigstore bundles). Hashes are `0x`-prefixed lowercase hex. A
 * `pending` bundle has no tree, path, root or anchor yet.
 */
export interface ProofBundle {
  readonly format: typeof PROOF_BUNDLE_FORMAT;
  readonly status: 'pending' | 'anchored';
  readonly event: LedgerEventRecord;
  readonly leafHash: string;
  readonly leafIndex: number | null;
  readonly treeSize: number | null;
  /** RFC 9162 inclusion path of the leaf in the tree of `treeSize` leaves, bottom-up. */
  readonly inclusionPath: readonly string[];
  readonly root: string | null;
  readonly anchor: AnchorReference | null;
  /**
   * Optional: an RFC 9162 consistency proof from an earlier anchored checkpoint to this bundle's
   * head (`toSize` = `treeSize`), for `verify --checkpoint`. Only in anchored bundles.
   */
  readonly consistency?: ConsistencyProofDocument;
}

/** A bundle whose head is on chain: every field is present. */
export interface AnchoredProofBundle extends ProofBundle {
  readonly status: 'anchored';
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly root: string;
  readonly anchor: AnchorReference;
}

const BUNDLE_FIELDS: ReadonlySet<string> = new Set([
  'format',
  'status',
  'event',
  'leafHash',
  'leafIndex',
  'treeSize',
  'inclusionPath',
  'root',
  'anchor',
  'consistency',
]);

/**
 * Builds the bundle of an anchored event from its parts (hashes as bytes, written as 0x-hex).
 * `leafHash` is recomputed by the verifier, so pass the stored one: a mismatch must show.
 */
export function anchoredProofBundle(parts: {
  readonly event: LedgerEventRecord;
  readonly leafHash: Uint8Array;
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly inclusionPath: readonly Uint8Array[];
  readonly root: Uint8Array;
  readonly anchor: AnchorReference;
}): AnchoredProofBundle {
  return {
    format: PROOF_BUNDLE_FORMAT,
    status: 'anchored',
    event: parts.event,
    leafHash: toHashHex(parts.leafHash),
    leafIndex: parts.leafIndex,
    treeSize: parts.treeSize,
    inclusionPath: parts.inclusionPath.map(toHashHex),
    root: toHashHex(parts.root),
    // Pick the fields: an AnchorReceipt (which has more) may be passed as the reference.
    anchor: {
      chainId: parts.anchor.chainId,
      contract: parts.anchor.contract,
      txHash: parts.anchor.txHash,
      blockNumber: parts.anchor.blockNumber,
      blockHash: parts.anchor.blockHash,
      logIndex: parts.anchor.logIndex,
    },
  };
}

/**
 * Checks that `json` (parsed JSON) is a well-formed v1 proof bundle and returns it typed. Throws a
 * {@link LedgerError} with code `INVALID_PROOF_BUNDLE` whose message names the first wrong field
 * and whose `details.field` holds its path (e.g. `anchor.txHash`, `inclusionPath[2]`). It checks
 * shape only; whether the proof holds is {@link verifyProofBundle}'s job.
 */
export function parseProofBundle(json: unknown): ProofBundle {
  const check: DocumentFields = new DocumentFields('INVALID_PROOF_BUNDLE');
  const fail: (field: string, problem: string) => never = (field, problem) => check.fail(field, problem);
  const bundle = check.object(json, 'bundle');
  check.onlyKnown(bundle, BUNDLE_FIELDS, '', 'a proof bundle');
  if (bundle['format'] !== PROOF_BUNDLE_FORMAT) fail('format', `must be "${PROOF_BUNDLE_FORMAT}"`);
  const status = bundle['status'];
  if (status !== 'pending' && status !== 'anchored') fail('status', 'must be "pending" or "anchored"');
  try {
    parseLedgerEventRecord(bundle['event'], 'event');
  } catch (error) {
    if (isLedgerError(error, 'INVALID_EVENT_RECORD')) {
      throw new LedgerError('INVALID_PROOF_BUNDLE', error.message, { cause: error, details: error.details });
    }
    throw error;
  }
  check.hash(bundle['leafHash'], 'leafHash');
  const leafIndex = bundle['leafIndex'];
  if (leafIndex !== null && !isCount(leafIndex)) fail('leafIndex', 'must be null or a non-negative integer');
  const treeSize = bundle['treeSize'];
  if (treeSize !== null && !(isCount(treeSize) && treeSize > 0))
    fail('treeSize', 'must be null or a positive integer');
  const path = check.hashList(bundle['inclusionPath'], 'inclusionPath');
  const root = bundle['root'];
  if (root !== null && !isHashHex(root)) fail('root', `must be null or ${HEX32.replace('must be ', '')}`);
  const anchor = bundle['anchor'];
  if (anchor !== null) check.anchor(anchor, 'anchor');

  if (status === 'anchored') {
    if (leafIndex === null) fail('leafIndex', 'is required when status is "anchored"');
    if (treeSize === null) fail('treeSize', 'is required when status is "anchored"');
    if (root === null) fail('root', 'is required when status is "anchored"');
    if (anchor === null) fail('anchor', 'is required when status is "anchored"');
    if (leafIndex >= treeSize) fail('leafIndex', `must be less than treeSize (${String(treeSize)})`);
  } else {
    if (treeSize !== null) fail('treeSize', 'must be null while status is "pending"');
    if (path.length > 0) fail('inclusionPath', 'must be empty while status is "pending"');
    if (root !== null) fail('root', 'must be null while status is "pending"');
    if (anchor !== null) fail('anchor', 'must be null while status is "pending"');
  }
  if (bundle['consistency'] !== undefined) {
    if (status !== 'anchored') fail('consistency', 'is only allowed when status is "anchored"');
    const consistency = parseConsistencyProof(bundle['consistency'], 'consistency', 'INVALID_PROOF_BUNDLE');
    if (consistency.toSize !== treeSize)
      fail('consistency.toSize', `must equal treeSize (${String(treeSize)})`);
    if (consistency.toRoot !== root) fail('consistency.toRoot', 'must equal root');
  }
  return json as ProofBundle;
}

/** True when a parsed bundle is anchored (and so has every field). */
export function isAnchoredProofBundle(bundle: ProofBundle): bundle is AnchoredProofBundle {
  return bundle.status === 'anchored';
}
