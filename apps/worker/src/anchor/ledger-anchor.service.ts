import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import {
  type AnchorReceipt,
  type ResumedAnchor,
  appendLeaves,
  canonicalRecordJson,
  isLedgerError,
  loadFrontier,
  toHashHex,
  treeRoot,
} from '@fhir-trail/ledger';
import { APP_CONFIG, LEDGER, type LedgerConnection, STORE } from '@fhir-trail/runtime';
import type { Checkpoint, Store, StoreDb } from '@fhir-trail/store';
import { sql } from 'kysely';
import { SignerLock } from './signer-lock';

/** Session advisory lock held by the one sequencer/anchorer at a time, across worker processes. */
const ANCHOR_LOCK_KEY = 0x46_48_49_52; // "FHIR"
/** Most leaves one run sequences into the head it anchors. */
const MAX_LEAVES_PER_RUN = 10_000;
/**
 * After a retryable chain failure (RPC down, no receipt yet) runs are skipped for 1 s, then 2, 4…
 * up to a minute: a dead endpoint is not hammered every tick, and the first run after it comes back
 * resumes from the outbox and the pending leaves (nothing is lost, nothing anchored twice).
 */
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;

/** A new tree head published on chain. */
export interface AnchoredBatch {
  readonly checkpoint: Checkpoint;
  readonly leaves: number;
}

/**
 * Closes a ledger batch: gives pending events their leaf indexes (RFC 9162 log, subtree hashes
 * stored), then anchors the new head in one transaction and waits for it at the finality depth.
 * One writer per signing key (Redis lease) and one sequencer per database (PostgreSQL advisory
 * lock); a run with nothing new anchors nothing (never an empty batch). Transactions an earlier
 * run left in the outbox are followed first and their checkpoints recorded.
 */
@Injectable()
export class LedgerAnchorService implements OnApplicationShutdown {
  private readonly logger = new Logger(LedgerAnchorService.name);
  private readonly signerLock: SignerLock;
  private failures = 0;
  private retryAt = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
    @Inject(LEDGER) private readonly ledger: LedgerConnection,
  ) {
    this.signerLock = new SignerLock(config.redisUrl, config.queuePrefix);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.signerLock.close();
  }

  /** When the next run may touch the chain after failures (0 = now). */
  get backoffUntil(): number {
    return this.retryAt;
  }

  async run(): Promise<AnchoredBatch | undefined> {
    if (Date.now() < this.retryAt) return undefined;
    try {
      const batch = await this.runLocked();
      this.failures = 0;
      this.retryAt = 0;
      return batch;
    } catch (error) {
      if (isLedgerError(error) && error.retryable) {
        this.failures += 1;
        this.retryAt = Date.now() + Math.min(BACKOFF_BASE_MS * 2 ** (this.failures - 1), BACKOFF_MAX_MS);
      }
      throw error;
    }
  }

  private async runLocked(): Promise<AnchoredBatch | undefined> {
    const { chainId, signer } = await this.ledger.anchorClient.signerIdentity();
    const lease = await this.signerLock.acquire(chainId.toString(), signer);
    if (lease === undefined) return undefined; // another worker anchors with this key right now
    try {
      return await this.store.db.connection().execute(async (connection) => {
        const locked = await sql<{
          locked: boolean;
        }>`select pg_try_advisory_lock(${ANCHOR_LOCK_KEY}) as locked`.execute(connection);
        if (!locked.rows[0]?.locked) return undefined;
        try {
          await this.sequence(connection);
          // Redis lost our lease (expired while Redis was unreachable, another worker took it):
          // leave the signing to that worker; the sequenced leaves are anchored by it.
          if (lease.lost) return undefined;
          return await this.anchor();
        } finally {
          await sql`select pg_advisory_unlock(${ANCHOR_LOCK_KEY})`.execute(connection);
        }
      });
    } finally {
      await lease.release();
    }
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
    // Anchors sent by an earlier run that timed out, crashed or lost the chain: follow them to
    // their receipts (re-sent unchanged) and record their checkpoints before anything new.
    for (const resumed of await this.ledger.anchorClient.resume()) {
      await this.store.ledger.insertCheckpoint(checkpointOf(resumed.head, resumed.receipt));
      this.logger.log({
        msg: 'anchor from the outbox landed',
        treeSize: resumed.head.treeSize,
        txHash: resumed.receipt.txHash,
      });
    }
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
    // Recovered (anchored by an earlier run whose checkpoint was never recorded): the event names
    // the head it really extended and its manifest.
    const extended =
      receipt.previousSize === previousSize
        ? { previousSize, previousRoot, manifestHash: toHashHex(manifestHash) }
        : {
            previousSize: receipt.previousSize,
            previousRoot: await this.rootAt(receipt.previousSize),
            manifestHash: receipt.manifestHash,
          };
    const checkpoint = checkpointOf(
      { treeSize: head.treeSize, root: toHashHex(head.root), ...extended },
      receipt,
    );
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

  /** Root of an earlier anchored head (the zero root for genesis). */
  private async rootAt(treeSize: number): Promise<string> {
    if (treeSize === 0) return `0x${'00'.repeat(32)}`;
    const [checkpoint] = await this.store.ledger.checkpointsAt([treeSize]);
    if (checkpoint !== undefined) return toHashHex(checkpoint.root);
    const root = await treeRoot({ getNodes: (keys) => this.store.ledger.getNodes(keys) }, treeSize);
    return toHashHex(root);
  }
}

function checkpointOf(head: ResumedAnchor['head'], receipt: AnchorReceipt): Checkpoint {
  const bytes = (hex: string): Buffer => Buffer.from(hex.replace(/^0x/, ''), 'hex');
  return {
    treeSize: head.treeSize,
    root: bytes(head.root),
    previousSize: head.previousSize,
    previousRoot: bytes(head.previousRoot),
    manifestHash: bytes(head.manifestHash),
    chainId: receipt.chainId,
    contract: receipt.contract,
    txHash: receipt.txHash,
    blockNumber: receipt.blockNumber,
    blockHash: receipt.blockHash,
    logIndex: receipt.logIndex,
    gasUsed: Number(receipt.gasUsed),
  };
}
