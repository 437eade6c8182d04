import {
  type Log,
  type Provider,
  type Signer,
  type TransactionReceipt,
  Wallet,
  ZeroHash,
  getAddress,
  hexlify,
  isError,
  toBeHex,
  zeroPadValue,
} from 'ethers';
import { ANCHORED_EVENT_TOPIC, anchorContractInterface } from './anchor-contract';
import { LedgerError, toLedgerError } from './ledger-error';
import { EMPTY_TREE_ROOT_HEX } from './merkle-hash';
import { sendRawTransaction } from './transaction-sender';

/** A 32-byte hash: `0x`-hex or bytes. */
export type HashInput = string | Uint8Array;

/** A tree head as the contract holds it. The genesis head is (0, 0x00…00). */
export interface TreeHead {
  readonly treeSize: number;
  /** `0x`-prefixed lowercase hex. */
  readonly root: string;
}

/** The head to publish and the head it extends. */
export interface AnchorHeadRequest {
  readonly treeSize: number;
  readonly root: HashInput;
  readonly previousSize: number;
  /** Root of the previous anchored head. For previousSize 0, the empty-tree root or zero (both mean genesis). */
  readonly previousRoot: HashInput;
  /** Hash of the off-chain batch manifest (what was anchored and why). */
  readonly manifestHash: HashInput;
}

/** Where a head was anchored: what a checkpoint and a proof bundle record. */
export interface AnchorReceipt {
  /** Decimal chain id. */
  readonly chainId: string;
  /** EIP-55 address of the anchor contract. */
  readonly contract: string;
  readonly txHash: string;
  readonly blockNumber: number;
  readonly blockHash: string;
  /** Index of the `Anchored` log within its block. */
  readonly logIndex: number;
  readonly gasUsed: number;
  /** True when the head was already on chain (an earlier attempt landed) and nothing was sent. */
  readonly recovered: boolean;
}

export interface AnchorClientOptions {
  readonly provider: Provider;
  /** Signs anchor transactions locally (a `Wallet`); or give `privateKey`. */
  readonly signer?: Signer;
  readonly privateKey?: string;
  readonly contractAddress: string;
  /** Fixed gas limit of `anchor()` (default 150,000). */
  readonly gasLimit?: bigint;
  readonly receiptPollIntervalMs?: number;
  readonly receiptTimeoutMs?: number;
  /** Blocks on top of (and including) the anchor's block before `anchorHead` returns; 1 = mined. */
  readonly confirmations?: number;
  /** First block to search for earlier `Anchored` logs (the deployment block); default 0. */
  readonly fromBlock?: number;
}

/**
 * `anchor()` uses about 72k gas the first time (zero-to-nonzero slots) and about 38k after; a
 * fixed limit with headroom saves an estimateGas round trip, and unused gas is not charged.
 */
const DEFAULT_ANCHOR_GAS_LIMIT = 150_000n;
/** Automine (anvil) and QBFT (Besu, ~1-2 s blocks) answer quickly; poll often, give up after 2 min. */
const DEFAULT_RECEIPT_POLL_MS = 25;
const DEFAULT_RECEIPT_TIMEOUT_MS = 120_000;

/**
 * Publishes tree heads on the FhirTrailAnchor contract. Anchors from one client are serialised
 * (one writer per signing key); each is idempotent: if the requested head is already the
 * contract's head, the earlier `Anchored` event is returned instead of sending again.
 */
