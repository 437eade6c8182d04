import { sql } from 'kysely';
import type { StoreDb } from './database';

export interface NewLedgerEvent {
  readonly eventId: string;
  readonly kind: string;
  readonly sourceId: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly resourceVersionId?: string;
  /** Canonical JSON of the event record, exactly the bytes hashed into the leaf. */
  readonly record: string;
  readonly leafHash: Buffer;
  /** The patient key the digests were made with (`Patient/{id}`, or `*`). */
  readonly keyScope?: string;
  /** When the event was recorded; default: the record's `recorded` (the audit checks they agree). */
  readonly createdAt?: Date;
}

export interface LedgerEventRow {
  readonly eventId: string;
  readonly kind: string;
  readonly record: string;
  readonly leafHash: Buffer;
  readonly leafIndex: number | null;
}

export interface StoredNode {
  readonly level: number;
  readonly index: number;
  readonly hash: Buffer;
}

export interface Checkpoint {
  readonly treeSize: number;
  readonly root: Buffer;
  readonly previousSize: number;
  readonly previousRoot: Buffer;
  readonly manifestHash: Buffer;
  readonly chainId: string;
  readonly contract: string;
  readonly txHash: string;
  readonly blockNumber: number;
  readonly blockHash: string;
  readonly logIndex: number;
  readonly gasUsed: number;
}

/** A checkpoint as stored, with the time the bridge recorded it. */
export interface StoredCheckpoint extends Checkpoint {
  readonly anchoredAt: Date;
}

export interface LogHead {
  readonly treeSize: number;
  readonly root: Buffer;
}

/** The append-only Merkle log: event records, the aligned subtree hashes, the head, checkpoints. */
export class LedgerRepository {
  constructor(private readonly db: StoreDb) {}

  async insertEvent(trx: StoreDb, event: NewLedgerEvent): Promise<void> {
    await trx
      .insertInto('ledger_events')
      .values({
        event_id: event.eventId,
        kind: event.kind,
        source_id: event.sourceId,
        resource_type: event.resourceType,
        resource_id: event.resourceId,
        resource_version_id: event.resourceVersionId ?? null,
        record: event.record,
        leaf_hash: event.leafHash,
        key_scope: event.keyScope ?? null,
        created_at: event.createdAt ?? recordedAt(event.record),
      })
      .execute();
  }

