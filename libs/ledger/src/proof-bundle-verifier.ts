import { type Provider, type TransactionReceipt, getAddress } from 'ethers';
import { anchorContractInterface } from './anchor-contract';
import { isAnchoredLog } from './anchor-client';
import { eventLeafHash } from './event-record';
import { fromHashHex, toHashHex } from './hex-encoding';
import { isLedgerError, toLedgerError } from './ledger-error';
import { verifyInclusion } from './merkle-proof';
import { type AnchoredProofBundle, type ProofBundle, parseProofBundle } from './proof-bundle';

/** The checks of {@link verifyProofBundle}, in the order they run. */
export type ProofCheck =
  | 'format'
  | 'leaf-hash'
  | 'inclusion'
  | 'chain-id'
  | 'contract'
  | 'transaction'
  | 'anchored-event'
  | 'block'
  | 'confirmations';

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
}

/** A bundle that did not check out: the first failed check and why, in plain words. */
export interface RejectedProof {
  readonly verified: false;
  readonly check: ProofCheck;
  readonly reason: string;
}

export type ProofVerification = VerifiedProof | RejectedProof;

export interface VerifyProofBundleOptions {
  /** Blocks required on top of (and including) the anchor's block. Default 0 (being in a canonical block is enough). */
  readonly minConfirmations?: number;
  /** The consortium's anchor contract. When given, a bundle naming another contract is rejected. */
  readonly expectedContract?: string;
}

/**
 * Checks a proof bundle with nothing but a JSON-RPC endpoint: the event record hashes to
 * `leafHash`; the inclusion path leads from it to `root`; the endpoint serves the bundle's chain;
 * the transaction exists, succeeded and was sent to the contract; its log at `logIndex` is that
 * contract's `Anchored(treeSize, root)`; the block matches and is canonical; enough confirmations.
 * Answers `{ verified: false, check, reason }` for the first check that fails. Throws
 * `CHAIN_UNAVAILABLE` when the endpoint cannot be queried: no answer is not evidence of tampering.
 */
export async function verifyProofBundle(
  bundle: unknown,
  provider: Provider,
  options: VerifyProofBundleOptions = {},
): Promise<ProofVerification> {
  let parsed: ProofBundle;
  try {
    parsed = parseProofBundle(bundle);
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

  try {
    return await verifyOnChain(b, provider, options);
  } catch (error) {
    throw toLedgerError(error, 'querying the chain');
  }
}

async function verifyOnChain(
  b: AnchoredProofBundle,
  provider: Provider,
  options: VerifyProofBundleOptions,
): Promise<ProofVerification> {
  const anchor = b.anchor;
  const chainId = (await provider.getNetwork()).chainId.toString();
  if (chainId !== anchor.chainId) {
    return reject(
      'chain-id',
      `the RPC endpoint serves chain ${chainId}, but the bundle was anchored on chain ${anchor.chainId}`,
    );
  }
  const contract = getAddress(anchor.contract.toLowerCase());
  if (
    options.expectedContract !== undefined &&
    getAddress(options.expectedContract.toLowerCase()) !== contract
  ) {
    return reject(
      'contract',
      `the bundle names contract ${contract}, not the expected anchor contract ${getAddress(options.expectedContract.toLowerCase())}`,
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
  const size: unknown = args?.getValue('treeSize');
  const root: unknown = args?.getValue('root');
  const anchoredSize = String(size);
  const anchoredRoot = String(root).toLowerCase();
  if (anchoredSize !== String(b.treeSize) || anchoredRoot !== b.root) {
    return reject(
      'anchored-event',
      `the Anchored event publishes tree size ${anchoredSize} with root ${anchoredRoot}, not the bundle's size ${b.treeSize} with root ${b.root}`,
    );
  }

  if (receipt.blockNumber !== anchor.blockNumber || receipt.blockHash !== anchor.blockHash) {
    return reject(
      'block',
      `the transaction is in block ${receipt.blockNumber} (${receipt.blockHash}), not in the bundle's block ${anchor.blockNumber} (${anchor.blockHash})`,
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
    eventId: b.event.eventId,
    kind: b.event.kind,
    leafIndex: b.leafIndex,
    treeSize: b.treeSize,
    root: b.root,
    chainId,
    contract,
    txHash: anchor.txHash,
    blockNumber: anchor.blockNumber,
    blockHash: anchor.blockHash,
    confirmations,
  };
}

function reject(check: ProofCheck, reason: string): RejectedProof {
  return { verified: false, check, reason };
}
