import { type Provider, type TransactionReceipt, getAddress } from 'ethers';
import { anchorContractInterface } from './anchor-contract';
import { isAnchoredLog } from './anchor-client';
import { type AnchoredCheckpoint, parseAnchoredCheckpoint } from './checkpoint';
import { type ConsistencyProofDocument, parseConsistencyProof } from './consistency-proof';
import { eventLeafHash } from './event-record';
import { fromHashHex, toHashHex } from './hex-encoding';
import { isLedgerError, toLedgerError } from './ledger-error';
import { verifyConsistency, verifyInclusion } from './merkle-proof';
import {
  type AnchorReference,
  type AnchoredProofBundle,
  type ProofBundle,
  parseProofBundle,
} from './proof-bundle';
import { expandProofBundle } from './proof-bundle-compact';

/** The checks of {@link verifyProofBundle}, in the order they run. */
export type ProofCheck =
  | 'format'
  | 'leaf-hash'
  | 'inclusion'
  | 'consistency'
  | 'chain-id'
  | 'contract'
  | 'transaction'
  | 'anchored-event'
  | 'block'
  | 'confirmations'
  | 'earlier-checkpoint';

/** An earlier anchored head that the bundle's head was shown to extend. */
export interface EarlierHead {
  readonly treeSize: number;
  readonly root: string;
  readonly txHash: string;
  readonly blockNumber: number;
  readonly blockHash: string;
}

/** A bundle that checked out, with what was established. */
export interface VerifiedProof {
  readonly verified: true;
  readonly eventId: string;
  readonly kind: string;
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly root: string;
  readonly chainId: string;
  readonly contract: string;
  readonly txHash: string;
  readonly blockNumber: number;
  readonly blockHash: string;
  readonly confirmations: number;
  /** With `earlierCheckpoint`: that head, anchored on chain and consistent with this bundle's head. */
  readonly consistentWith?: EarlierHead;
}

/** A bundle that did not check out: the first failed check and why, in plain words. */
export interface RejectedProof {
  readonly verified: false;
  readonly check: ProofCheck;
  readonly reason: string;
}

export type ProofVerification = VerifiedProof | RejectedProof;

/** A checkpoint that checked out: its head is the one its `Anchored` event published. */
export interface VerifiedCheckpoint {
  readonly verified: true;
  readonly treeSize: number;
  readonly root: string;
  readonly chainId: string;
  readonly contract: string;
  readonly txHash: string;
  readonly blockNumber: number;
  readonly blockHash: string;
  readonly confirmations: number;
}

export type CheckpointVerification = VerifiedCheckpoint | RejectedProof;

export interface VerifyProofBundleOptions {
  /** Blocks required on top of (and including) the anchor's block. Default 0 (being in a canonical block is enough). */
  readonly minConfirmations?: number;
  /** The consortium's anchor contract. When given, a bundle naming another contract is rejected. */
  readonly expectedContract?: string;
  /**
   * An earlier checkpoint (parsed JSON, a `GET /ledger/checkpoints` entry) that the bundle's head
   * must extend: checked with the consistency proof, and itself checked on chain (same chain and
   * contract as the bundle). Needs `consistency` or the bundle's own `consistency` unless the
   * sizes are equal.
   */
  readonly earlierCheckpoint?: unknown;
  /** A consistency proof document (`GET /ledger/consistency`); takes precedence over the bundle's. */
  readonly consistency?: unknown;
}

export interface VerifyCheckpointOptions {
  readonly minConfirmations?: number;
  readonly expectedContract?: string;
}

/**
 * Checks a proof bundle with nothing but a JSON-RPC endpoint: the event record hashes to
 * `leafHash`; the inclusion path leads from it to `root`; the endpoint serves the bundle's chain;
 * the transaction exists, succeeded and was sent to the contract; its log at `logIndex` is that
 * contract's `Anchored(treeSize, root)`; the block matches and is canonical; enough confirmations.
 * With `earlierCheckpoint`, also: the consistency proof shows that the earlier head is a prefix of
 * the bundle's head, and the earlier head was itself anchored (its `Anchored` event, on the same
 * chain and contract). Answers `{ verified: false, check, reason }` for the first check that fails.
 * Throws `CHAIN_UNAVAILABLE` when the endpoint cannot be queried: no answer is not evidence of
 * tampering.
 */