  async countUnsequenced(): Promise<number> {
    const row = await this.db
      .selectFrom('ledger_events')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('leaf_index', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Locks the log head for the sequencer (one writer at a time, across processes). */
  async lockHead(trx: StoreDb): Promise<LogHead> {
    const row = await trx
      .selectFrom('ledger_state')
      .select(['tree_size', 'root'])
      .where('id', '=', 1)
      .forUpdate()
      .executeTakeFirstOrThrow();
    return { treeSize: Number(row.tree_size), root: row.root };
  }

  async head(): Promise<LogHead> {
    const row = await this.db
      .selectFrom('ledger_state')
      .select(['tree_size', 'root'])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    return { treeSize: Number(row.tree_size), root: row.root };
  }

  /** Events not yet given a leaf index, in arrival order. */
  async unsequenced(trx: StoreDb, limit: number): Promise<readonly { id: string; leafHash: Buffer }[]> {
    const rows = await trx
      .selectFrom('ledger_events')
      .select(['id', 'leaf_hash'])
      .where('leaf_index', 'is', null)
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ id: r.id, leafHash: r.leaf_hash }));
  }

  /** Appends sequenced leaves: their indexes, the newly completed subtree hashes, and the new head. */
  async appendSequenced(
    trx: StoreDb,
    leaves: readonly { id: string; leafIndex: number }[],
    nodes: readonly StoredNode[],
    head: LogHead,
  ): Promise<void> {
    if (leaves.length === 0) return;
    await this.insertNodes(trx, nodes);
    const CHUNK = 1000;
    for (let i = 0; i < leaves.length; i += CHUNK) {
      const chunk = leaves.slice(i, i + CHUNK);
      await sql`
        update ledger_events as e set leaf_index = v.leaf_index
        from (select unnest(${chunk.map((l) => l.id)}::bigint[]) as id,
                     unnest(${chunk.map((l) => l.leafIndex)}::bigint[]) as leaf_index) as v
        where e.id = v.id`.execute(trx);
    }
    await trx
      .updateTable('ledger_state')
      .set({ tree_size: head.treeSize, root: head.root })
      .where('id', '=', 1)
      .execute();
  }

  /**
   * Stores completed subtree hashes (append-only: a node never changes once complete). Sends
   * column arrays (`unnest`) in large chunks: one statement per 50,000 nodes, not one per row.
   */
  async insertNodes(trx: StoreDb, nodes: readonly StoredNode[]): Promise<void> {
    const CHUNK = 50_000;
    for (let i = 0; i < nodes.length; i += CHUNK) {
      const chunk = nodes.slice(i, i + CHUNK);
      await sql`
        insert into ledger_nodes (level, idx, hash)
        select * from unnest(${chunk.map((n) => n.level)}::smallint[],
                             ${chunk.map((n) => String(n.index))}::bigint[],
                             ${chunk.map((n) => n.hash)}::bytea[])`.execute(trx);
    }
  }

  /**
   * Stored subtree hashes by `${level}:${index}`, in one round trip whatever the number of keys
   * (an inclusion or consistency proof needs O(log n) of them): the keys go as two arrays joined
   * against the primary key.
   */
  async getNodes(
    keys: readonly { level: number; index: number }[],
    db: StoreDb = this.db,
  ): Promise<Map<string, Buffer>> {
    const found = new Map<string, Buffer>();
    if (keys.length === 0) return found;
    const { rows } = await sql<{ level: number; idx: string; hash: Buffer }>`
      select n.level, n.idx, n.hash
      from unnest(${keys.map((k) => k.level)}::smallint[], ${keys.map((k) => String(k.index))}::bigint[])
             as k(level, idx)
      join ledger_nodes n on n.level = k.level and n.idx = k.idx`.execute(db);
    for (const row of rows) found.set(`${row.level}:${row.idx}`, row.hash);
    return found;
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const [latest] = await this.listCheckpoints(1);
    return latest;
  }

  /** The newest `limit` checkpoints, newest (largest tree) first. */
  async listCheckpoints(limit: number): Promise<StoredCheckpoint[]> {
    const rows = await this.db
      .selectFrom('checkpoints')
      .selectAll()
      .orderBy('tree_size', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toCheckpoint);
  }

  /** The checkpoints among `treeSizes` (absent sizes are simply missing), smallest first. */
  async checkpointsAt(treeSizes: readonly number[]): Promise<StoredCheckpoint[]> {
    if (treeSizes.length === 0) return [];
    const rows = await this.db
      .selectFrom('checkpoints')
      .selectAll()
      .where(
        'tree_size',
        'in',
        treeSizes.map((size) => String(size)),
      )
      .orderBy('tree_size', 'asc')
      .execute();
    return rows.map(toCheckpoint);
  }

  async insertCheckpoint(checkpoint: Checkpoint): Promise<void> {
    await this.db
      .insertInto('checkpoints')
      .values({
        tree_size: checkpoint.treeSize,
        root: checkpoint.root,
        previous_size: checkpoint.previousSize,
        previous_root: checkpoint.previousRoot,
        manifest_hash: checkpoint.manifestHash,
        chain_id: checkpoint.chainId,
        contract: checkpoint.contract,
        tx_hash: checkpoint.txHash,
        block_number: checkpoint.blockNumber,
        block_hash: checkpoint.blockHash,
        log_index: checkpoint.logIndex,
        gas_used: checkpoint.gasUsed,
      })
      .onConflict((oc) => oc.column('tree_size').doNothing())
      .execute();
  }

  /** Every ledger event about one resource, oldest first. */
  async eventsForResource(
    sourceId: string,
    resourceType: string,
    resourceId: string,
  ): Promise<readonly LedgerEventRow[]> {
    const rows = await this.db
      .selectFrom('ledger_events')
      .select(['event_id', 'kind', 'record', 'leaf_hash', 'leaf_index'])
      .where('source_id', '=', sourceId)
      .where('resource_type', '=', resourceType)
      .where('resource_id', '=', resourceId)
      .orderBy('id')
      .execute();
    return rows.map((r) => ({
      eventId: r.event_id,
      kind: r.kind,
      record: r.record,
      leafHash: r.leaf_hash,
      leafIndex: r.leaf_index === null ? null : Number(r.leaf_index),
    }));
  }
}

/** The `recorded` time of a canonical event record, or now for a record without one. */
function recordedAt(record: string): Date {
  const recorded = (JSON.parse(record) as { recorded?: unknown }).recorded;
  return typeof recorded === 'string' ? new Date(recorded) : new Date();
}

function toCheckpoint(row: {
  tree_size: string;
  root: Buffer;
  previous_size: string;
  previous_root: Buffer;
  manifest_hash: Buffer;
  chain_id: string;
  contract: string;
  tx_hash: string;
  block_number: string;
  block_hash: string;
  log_index: number;
  gas_used: string;
  anchored_at: Date;
}): StoredCheckpoint {
  return {
    treeSize: Number(row.tree_size),
    root: row.root,
    previousSize: Number(row.previous_size),
    previousRoot: row.previous_root,
    manifestHash: row.manifest_hash,
    chainId: row.chain_id,
    contract: row.contract,
    txHash: row.tx_hash,
    blockNumber: Number(row.block_number),
    blockHash: row.block_hash,
    logIndex: row.log_index,
    gasUsed: Number(row.gas_used),
    anchoredAt: row.anchored_at,
  };
}
