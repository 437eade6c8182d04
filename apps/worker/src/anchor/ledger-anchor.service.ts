import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import { appendLeaves, canonicalRecordJson, loadFrontier, toHashHex } from '@fhir-trail/ledger';
import { APP_CONFIG, LEDGER, type LedgerConnection, STORE } from '@fhir-trail/runtime';
import type { Checkpoint, Store, StoreDb } from '@fhir-trail/store';
import { sql } from 'kysely';

/** Session advisory lock held by the one sequencer/anchorer at a time, across worker processes. */
const ANCHOR_LOCK_KEY = 0x46_48_49_52; // "FHIR"
/** Most leaves one run sequences into the head it anchors. */
const MAX_LEAVES_PER_RUN = 10_000;

/** A new tree head published on chain. */
export interface AnchoredBatch {
  readonly checkpoint: Checkpoint;
  readonly leaves: number;
}

/**
 * Closes a ledger batch: gives pending events their leaf indexes (RFC 9162 log, subtree hashes
 * stored), then anchors the new head in one transaction and waits for its receipt. One writer at a
 * time (PostgreSQL advisory lock); a run with nothing new anchors nothing (never an empty batch).
 */
@Injectable()
export class LedgerAnchorService {
  private readonly logger = new Logger(LedgerAnchorService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
    @Inject(LEDGER) private readonly ledger: LedgerConnection,
  ) {}

  async run(): Promise<AnchoredBatch | undefined> {
    return this.store.db.connection().execute(async (connection) => {
      const locked = await sql<{
        locked: boolean;
      }>`select pg_try_advisory_lock(${ANCHOR_LOCK_KEY}) as locked`.execute(connection);
      if (!locked.rows[0]?.locked) return undefined;
      try {
        await this.sequence(connection);
        return await this.anchor();
      } finally {
        await sql`select pg_advisory_unlock(${ANCHOR_LOCK_KEY})`.execute(connection);
      }
    });
  }

  /** Assigns leaf indexes to pending events and stores the new subtree hashes and head. */
  private async sequence(connection: StoreDb): Promise<number> {
    return connection.transaction().execute(async (trx) => {
      const head = await this.store.ledger.lockHead(trx);
      const pending = await this.store.ledger.unsequenced(trx, MAX_LEAVES_PER_RUN);
      if (pending.length === 0) return 0;
      const frontier = await loadFrontier(
        { getNodes: (keys) => this.store.ledger.getNodes(keys, trx) },
        head.treeSize,
      );
      const appended = appendLeaves(
        head.treeSize,
        frontier,
        pending.map((p) => p.leafHash),
      );
      await this.store.ledger.appendSequenced(
        trx,
        pending.map((p, i) => ({ id: p.id, leafIndex: head.treeSize + i })),
        appended.nodes.map((n) => ({ level: n.level, index: n.index, hash: Buffer.from(n.hash) })),
        { treeSize: appended.treeSize, root: Buffer.from(appended.root) },
      );
      return pending.length;
    });
  }

  private async anchor(): Promise<AnchoredBatch | undefined> {
    const [head, last] = await Promise.all([this.store.ledger.head(), this.store.ledger.latestCheckpoint()]);
    if (head.treeSize === 0 || (last && last.treeSize >= head.treeSize)) return undefined;
    const onChain = await this.ledger.anchorClient.currentHead();
    const previousSize = Number(onChain.treeSize);
    const previousRoot = onChain.root;
    const manifestHash = createHash('sha256')
      .update(
        canonicalRecordJson({
          format: 'fhir-trail/batch-manifest@1',
          previousSize,
          previousRoot,
          treeSize: head.treeSize,
          root: toHashHex(head.root),
        }),
      )
      .digest();
    const receipt = await this.ledger.anchorClient.anchorHead({
      treeSize: head.treeSize,
      root: toHashHex(head.root),
      previousSize,
      previousRoot,
      manifestHash: toHashHex(manifestHash),
    });
    const checkpoint: Checkpoint = {
      treeSize: head.treeSize,
      root: head.root,
      previousSize,
      previousRoot: Buffer.from(previousRoot.replace(/^0x/, ''), 'hex'),
      manifestHash,
      chainId: receipt.chainId,
      contract: receipt.contract,
      txHash: receipt.txHash,
      blockNumber: receipt.blockNumber,
      blockHash: receipt.blockHash,
      logIndex: receipt.logIndex,
      gasUsed: Number(receipt.gasUsed),
    };
    await this.store.ledger.insertCheckpoint(checkpoint);
    const leaves = head.treeSize - (last?.treeSize ?? 0);
    this.logger.log({
      msg: 'anchored',
      treeSize: head.treeSize,
      leaves,
      txHash: receipt.txHash,
      block: receipt.blockNumber,
      gasUsed: checkpoint.gasUsed,
      batchSizeLimit: this.config.ledger.batchSize,
    });
    return { checkpoint, leaves };
  }
}
