import { sql } from 'kysely';
import type { StoreDb } from './database';
import type { AnchorOutboxTable } from './schema';

export type AnchorOutboxStatus = AnchorOutboxTable['status'];

/** One signed anchor transaction (the shape `AnchorOutbox` of @fhir-trail/ledger expects). */
export interface AnchorOutboxRow {
  readonly txHash: string;
  readonly chainId: string;
  readonly signer: string;
  readonly nonce: number;
  readonly treeSize: number;
  readonly root: string;
  readonly previousSize: number;
  readonly previousRoot: string;
  readonly manifestHash: string;
  readonly rawTransaction: string;
  readonly replaces: string | null;
  readonly maxFeePerGas: string;
  readonly maxPriorityFeePerGas: string;
  readonly status: AnchorOutboxStatus;
  readonly sentAt: Date | null;
}

/** A settled or pending row with where it landed, for inspection (tests, operators). */
export interface StoredAnchorOutboxRow extends AnchorOutboxRow {
  readonly blockNumber: number | null;
  readonly createdAt: Date;
}

/**
 * The anchor transaction outbox in PostgreSQL: the durable half of the anchoring client's
 * exactly-once guarantee. Rows are inserted before broadcast and never deleted.
 */
export class AnchorOutboxRepository {
  constructor(private readonly db: StoreDb) {}

  async add(tx: Omit<AnchorOutboxRow, 'status' | 'sentAt'>): Promise<void> {
    await this.db
      .insertInto('anchor_outbox')
      .values({
        tx_hash: tx.txHash,
        chain_id: tx.chainId,
        signer: tx.signer.toLowerCase(),
        nonce: tx.nonce,
        tree_size: tx.treeSize,
        root: tx.root,
        previous_size: tx.previousSize,
        previous_root: tx.previousRoot,
        manifest_hash: tx.manifestHash,
        raw_transaction: tx.rawTransaction,
        replaces: tx.replaces,
        max_fee_per_gas: tx.maxFeePerGas,
        max_priority_fee_per_gas: tx.maxPriorityFeePerGas,
        status: 'pending',
      })
      .onConflict((oc) => oc.column('tx_hash').doNothing())
      .execute();
  }

  async markSent(txHash: string, at: Date): Promise<void> {
    await this.db.updateTable('anchor_outbox').set({ sent_at: at }).where('tx_hash', '=', txHash).execute();
  }

  async settle(
    txHash: string,
    status: Exclude<AnchorOutboxStatus, 'pending'>,
    blockNumber: number | null,
  ): Promise<void> {
    await this.db
      .updateTable('anchor_outbox')
      .set({ status, block_number: blockNumber, settled_at: sql<Date>`now()` })
      .where('tx_hash', '=', txHash)
      .execute();
  }

  async unsettled(chainId: string, signer: string): Promise<readonly AnchorOutboxRow[]> {
    const rows = await this.db
      .selectFrom('anchor_outbox')
      .selectAll()
      .where('chain_id', '=', chainId)
      .where('signer', '=', signer.toLowerCase())
      .where('status', '=', 'pending')
      .orderBy('nonce')
      .orderBy('created_at')
      .execute();
    return rows.map(toRow);
  }

  /** Every row, oldest first. */
  async list(): Promise<readonly StoredAnchorOutboxRow[]> {
    const rows = await this.db.selectFrom('anchor_outbox').selectAll().orderBy('created_at').execute();
    return rows.map((r) => ({
      ...toRow(r),
      blockNumber: r.block_number === null ? null : Number(r.block_number),
      createdAt: r.created_at,
    }));
  }
}

function toRow(r: {
  tx_hash: string;
  chain_id: string;
  signer: string;
  nonce: string;
  tree_size: string;
  root: string;
  previous_size: string;
  previous_root: string;
  manifest_hash: string;
  raw_transaction: string;
  replaces: string | null;
  max_fee_per_gas: string;
  max_priority_fee_per_gas: string;
  status: AnchorOutboxStatus;
  sent_at: Date | null;
}): AnchorOutboxRow {
  return {
    txHash: r.tx_hash,
    chainId: r.chain_id,
    signer: r.signer,
    nonce: Number(r.nonce),
    treeSize: Number(r.tree_size),
    root: r.root,
    previousSize: Number(r.previous_size),
    previousRoot: r.previous_root,
    manifestHash: r.manifest_hash,
    rawTransaction: r.raw_transaction,
    replaces: r.replaces,
    maxFeePerGas: r.max_fee_per_gas,
    maxPriorityFeePerGas: r.max_priority_fee_per_gas,
    status: r.status,
    sentAt: r.sent_at,
  };
}
