import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Provider,
  type Signer,
  type TransactionReceipt,
  type TransactionRequest,
  Transaction,
} from 'ethers';
import { LedgerError, toLedgerError } from './ledger-error';

/** How long and how often to wait for a receipt. */
export interface ReceiptPolling {
  /** Delay between `eth_getTransactionReceipt` polls. */
  readonly pollIntervalMs: number;
  /** Give up (with the retryable `RECEIPT_TIMEOUT`) after this long; the tx may still land. */
  readonly timeoutMs: number;
  /** Blocks that must exist on top of (and including) the receipt's block; 1 = mined. */
  readonly confirmations: number;
}

/** One transaction to sign locally and send raw. */
export interface RawTransactionCall {
  readonly provider: Provider;
  readonly signer: Signer;
  /** Contract address, or null to deploy. */
  readonly to: string | null;
  readonly data: string;
  readonly gasLimit: bigint;
}

/**
 * Signs a fully populated transaction (explicit pending nonce, fixed gas limit, fees from the
 * provider) and sends it with `eth_sendRawTransaction`, then polls for its receipt. This skips
 * ethers' estimateGas/`tx.wait()` path, which is several times slower (toolchain-spike.md §5).
 * Returns the hash as soon as it is known through `onSigned`, so a caller can record it before
 * the network is touched.
 */
export async function sendRawTransaction(
  call: RawTransactionCall,
  polling: ReceiptPolling,
  onSigned?: (txHash: string) => void,
): Promise<TransactionReceipt> {
  const { provider, signer } = call;
  let signed: string;
  try {
    const from = await signer.getAddress();
    const [network, nonce, fees] = await Promise.all([
      provider.getNetwork(),
      provider.getTransactionCount(from, 'pending'),
      provider.getFeeData(),
    ]);
    const request: TransactionRequest = {
      to: call.to,
      data: call.data,
      nonce,
      gasLimit: call.gasLimit,
      chainId: network.chainId,
      ...(fees.maxFeePerGas !== null && fees.maxPriorityFeePerGas !== null
        ? { type: 2, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas }
        : { type: 0, gasPrice: fees.gasPrice ?? 0n }),
    };
    signed = await signer.signTransaction(request);
  } catch (error) {
    throw toLedgerError(error, 'preparing the transaction');
  }
  const txHash = Transaction.from(signed).hash as string;
  onSigned?.(txHash);
  try {
    await provider.broadcastTransaction(signed);
  } catch (error) {
    const wrapped = toLedgerError(error, 'sending the transaction');
    throw new LedgerError(wrapped.code, wrapped.message, { cause: error, details: { txHash } });
  }
  return waitForReceipt(provider, txHash, polling);
}

/**
 * Polls for the receipt of `txHash` until it has `confirmations` blocks. Transient RPC failures are
 * retried until the deadline; then `RECEIPT_TIMEOUT` (retryable: check the chain before resending).
 */
export async function waitForReceipt(
  provider: Provider,
  txHash: string,
  polling: ReceiptPolling,
): Promise<TransactionReceipt> {
  const deadline = Date.now() + polling.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const receipt = await provider.getTransactionReceipt(txHash);
      if (receipt !== null) {
        if (polling.confirmations <= 1 || (await receipt.confirmations()) >= polling.confirmations) {
          return receipt;
        }
      }
    } catch (error) {
      const wrapped = toLedgerError(error, 'reading the receipt');
      if (!wrapped.retryable) {
        throw wrapped;
      }
      lastError = wrapped;
    }
    if (Date.now() >= deadline) {
      throw new LedgerError('RECEIPT_TIMEOUT', `no receipt for ${txHash} within ${polling.timeoutMs} ms`, {
        cause: lastError,
        details: { txHash },
      });
    }
    await sleep(polling.pollIntervalMs);
  }
}

/** Fees a transaction is signed with: EIP-1559 (`type 2`) or legacy (`type 0`, gas price in both). */
export interface TransactionFees {
  readonly type: 0 | 2;
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
}

/**
 * Current fees from the node: EIP-1559 where the chain has a base fee, else the legacy gas price
 * (0 on a free-gas Besu QBFT network).
 */
export async function currentFees(provider: Provider): Promise<TransactionFees> {
  const fees = await provider.getFeeData();
  if (fees.maxFeePerGas !== null && fees.maxPriorityFeePerGas !== null) {
    return { type: 2, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas };
  }
  const price = fees.gasPrice ?? 0n;
  return { type: 0, maxFeePerGas: price, maxPriorityFeePerGas: price };
}

/**
 * Nodes accept a replacement (same nonce) only when every fee rises by at least 10 % (geth's and
 * Besu's default price bump); 12.5 % leaves room for rounding, and the current fees win when higher.
 */
const FEE_BUMP_NUMERATOR = 1125n;
const FEE_BUMP_DENOMINATOR = 1000n;

/** Fees for a replacement of a transaction signed with `previous`: +12.5 %, or the current fees if higher. */
export function bumpedFees(previous: TransactionFees, current: TransactionFees): TransactionFees {
  const bump = (fee: bigint): bigint =>
    (fee * FEE_BUMP_NUMERATOR + FEE_BUMP_DENOMINATOR - 1n) / FEE_BUMP_DENOMINATOR;
  const priority = maxOf(bump(previous.maxPriorityFeePerGas), current.maxPriorityFeePerGas);
  const max = maxOf(bump(previous.maxFeePerGas), current.maxFeePerGas, priority);
  return { type: previous.type, maxFeePerGas: max, maxPriorityFeePerGas: priority };
}

function maxOf(...values: bigint[]): bigint {
  return values.reduce((a, b) => (b > a ? b : a));
}

/** Signs one call locally with an explicit nonce, gas limit and fees; returns the raw transaction and its hash. */
export async function signCall(
  call: Omit<RawTransactionCall, 'provider'>,
  chainId: bigint,
  nonce: number,
  fees: TransactionFees,
): Promise<{ readonly rawTransaction: string; readonly txHash: string }> {
  const request: TransactionRequest = {
    to: call.to,
    data: call.data,
    nonce,
    gasLimit: call.gasLimit,
    chainId,
    ...(fees.type === 2
      ? { type: 2, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas }
      : { type: 0, gasPrice: fees.maxFeePerGas }),
  };
  const rawTransaction = await call.signer.signTransaction(request);
  return { rawTransaction, txHash: Transaction.from(rawTransaction).hash as string };
}