export async function verifyProofBundle(
  bundle: unknown,
  provider: Provider,
  options: VerifyProofBundleOptions = {},
): Promise<ProofVerification> {
  let parsed: ProofBundle;
  try {
    parsed = parseProofBundle(expandProofBundle(bundle)); // v1, or compact v2 expanded to v1
  } catch (error) {
    if (isLedgerError(error, 'INVALID_PROOF_BUNDLE')) {
      return reject('format', `malformed proof bundle: ${error.message}`);
    }
    throw error;
  }
  if (parsed.status !== 'anchored') {
    return reject(
      'format',
      'the event is not anchored yet (status "pending"); fetch the bundle again after the next checkpoint',
    );
  }
  const b = parsed as AnchoredProofBundle;
  let earlier: AnchoredCheckpoint | undefined;
  let consistency: ConsistencyProofDocument | undefined = b.consistency;
  try {
    if (options.earlierCheckpoint !== undefined) {
      earlier = parseAnchoredCheckpoint(options.earlierCheckpoint);
    }
    if (options.consistency !== undefined) {
      consistency = parseConsistencyProof(options.consistency);
    }
  } catch (error) {
    if (isLedgerError(error, 'INVALID_CHECKPOINT')) {
      return reject('format', `malformed earlier checkpoint: ${error.message}`);
    }
    if (isLedgerError(error, 'INVALID_CONSISTENCY_PROOF')) {
      return reject('format', `malformed consistency proof: ${error.message}`);
    }
    throw error;
  }

  if (toHashHex(eventLeafHash(b.event)) !== b.leafHash) {
    return reject('leaf-hash', 'event record does not match leafHash: the record was altered');
  }
  const path = b.inclusionPath.map((h) => fromHashHex(h));
  if (!verifyInclusion(fromHashHex(b.leafHash), b.leafIndex, b.treeSize, path, fromHashHex(b.root))) {
    return reject(
      'inclusion',
      `inclusion path does not lead from leafHash (leaf ${b.leafIndex}) to root in a tree of ${b.treeSize} leaves: the path, index, size or root was altered`,
    );
  }
  const consistent = checkConsistency(b, earlier, consistency);
  if (consistent !== undefined) {
    return consistent;
  }

  try {
    const head = await verifyOnChain(b, b.anchor, provider, options, 'bundle');
    if (!head.verified || earlier === undefined) {
      return head.verified ? { ...proofOf(b), ...head.facts } : head;
    }
    const checkpoint = await verifyOnChain(
      earlier,
      earlier.anchor,
      provider,
      { expectedContract: head.facts.contract },
      'earlier checkpoint',
    );
    if (!checkpoint.verified) {
      return reject('earlier-checkpoint', `the earlier checkpoint: ${checkpoint.reason}`);
    }
    return {
      ...proofOf(b),
      ...head.facts,
      consistentWith: {
        treeSize: earlier.treeSize,
        root: earlier.root,
        txHash: checkpoint.facts.txHash,
        blockNumber: checkpoint.facts.blockNumber,
        blockHash: checkpoint.facts.blockHash,
      },
    };
  } catch (error) {
    throw toLedgerError(error, 'querying the chain');
  }
}

/**
 * Checks one anchored checkpoint (parsed JSON, a `GET /ledger/checkpoints` entry) against a
 * JSON-RPC endpoint: its transaction, its `Anchored(treeSize, root)` event with the same previous
 * size and manifest hash, its block, and enough confirmations. Throws `CHAIN_UNAVAILABLE` when the
 * endpoint cannot be queried.
 */