export class AnchorClient {
  /** EIP-55 address of the contract. */
  readonly contractAddress: string;
  private readonly provider: Provider;
  private readonly signer: Signer;
  private readonly gasLimit: bigint;
  private readonly polling: { pollIntervalMs: number; timeoutMs: number; confirmations: number };
  private readonly fromBlock: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: AnchorClientOptions) {
    this.provider = options.provider;
    if (options.signer !== undefined) {
      this.signer = options.signer;
    } else if (options.privateKey !== undefined) {
      this.signer = new Wallet(options.privateKey, options.provider);
    } else {
      throw new LedgerError('INVALID_ARGUMENT', 'AnchorClient needs a signer or a privateKey');
    }
    this.contractAddress = getAddress(options.contractAddress);
    this.gasLimit = options.gasLimit ?? DEFAULT_ANCHOR_GAS_LIMIT;
    this.polling = {
      pollIntervalMs: options.receiptPollIntervalMs ?? DEFAULT_RECEIPT_POLL_MS,
      timeoutMs: options.receiptTimeoutMs ?? DEFAULT_RECEIPT_TIMEOUT_MS,
      confirmations: options.confirmations ?? 1,
    };
    this.fromBlock = options.fromBlock ?? 0;
  }

  /** The contract's current head, both values read at the same block. */
  async currentHead(): Promise<TreeHead> {
    try {
      const blockTag = await this.provider.getBlockNumber();
      const [size, root] = await Promise.all([
        this.callView('treeSize', blockTag),
        this.callView('rootHash', blockTag),
      ]);
      return { treeSize: toSafeNumber(size, 'treeSize'), root: String(root).toLowerCase() };
    } catch (error) {
      throw toLedgerError(error, 'reading the anchored head');
    }
  }

  /**
   * Publishes `request.treeSize`/`request.root` as the new head, extending the previous head.
   * Sends one transaction (explicit nonce, fixed gas, raw send, receipt polling) unless the head is
   * already on chain, in which case the earlier anchor is returned (`recovered: true`).
   * Throws {@link LedgerError}: `ANCHOR_REJECTED` (the contract refuses: `details.revert` is
   * `HeadDoesNotExtend`, `PreviousHeadMismatch`, `EmptyRoot`, `EnforcedPause` or
   * `AccessControlUnauthorizedAccount`), retryable `CHAIN_UNAVAILABLE`/`RECEIPT_TIMEOUT`/`NONCE_CONFLICT`.
   */
  anchorHead(request: AnchorHeadRequest): Promise<AnchorReceipt> {
    const run = this.queue.then(() => this.anchorOnce(request));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The `Anchored` event that published (treeSize, root), or null when there is none. */
  async findAnchor(treeSize: number, root: HashInput): Promise<AnchorReceipt | null> {
    const rootHex = toHash(root, 'root');
    let logs: Log[];
    try {
      logs = await this.provider.getLogs({
        address: this.contractAddress,
        topics: [ANCHORED_EVENT_TOPIC, zeroPadValue(toBeHex(treeSize), 32), rootHex],
        fromBlock: this.fromBlock,
        toBlock: 'latest',
      });
    } catch (error) {
      throw toLedgerError(error, 'searching Anchored events');
    }
    const log = logs.find((l) => !l.removed);
    if (log === undefined) {
      return null;
    }
    let receipt: TransactionReceipt | null;
    try {
      receipt = await this.provider.getTransactionReceipt(log.transactionHash);
    } catch (error) {
      throw toLedgerError(error, 'reading the receipt of an earlier anchor');
    }
    if (receipt === null) {
      throw new LedgerError(
        'UNEXPECTED_CHAIN_DATA',
        `no receipt for anchor transaction ${log.transactionHash}`,
      );
    }
    return this.toAnchorReceipt(receipt, log, true);
  }

  private async anchorOnce(request: AnchorHeadRequest): Promise<AnchorReceipt> {
    const newRoot = toHash(request.root, 'root');
    const manifestHash = toHash(request.manifestHash, 'manifestHash');
    requireSize(request.treeSize, 'treeSize');
    requireSize(request.previousSize, 'previousSize');
    let previousRoot = toHash(request.previousRoot, 'previousRoot');
    if (request.previousSize === 0 && previousRoot === EMPTY_TREE_ROOT_HEX) {
      previousRoot = ZeroHash; // the contract's genesis head is (0, 0x00…00)
    }

    // An earlier attempt may have landed without us seeing its receipt (timeout, crash): never anchor twice.
    const head = await this.currentHead();
    if (head.treeSize === request.treeSize && head.root === newRoot) {
      return this.recover(request.treeSize, newRoot);
    }

    const data = anchorContractInterface.encodeFunctionData('anchor', [
      request.treeSize,
      newRoot,
      request.previousSize,
      previousRoot,
      manifestHash,
    ]);
    await this.preflight(data);
    const receipt = await sendRawTransaction(
      {
        provider: this.provider,
        signer: this.signer,
        to: this.contractAddress,
        data,
        gasLimit: this.gasLimit,
      },
      this.polling,
    );
    if (receipt.status !== 1) {
      // Lost a race to an identical anchor (another attempt of the same head)? Then that one stands.
      const after = await this.currentHead();
      if (after.treeSize === request.treeSize && after.root === newRoot) {
        return this.recover(request.treeSize, newRoot);
      }
      throw new LedgerError('ANCHOR_REVERTED', `anchor transaction ${receipt.hash} reverted`, {
        details: { txHash: receipt.hash, treeSize: request.treeSize },
      });
    }
    const log = receipt.logs.find((l) => isAnchoredLog(l, this.contractAddress));
    if (log === undefined) {
      throw new LedgerError(
        'UNEXPECTED_CHAIN_DATA',
        `anchor transaction ${receipt.hash} emitted no Anchored event`,
        {
          details: { txHash: receipt.hash },
        },
      );
    }
    return this.toAnchorReceipt(receipt, log, false);
  }

  private async recover(treeSize: number, root: string): Promise<AnchorReceipt> {
    const found = await this.findAnchor(treeSize, root);
    if (found === null) {
      throw new LedgerError(
        'UNEXPECTED_CHAIN_DATA',
        `the contract head is already (${treeSize}, ${root}) but no Anchored event was found from block ${this.fromBlock}`,
        { details: { treeSize, root } },
      );
    }
    return found;
  }

  /** Simulates the call first: a refused head costs no gas and comes back with the contract's error name. */
  private async preflight(data: string): Promise<void> {
    try {
      await this.provider.call({ to: this.contractAddress, from: await this.signer.getAddress(), data });
    } catch (error) {
      const revert = decodeRevert(error);
      if (revert !== undefined) {
        throw new LedgerError(
          'ANCHOR_REJECTED',
          `the anchor contract refused the head: ${revert.name}(${revert.args})`,
          {
            cause: error,
            details: { revert: revert.name, revertArgs: revert.args },
          },
        );
      }
      throw toLedgerError(error, 'simulating the anchor call');
    }
  }

  private async callView(name: 'treeSize' | 'rootHash', blockTag: number): Promise<unknown> {
    const result = await this.provider.call({
      to: this.contractAddress,
      data: anchorContractInterface.encodeFunctionData(name),
      blockTag,
    });
    return anchorContractInterface.decodeFunctionResult(name, result)[0];
  }

  private async toAnchorReceipt(
    receipt: TransactionReceipt,
    log: Log,
    recovered: boolean,
  ): Promise<AnchorReceipt> {
    const network = await this.provider.getNetwork();
    return {
      chainId: network.chainId.toString(),
      contract: this.contractAddress,
      txHash: receipt.hash,
      blockNumber: receipt.blockNumber,
      blockHash: receipt.blockHash,
      logIndex: log.index,
      gasUsed: Number(receipt.gasUsed),
      recovered,
    };
  }
}

