/** Where an outboxed anchor transaction stands. */
export type OutboxStatus =
  /** Signed (and perhaps broadcast); its outcome is not known yet. */
  | 'pending'
  /** Mined at the required finality depth (`failed` if it reverted). */
  | 'mined'
  | 'failed'
  /** Another transaction with the same nonce was mined instead (our fee-bumped copy, or anything else). */
  | 'replaced';

/** One signed anchor transaction, kept exactly as signed so it can be re-sent unchanged. */
export interface OutboxTransaction {
  readonly txHash: string;
  /** Decimal chain id. */
  readonly chainId: string;
  /** Lowercase address of the signing key. */
  readonly signer: string;
  readonly nonce: number;
  /** The head this transaction anchors, and the head it extends. */
  readonly treeSize: number;
  /** `0x` hex. */
  readonly root: string;
  readonly previousSize: number;
  readonly previousRoot: string;
  readonly manifestHash: string;
  /** The signed transaction, `0x` hex, as broadcast. */
  readonly rawTransaction: string;
  /** Hash of the transaction this one replaces (same nonce, higher fees), if it is a replacement. */
  readonly replaces: string | null;
  /** Fees it was signed with, decimal wei (legacy transactions: both are the gas price). */
  readonly maxFeePerGas: string;
  readonly maxPriorityFeePerGas: string;
  readonly status: OutboxStatus;
  /** Last broadcast; null while signed but never sent (a crash in between). */
  readonly sentAt: Date | null;
}

/**
 * Durable record of signed anchor transactions (PostgreSQL `anchor_outbox` in the apps). A
 * transaction is added *before* it is broadcast, so a crash at any point leaves either nothing on
 * the chain or a transaction the outbox knows, which the next run re-sends unchanged and follows
 * to its receipt instead of anchoring the head a second time.
 */
export interface AnchorOutbox {
  add(transaction: Omit<OutboxTransaction, 'status' | 'sentAt'>): Promise<void>;
  markSent(txHash: string, at: Date): Promise<void>;
  settle(txHash: string, status: Exclude<OutboxStatus, 'pending'>, blockNumber: number | null): Promise<void>;
  /** Pending transactions of one signing key on one chain, by nonce then age. */
  unsettled(chainId: string, signer: string): Promise<readonly OutboxTransaction[]>;
}

/**
 * An outbox that lives as long as the process: what a bare `AnchorClient` uses. It covers
 * timeouts and replacements, not restarts; the worker passes the PostgreSQL one.
 */
export class InMemoryAnchorOutbox implements AnchorOutbox {
  private readonly rows = new Map<string, OutboxTransaction>();

  add(transaction: Omit<OutboxTransaction, 'status' | 'sentAt'>): Promise<void> {
    this.rows.set(transaction.txHash, { ...transaction, status: 'pending', sentAt: null });
    return Promise.resolve();
  }

  markSent(txHash: string, at: Date): Promise<void> {
    const row = this.rows.get(txHash);
    if (row !== undefined) this.rows.set(txHash, { ...row, sentAt: at });
    return Promise.resolve();
  }

  settle(txHash: string, status: Exclude<OutboxStatus, 'pending'>): Promise<void> {
    const row = this.rows.get(txHash);
    if (row !== undefined) this.rows.set(txHash, { ...row, status });
    return Promise.resolve();
  }

  unsettled(chainId: string, signer: string): Promise<readonly OutboxTransaction[]> {
    return Promise.resolve(
      [...this.rows.values()].filter(
        (r) => r.status === 'pending' && r.chainId === chainId && r.signer === signer.toLowerCase(),
      ),
    );
  }

  /** Every row, for inspection. */
  all(): readonly OutboxTransaction[] {
    return [...this.rows.values()];
  }
}
