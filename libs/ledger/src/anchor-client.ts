import {
  type Log,
  type Provider,
  type Signer,
  type TransactionReceipt,
  Transaction,
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
import { setTimeout as sleep } from 'node:timers/promises';
import { type AnchorOutbox, InMemoryAnchorOutbox, type OutboxTransaction } from './anchor-outbox';
import { type TransactionFees, bumpedFees, currentFees, signCall } from './transaction-sender';

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
  /** What the `Anchored` event says: the size of the head it extends, and the manifest hash (`0x` hex). */
  readonly previousSize: number;
  readonly manifestHash: string;
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
  /** Give up waiting (retryable `RECEIPT_TIMEOUT`; the transaction stays in the outbox) after this long. */
  readonly receiptTimeoutMs?: number;
  /**
   * Blocks required on top of the anchor's block before it counts: 0 = mined (QBFT and anvil
   * blocks are final at once), a few blocks on chains that can reorganise. Default 0.
   */
  readonly finalityDepth?: number;
  /** Re-broadcast a transaction unchanged when it has no receipt after this long (default 15 s). */
  readonly resendAfterMs?: number;
  /** Replace a transaction with a fee-bumped copy (same nonce) when it is stuck this long (default 60 s). */
  readonly replaceAfterMs?: number;
  /** Where signed transactions are kept until settled; default in memory (the worker passes PostgreSQL). */
  readonly outbox?: AnchorOutbox;
  /** First block to search for earlier `Anchored` logs (the deployment block); default 0. */
  readonly fromBlock?: number;
}

/** An anchor transaction from the outbox that landed: the head it published, and where. */
export interface ResumedAnchor {
  readonly head: {
    readonly treeSize: number;
    readonly root: string;
    readonly previousSize: number;
    readonly previousRoot: string;
    readonly manifestHash: string;
  };
  readonly receipt: AnchorReceipt;
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
 * A node may lose a pending transaction (restart, mempool eviction): re-broadcasting the same bytes
 * is harmless (same hash), so do it well before a block time multiple on public chains (~12 s).
 */
const DEFAULT_RESEND_AFTER_MS = 15_000;
/** Several public-chain blocks without inclusion means the fee is too low: replace with a higher one. */
const DEFAULT_REPLACE_AFTER_MS = 60_000;

/**
 * Publishes tree heads on the FhirTrailAnchor contract. Anchors from one client are serialised
 * (one writer per signing key: the worker also holds a Redis lock per key). Every transaction is
 * signed locally with an explicit nonce, gas limit and fees, written to the outbox before it is
 * broadcast, re-sent unchanged while it has no receipt, replaced with higher fees (same nonce)
 * when stuck, and followed to the configured finality depth. Idempotent: a head that an outboxed
 * transaction or an earlier run already anchored is returned (`recovered: true`), never sent again.
 */
export class AnchorClient {
  /** EIP-55 address of the contract. */
  readonly contractAddress: string;
  private readonly provider: Provider;
  private readonly signer: Signer;
  private readonly gasLimit: bigint;
  private readonly outbox: AnchorOutbox;
  private readonly timing: {
    pollIntervalMs: number;
    timeoutMs: number;
    confirmations: number;
    resendAfterMs: number;
    replaceAfterMs: number;
  };
  private readonly fromBlock: number;
  private identity?: Promise<{ chainId: bigint; signer: string }>;
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
    const finalityDepth = options.finalityDepth ?? 0;
    if (!Number.isSafeInteger(finalityDepth) || finalityDepth < 0) {
      throw new LedgerError('INVALID_ARGUMENT', 'finalityDepth must be a non-negative integer');
    }
    this.contractAddress = getAddress(options.contractAddress);
    this.gasLimit = options.gasLimit ?? DEFAULT_ANCHOR_GAS_LIMIT;
    this.outbox = options.outbox ?? new InMemoryAnchorOutbox();
    this.timing = {
      pollIntervalMs: options.receiptPollIntervalMs ?? DEFAULT_RECEIPT_POLL_MS,
      timeoutMs: options.receiptTimeoutMs ?? DEFAULT_RECEIPT_TIMEOUT_MS,
      confirmations: finalityDepth + 1,
      resendAfterMs: options.resendAfterMs ?? DEFAULT_RESEND_AFTER_MS,
      replaceAfterMs: options.replaceAfterMs ?? DEFAULT_REPLACE_AFTER_MS,
    };
    this.fromBlock = options.fromBlock ?? 0;
  }