/** True for an `Anchored` log emitted by `contract`. */
export function isAnchoredLog(log: Log, contract: string): boolean {
  return log.address.toLowerCase() === contract.toLowerCase() && log.topics[0] === ANCHORED_EVENT_TOPIC;
}

/** The FhirTrailAnchor (or OpenZeppelin) custom error behind a failed call, if it is one. */
export function decodeRevert(error: unknown): { name: string; args: string } | undefined {
  if (!isError(error, 'CALL_EXCEPTION') || typeof error.data !== 'string' || error.data.length < 10) {
    return undefined;
  }
  const parsed = anchorContractInterface.parseError(error.data);
  if (parsed === null) {
    return undefined;
  }
  return { name: parsed.name, args: parsed.args.map((a: unknown) => String(a)).join(', ') };
}

function toHash(value: HashInput, name: string): string {
  const hex = typeof value === 'string' ? value : hexlify(value);
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) {
    throw new LedgerError('INVALID_ARGUMENT', `${name} must be a 32-byte hash`);
  }
  return hex.toLowerCase();
}

function requireSize(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new LedgerError('INVALID_ARGUMENT', `${name} must be a non-negative safe integer`);
  }
}

function toSafeNumber(value: unknown, name: string): number {
  const n = typeof value === 'bigint' ? value : BigInt(String(value));
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new LedgerError('UNEXPECTED_CHAIN_DATA', `${name} ${n} does not fit a safe integer`);
  }
  return Number(n);
}