export async function verifyCheckpoint(
  checkpoint: unknown,
  provider: Provider,
  options: VerifyCheckpointOptions = {},
): Promise<CheckpointVerification> {
  let parsed: AnchoredCheckpoint;
  try {
    parsed = parseAnchoredCheckpoint(checkpoint);
  } catch (error) {
    if (isLedgerError(error, 'INVALID_CHECKPOINT')) {
      return reject('format', `malformed checkpoint: ${error.message}`);
    }
    throw error;
  }
  try {
    const result = await verifyOnChain(parsed, parsed.anchor, provider, options, 'checkpoint');
    return result.verified
      ? { verified: true, treeSize: parsed.treeSize, root: parsed.root, ...result.facts }
      : result;
  } catch (error) {
    throw toLedgerError(error, 'querying the chain');
  }
}

/**
 * The offline part of `--checkpoint`: the earlier head is a prefix of the bundle's head. Without
 * an earlier checkpoint, a consistency proof the bundle carries must still hold for its own roots.
 */
function checkConsistency(
  b: AnchoredProofBundle,
  earlier: AnchoredCheckpoint | undefined,
  document: ConsistencyProofDocument | undefined,
): RejectedProof | undefined {
  const from = earlier ?? (document && { treeSize: document.fromSize, root: document.fromRoot });
  if (from === undefined) {
    return undefined;
  }
  const what =
    earlier === undefined ? 'the head the consistency proof starts from' : 'the earlier checkpoint';
  if (from.treeSize > b.treeSize) {
    return reject(
      'consistency',
      `${what} (${from.treeSize} leaves) is larger than the bundle's head (${b.treeSize} leaves): give a checkpoint no later than the bundle's`,
    );
  }
  let path: Buffer[] = [];
  if (document === undefined) {
    if (from.treeSize !== b.treeSize) {
      return reject(
        'consistency',
        `no consistency proof from ${what} (${from.treeSize} leaves) to the bundle's head (${b.treeSize} leaves): ` +
          `fetch GET /ledger/consistency?from=${from.treeSize}&to=${b.treeSize}`,
      );
    }
  } else {
    if (document.fromSize !== from.treeSize || document.toSize !== b.treeSize) {
      return reject(
        'consistency',
        `the consistency proof goes from ${document.fromSize} to ${document.toSize} leaves, not from ${what}'s ${from.treeSize} to the bundle's ${b.treeSize}`,
      );
    }
    path = document.consistencyPath.map((h) => fromHashHex(h));
  }
  const holds =
    verifyConsistency(from.treeSize, b.treeSize, path, fromHashHex(from.root), fromHashHex(b.root)) &&
    (document === undefined || (document.fromRoot === from.root && document.toRoot === b.root));
  if (!holds) {
    return reject(
      'consistency',
      `the consistency proof does not show that ${what} (${from.treeSize} leaves, root ${from.root}) is a prefix of ` +
        `the bundle's head (${b.treeSize} leaves, root ${b.root}): the checkpoint, the proof or the bundle's head was altered, or the log was rewritten`,
    );
  }
  return undefined;
}

/** What the chain established about an anchored head. */
interface OnChainFacts {
  readonly chainId: string;
  readonly contract: string;
  readonly txHash: string;
  readonly blockNumber: number;
  readonly blockHash: string;
  readonly confirmations: number;
}

/** A head to find on chain; a checkpoint also names its predecessor's size and its manifest. */
interface AnchoredHead {
  readonly treeSize: number;
  readonly root: string;
  readonly previousSize?: number;
  readonly manifestHash?: string;
}

