import { DocumentFields } from './document-fields';
import { toHashHex } from './hex-encoding';
import type { AnchorReference } from './proof-bundle';

/** The `format` tag of version 1 checkpoint documents. */
export const CHECKPOINT_FORMAT = 'fhir-trail/checkpoint@1';

/**
 * One anchored tree head of the log, as `GET /ledger/checkpoints` lists it. Saved by an auditor,
 * it is the earlier head that a later proof bundle must extend (`verify --checkpoint`). Hashes are
 * `0x`-prefixed lowercase hex. At the first checkpoint `previousSize` is 0 and `previousRoot` the
 * contract's genesis root (zero).
 */
export interface AnchoredCheckpoint {
  readonly format: typeof CHECKPOINT_FORMAT;
  readonly treeSize: number;
  readonly root: string;
  /** The head this one extends, as named in the `anchor()` call. */
  readonly previousSize: number;
  readonly previousRoot: string;
  /** SHA-256 of the batch manifest, as published in the `Anchored` event. */
  readonly manifestHash: string;
  readonly anchor: AnchorReference;
  /** When the bridge recorded the anchor (ISO 8601 UTC); informative, not checked on chain. */
  readonly anchoredAt?: string;
}

const FIELDS: ReadonlySet<string> = new Set([
  'format',
  'treeSize',
  'root',
  'previousSize',
  'previousRoot',
  'manifestHash',
  'anchor',
  'anchoredAt',
]);
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/** Builds a checkpoint document from its parts (hashes as bytes, written as 0x-hex). */
export function anchoredCheckpoint(parts: {
  readonly treeSize: number;
  readonly root: Uint8Array;
  readonly previousSize: number;
  readonly previousRoot: Uint8Array;
  readonly manifestHash: Uint8Array;
  readonly anchor: AnchorReference;
  readonly anchoredAt?: Date;
}): AnchoredCheckpoint {
  return {
    format: CHECKPOINT_FORMAT,
    treeSize: parts.treeSize,
    root: toHashHex(parts.root),
    previousSize: parts.previousSize,
    previousRoot: toHashHex(parts.previousRoot),
    manifestHash: toHashHex(parts.manifestHash),
    // Pick the fields: an AnchorReceipt (which has more) may be passed as the reference.
    anchor: {
      chainId: parts.anchor.chainId,
      contract: parts.anchor.contract,
      txHash: parts.anchor.txHash,
      blockNumber: parts.anchor.blockNumber,
      blockHash: parts.anchor.blockHash,
      logIndex: parts.anchor.logIndex,
    },
    ...(parts.anchoredAt === undefined ? {} : { anchoredAt: parts.anchoredAt.toISOString() }),
  };
}

/**
 * Checks that `json` is a well-formed v1 checkpoint and returns it typed. Throws a `LedgerError`
 * with code `INVALID_CHECKPOINT` whose message names the first wrong field (`details.field`).
 * Shape only: whether it was anchored is `verifyCheckpoint`'s job.
 */
export function parseAnchoredCheckpoint(json: unknown): AnchoredCheckpoint {
  const check = new DocumentFields('INVALID_CHECKPOINT');
  const checkpoint = check.object(json, 'checkpoint');
  check.onlyKnown(checkpoint, FIELDS, '', 'a checkpoint');
  if (checkpoint['format'] !== CHECKPOINT_FORMAT) check.fail('format', `must be "${CHECKPOINT_FORMAT}"`);
  const treeSize = check.count(checkpoint['treeSize'], 'treeSize', 1);
  check.hash(checkpoint['root'], 'root');
  const previousSize = check.count(checkpoint['previousSize'], 'previousSize');
  if (previousSize >= treeSize) check.fail('previousSize', `must be less than treeSize (${treeSize})`);
  check.hash(checkpoint['previousRoot'], 'previousRoot');
  check.hash(checkpoint['manifestHash'], 'manifestHash');
  check.anchor(checkpoint['anchor'], 'anchor');
  const anchoredAt = checkpoint['anchoredAt'];
  if (anchoredAt !== undefined && (typeof anchoredAt !== 'string' || !TIMESTAMP.test(anchoredAt))) {
    check.fail('anchoredAt', 'must be an ISO 8601 UTC timestamp, e.g. 2026-11-25T06:51:00.000Z');
  }
  return json as AnchoredCheckpoint;
}