  /** Blocks required on top of an anchor's block. */
  get finalityDepth(): number {
    return this.timing.confirmations - 1;
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
   * First settles whatever the outbox holds for this key (see {@link resume}); then, unless the
   * head is already on chain (`recovered: true`), sends one transaction and follows it.
   * Throws {@link LedgerError}: `ANCHOR_REJECTED` (the contract refuses: `details.revert` is
   * `HeadDoesNotExtend`, `PreviousHeadMismatch`, `EmptyRoot`, `EnforcedPause` or
   * `AccessControlUnauthorizedAccount`), retryable `CHAIN_UNAVAILABLE`/`RECEIPT_TIMEOUT`/`NONCE_CONFLICT`.
   */
  anchorHead(request: AnchorHeadRequest): Promise<AnchorReceipt> {
    return this.serialised(() => this.anchorOnce(request));
  }

  /**
   * Follows every transaction the outbox still holds for this key (after a timeout, a crash or a
   * restart): re-sends it unchanged, replaces it with higher fees when stuck, and settles it as
   * mined, failed or replaced. Returns the anchors among them that landed, so the caller can
   * record their checkpoints. Call it before reading the chain's head to build the next request.
   */
  resume(): Promise<readonly ResumedAnchor[]> {
    return this.serialised(() => this.settleOutbox());
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
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

    // An earlier attempt may have been sent without us seeing its receipt (timeout, crash, chain
    // down): follow it first, and never anchor twice.
    const resumed = await this.settleOutbox();
    const landed = resumed.find((r) => r.head.treeSize === request.treeSize && r.head.root === newRoot);
    if (landed !== undefined) {
      return landed.receipt;
    }
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
    const { chainId, signer } = await this.signerIdentity();
    let signed: Omit<OutboxTransaction, 'status' | 'sentAt'>;
    try {
      const [nonce, fees] = await Promise.all([
        this.provider.getTransactionCount(signer, 'pending'),
        currentFees(this.provider),
      ]);
      const tx = await signCall(
        { signer: this.signer, to: this.contractAddress, data, gasLimit: this.gasLimit },
        chainId,
        nonce,
        fees,
      );
      signed = {
        ...tx,
        chainId: chainId.toString(),
        signer,
        nonce,
        treeSize: request.treeSize,
        root: newRoot,
        previousSize: request.previousSize,
        previousRoot,
        manifestHash,
        replaces: null,
        maxFeePerGas: fees.maxFeePerGas.toString(),
        maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(),
      };
    } catch (error) {
      throw toLedgerError(error, 'preparing the anchor transaction');
    }
    // Outbox first, network second: a crash in between leaves a transaction the next run re-sends.
    await this.outbox.add(signed);
    await this.broadcastNew(signed);
    const outcome = await this.follow([{ ...signed, status: 'pending', sentAt: new Date() }], false);
    if (outcome === null) {
      // Another transaction took our nonce: nothing of ours landed. The caller retries with fresh state.
      throw new LedgerError(
        'NONCE_CONFLICT',
        `anchor transaction ${signed.txHash} was replaced by another transaction`,
        {
          details: { txHash: signed.txHash, nonce: signed.nonce },
        },
      );
    }
    const { receipt } = outcome;
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
    return this.anchorReceiptOf(receipt, false);
  }

  /** The chain id and the (lowercase) address this client signs with. */
  signerIdentity(): Promise<{ chainId: bigint; signer: string }> {
    this.identity ??= (async () => {
      const [network, address] = await Promise.all([this.provider.getNetwork(), this.signer.getAddress()]);
      return { chainId: network.chainId, signer: address.toLowerCase() };
    })().catch((error: unknown) => {
      this.identity = undefined;
      throw toLedgerError(error, 'reading the chain id');
    });
    return this.identity;
  }

  /** First broadcast of a new transaction: a refusal is settled at once, a network failure left to the next run. */
  private async broadcastNew(tx: Omit<OutboxTransaction, 'status' | 'sentAt'>): Promise<void> {
    try {
      await this.provider.broadcastTransaction(tx.rawTransaction);
    } catch (error) {
      const wrapped = toLedgerError(error, 'sending the anchor transaction');
      if (wrapped.code !== 'CHAIN_UNAVAILABLE' && wrapped.code !== 'RECEIPT_TIMEOUT') {
        // Refused outright (nonce taken, no funds): it will never land as signed.
        await this.outbox.settle(tx.txHash, wrapped.code === 'NONCE_CONFLICT' ? 'replaced' : 'failed', null);
      }
      throw new LedgerError(wrapped.code, wrapped.message, { cause: error, details: { txHash: tx.txHash } });
    }
    await this.outbox.markSent(tx.txHash, new Date());
  }

  /** Follows every unsettled outbox transaction of this key, lowest nonce first. */
  private async settleOutbox(): Promise<ResumedAnchor[]> {
    const { chainId, signer } = await this.signerIdentity();
    const rows = await this.outbox.unsettled(chainId.toString(), signer);
    const byNonce = new Map<number, OutboxTransaction[]>();
    for (const row of rows) byNonce.set(row.nonce, [...(byNonce.get(row.nonce) ?? []), row]);
    const landed: ResumedAnchor[] = [];
    for (const nonce of [...byNonce.keys()].sort((a, b) => a - b)) {
      const outcome = await this.follow(byNonce.get(nonce) ?? [], true);
      if (outcome !== null && outcome.receipt.status === 1) {
        const { tx } = outcome;
        landed.push({
          head: {
            treeSize: tx.treeSize,
            root: tx.root,
            previousSize: tx.previousSize,
            previousRoot: tx.previousRoot,
            manifestHash: tx.manifestHash,
          },
          receipt: await this.anchorReceiptOf(outcome.receipt, true),
        });
      }
    }
    return landed;
  }

  /**
   * Follows the transactions sharing one nonce (an original and its fee-bumped replacements) until
   * one of them has a receipt at the finality depth, settling all of them; null when another
   * transaction took the nonce. Re-broadcasts them unchanged every `resendAfterMs` (at once when
   * `resendFirst`, i.e. after a timeout or a restart) and signs a replacement with higher fees
   * every `replaceAfterMs`. Throws `RECEIPT_TIMEOUT` (all still pending, kept in the outbox) or
   * `CHAIN_UNAVAILABLE`.
   */
  private async follow(
    group: OutboxTransaction[],
    resendFirst: boolean,
  ): Promise<{ tx: OutboxTransaction; receipt: TransactionReceipt } | null> {
    const txs = [...group];
    const nonce = txs[0].nonce;
    const signer = txs[0].signer;
    const deadline = Date.now() + this.timing.timeoutMs;
    let lastSent = resendFirst ? 0 : Date.now();
    let lastReplaced = Date.now();
    try {
      for (;;) {
        for (const tx of [...txs].reverse()) {
          const receipt = await this.provider.getTransactionReceipt(tx.txHash);
          if (receipt === null) continue;
          if ((await receipt.confirmations()) < this.timing.confirmations) break;
          await this.outbox.settle(tx.txHash, receipt.status === 1 ? 'mined' : 'failed', receipt.blockNumber);
          for (const other of txs) {
            if (other.txHash !== tx.txHash) await this.outbox.settle(other.txHash, 'replaced', null);
          }
          return { tx, receipt };
        }
        const mined = await this.provider.getTransactionCount(signer, 'latest');
        if (mined > nonce) {
          // The nonce is used. Ours, whose receipt we have not seen yet (or not deep enough)? Look again.
          const ours = await Promise.all(txs.map((t) => this.provider.getTransactionReceipt(t.txHash)));
          if (ours.every((r) => r === null)) {
            for (const t of txs) await this.outbox.settle(t.txHash, 'replaced', null);
            return null;
          }
        } else {
          const now = Date.now();
          const newest = txs[txs.length - 1];
          if (now - lastReplaced >= this.timing.replaceAfterMs && BigInt(newest.maxFeePerGas) > 0n) {
            txs.push(await this.replace(newest));
            lastReplaced = now;
            lastSent = now;
          } else if (now - lastSent >= this.timing.resendAfterMs) {
            for (const t of txs) await this.rebroadcast(t);
            lastSent = now;
          }
        }
        if (Date.now() >= deadline) {
          const newest = txs[txs.length - 1];
          throw new LedgerError(
            'RECEIPT_TIMEOUT',
            `no receipt for ${newest.txHash} within ${this.timing.timeoutMs} ms`,
            { details: { txHash: newest.txHash, nonce } },
          );
        }
        await sleep(this.timing.pollIntervalMs);
      }
    } catch (error) {
      throw toLedgerError(error, 'following the anchor transaction');
    }
  }

  /** Sends the same signed bytes again. "Already known" or "nonce too low" answers are expected and ignored. */
  private async rebroadcast(tx: OutboxTransaction): Promise<void> {
    try {
      await this.provider.broadcastTransaction(tx.rawTransaction);
    } catch (error) {
      const wrapped = toLedgerError(error, 're-sending the anchor transaction');
      if (wrapped.code === 'CHAIN_UNAVAILABLE') throw wrapped;
      return; // the receipt or the account nonce tells what happened to it
    }
    await this.outbox.markSent(tx.txHash, new Date());
  }

  /** Signs, records and sends a copy of `stuck` with the same nonce and higher fees. */
  private async replace(stuck: OutboxTransaction): Promise<OutboxTransaction> {
    const previous: TransactionFees = {
      type: Transaction.from(stuck.rawTransaction).type === 2 ? 2 : 0,
      maxFeePerGas: BigInt(stuck.maxFeePerGas),
      maxPriorityFeePerGas: BigInt(stuck.maxPriorityFeePerGas),
    };
    const fees = bumpedFees(previous, await currentFees(this.provider));
    const original = Transaction.from(stuck.rawTransaction);
    const signed = await signCall(
      { signer: this.signer, to: original.to, data: original.data, gasLimit: original.gasLimit },
      original.chainId,
      stuck.nonce,
      fees,
    );
    const row: Omit<OutboxTransaction, 'status' | 'sentAt'> = {
      ...stuck,
      ...signed,
      replaces: stuck.txHash,
      maxFeePerGas: fees.maxFeePerGas.toString(),
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(),
    };
    await this.outbox.add(row);
    const replacement: OutboxTransaction = { ...row, status: 'pending', sentAt: null };
    await this.rebroadcast(replacement);
    return replacement;
  }

  private async anchorReceiptOf(receipt: TransactionReceipt, recovered: boolean): Promise<AnchorReceipt> {
    const log = receipt.logs.find((l) => isAnchoredLog(l, this.contractAddress));
    if (log === undefined) {
      throw new LedgerError(
        'UNEXPECTED_CHAIN_DATA',
        `anchor transaction ${receipt.hash} emitted no Anchored event`,
        { details: { txHash: receipt.hash } },
      );
    }
    return this.toAnchorReceipt(receipt, log, recovered);
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
    const args = anchorContractInterface.parseLog(log)?.args;
    if (args === undefined) {
      throw new LedgerError(
        'UNEXPECTED_CHAIN_DATA',
        `log ${log.index} of ${receipt.hash} is not an Anchored event`,
      );
    }
    return {
      chainId: network.chainId.toString(),
      contract: this.contractAddress,
      txHash: receipt.hash,
      blockNumber: receipt.blockNumber,
      blockHash: receipt.blockHash,
      logIndex: log.index,
      gasUsed: Number(receipt.gasUsed),
      recovered,
      previousSize: toSafeNumber(args.getValue('previousSize'), 'previousSize'),
      manifestHash: String(args.getValue('manifestHash')).toLowerCase(),
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