async function verifyOnChain(
  head: AnchoredHead,
  anchor: AnchorReference,
  provider: Provider,
  options: VerifyCheckpointOptions,
  what: 'bundle' | 'checkpoint' | 'earlier checkpoint',
): Promise<{ verified: true; facts: OnChainFacts } | RejectedProof> {
  const chainId = (await provider.getNetwork()).chainId.toString();
  if (chainId !== anchor.chainId) {
    return reject(
      'chain-id',
      `the RPC endpoint serves chain ${chainId}, but the ${what} was anchored on chain ${anchor.chainId}`,
    );
  }
  const contract = getAddress(anchor.contract.toLowerCase());
  if (
    options.expectedContract !== undefined &&
    getAddress(options.expectedContract.toLowerCase()) !== contract
  ) {
    const expected = getAddress(options.expectedContract.toLowerCase());
    return reject(
      'contract',
      what === 'earlier checkpoint'
        ? `the earlier checkpoint names contract ${contract}, not the bundle's anchor contract ${expected}`
        : `the ${what} names contract ${contract}, not the expected anchor contract ${expected}`,
    );
  }

  const receipt: TransactionReceipt | null = await provider.getTransactionReceipt(anchor.txHash);
  if (receipt === null) {
    return reject('transaction', `transaction ${anchor.txHash} was not found on chain ${chainId}`);
  }
  if (receipt.status !== 1) {
    return reject('transaction', `transaction ${anchor.txHash} failed (reverted), so it anchored nothing`);
  }
  if (receipt.to === null || receipt.to.toLowerCase() !== contract.toLowerCase()) {
    return reject(
      'transaction',
      `transaction ${anchor.txHash} was sent to ${receipt.to ?? 'no contract'}, not to ${contract}`,
    );
  }

  const log = receipt.logs.find((l) => l.index === anchor.logIndex);
  if (log === undefined) {
    return reject('anchored-event', `transaction ${anchor.txHash} has no log at index ${anchor.logIndex}`);
  }
  if (!isAnchoredLog(log, contract)) {
    return reject('anchored-event', `log ${anchor.logIndex} is not an Anchored event of ${contract}`);
  }
  const args = anchorContractInterface.parseLog(log)?.args;
  const anchoredSize = String(args?.getValue('treeSize'));
  const anchoredRoot = String(args?.getValue('root')).toLowerCase();
  if (anchoredSize !== String(head.treeSize) || anchoredRoot !== head.root) {
    return reject(
      'anchored-event',
      `the Anchored event publishes tree size ${anchoredSize} with root ${anchoredRoot}, not the ${what}'s size ${head.treeSize} with root ${head.root}`,
    );
  }
  if (head.previousSize !== undefined && head.manifestHash !== undefined) {
    const previousSize = String(args?.getValue('previousSize'));
    const manifestHash = String(args?.getValue('manifestHash')).toLowerCase();
    if (previousSize !== String(head.previousSize) || manifestHash !== head.manifestHash) {
      return reject(
        'anchored-event',
        `the Anchored event names previous size ${previousSize} and manifest ${manifestHash}, not the ${what}'s ${head.previousSize} and ${head.manifestHash}`,
      );
    }
  }

  if (receipt.blockNumber !== anchor.blockNumber || receipt.blockHash !== anchor.blockHash) {
    return reject(
      'block',
      `the transaction is in block ${receipt.blockNumber} (${receipt.blockHash}), not in the ${what}'s block ${anchor.blockNumber} (${anchor.blockHash})`,
    );
  }
  const [block, latest] = await Promise.all([
    provider.getBlock(anchor.blockNumber),
    provider.getBlockNumber(),
  ]);
  if (block?.hash !== anchor.blockHash) {
    return reject(
      'block',
      `block ${anchor.blockNumber} on the canonical chain is not ${anchor.blockHash} (reorganised away?)`,
    );
  }
  const confirmations = latest - anchor.blockNumber + 1;
  const required = options.minConfirmations ?? 0;
  if (confirmations < required) {
    return reject(
      'confirmations',
      `the anchor has ${confirmations} confirmation(s), fewer than the ${required} required`,
    );
  }
  return {
    verified: true,
    facts: {
      chainId,
      contract,
      txHash: anchor.txHash,
      blockNumber: anchor.blockNumber,
      blockHash: anchor.blockHash,
      confirmations,
    },
  };
}

function proofOf(b: AnchoredProofBundle): Omit<VerifiedProof, keyof OnChainFacts> {
  return {
    verified: true,
    eventId: b.event.eventId,
    kind: b.event.kind,
    leafIndex: b.leafIndex,
    treeSize: b.treeSize,
    root: b.root,
  };
}

function reject(check: ProofCheck, reason: string): RejectedProof {
  return { verified: false, check, reason };
}
