import { keyedDigest, patientPseudonym, resourceVersionDigest } from '@fhir-trail/fhir-mapping';
import {
  appendLeaves,
  eventLeafEntry,
  inclusionProof,
  inclusionProofKeys,
  leafHash,
  type LedgerEventRecord,
  type MerkleNode,
  nodeKeyId,
  parseLedgerEventRecord,
  rootFromFrontier,
  verifyInclusion,
} from '@fhir-trail/ledger';
import { type PatientKeyState, SOURCE_KEY_SCOPE, type StoredCheckpoint, type Store } from '@fhir-trail/store';
import { type RawBuilder, sql } from 'kysely';

/**
 * Tamper evidence for the off-chain log. Every stored event is checked against what it commits
 * to: the event record against its leaf hash and its row, the resource version and Provenance rows
 * against the keyed digests in the record (recomputed with the patient key), the leaf against the
 * stored Merkle nodes, the nodes against a recomputation from the leaves, and the heads against the
 * anchored checkpoints. One code path serves `POST /fhir/R4/Provenance/{id}/$verify` (one event,
 * its inclusion proof) and `npm run audit` (the whole log).
 */

/** What a verifier concludes about one event. */
export type EventStatus = 'verified' | 'tampered' | 'key-destroyed' | 'pending';

/** Tables whose rows the audit checks. */
export type AuditedTable =
  | 'resource_versions'
  | 'provenances'
  | 'ledger_events'
  | 'ledger_nodes'
  | 'ledger_state'
  | 'checkpoints'
  | 'patient_keys';

/** One stored record that no longer matches what the log committed to. Never holds PHI. */
export interface Mismatch {
  readonly table: AuditedTable;
  /** The row: its primary key, e.g. `id=12`, `level=0,idx=5`, `tree_size=8`. */
  readonly row: string;
  readonly problem: string;
}

/** The verification of one event. */
export interface EventVerification {
  readonly eventId: string;
  readonly kind: string;
  readonly leafIndex: number | null;
  /** The stored event record (canonical JSON) and leaf hash, as a proof bundle carries them. */
  readonly record: string;
  readonly leafHash: Buffer;
  readonly status: EventStatus;
  readonly mismatches: readonly Mismatch[];
  /** The anchored checkpoint the inclusion was checked against (verified / key-destroyed events). */
  readonly checkpoint?: StoredCheckpoint;
  /** The inclusion path (bottom-up) from the stored nodes, when the event is in `checkpoint`. */
  readonly inclusionPath?: readonly Buffer[];
}

/** What a full audit found. */
export interface AuditReport {
  readonly events: number;
  readonly treeSize: number;
  readonly statuses: Readonly<Record<EventStatus, number>>;
  readonly mismatches: readonly Mismatch[];
}

interface EventRow {
  readonly id: string;
  readonly event_id: string;
  readonly kind: string;
  readonly source_id: string;
  readonly resource_type: string;
  readonly resource_id: string;
  readonly resource_version_id: string | null;
  readonly record: string;
  readonly leaf_hash: Buffer;
  readonly leaf_index: string | null;
  readonly created_at: Date;
  readonly key_scope: string | null;
}

interface VersionRow {
  readonly id: string;
  readonly source_id: string;
  readonly resource_type: string;
  readonly resource_id: string;
  readonly version: number;
  readonly source_version_id: string | null;
  readonly interaction: string;
  readonly content: Record<string, unknown> | null;
  readonly inbox_id: string;
  readonly entry_index: number;
  readonly recorded_at: Date;
  readonly applied: boolean;
  readonly source_last_updated: Date | null;
}

interface ProvenanceRow {
  readonly id: string;
  readonly resource_version_id: string;
  readonly content: Record<string, unknown> | null;
  readonly recorded_at: Date;
}

/** The rows one event is checked against. */
interface EventContext {
  readonly event: EventRow;
  readonly version?: VersionRow;
  readonly provenance?: ProvenanceRow;
}

/** Events per round trip in a full audit. */
const PAGE = 2_000;

export class LedgerAuditor {
  /** Patient keys by `source|scope`, unwrapped once per auditor (one request, one audit run). */
  private readonly keys = new Map<string, Promise<PatientKeyState | 'unwrap-failed'>>();

  constructor(private readonly store: Store) {}

  /**
   * Verifies one event by its id (a Provenance's id is its event's id): the stored rows, the leaf,
   * and the inclusion proof from the stored nodes to the newest anchored checkpoint. Undefined when
   * there is no such event.
   */
  async verifyEvent(eventId: string): Promise<EventVerification | undefined> {
    // A Provenance whose event row no longer carries its id is still found through its version.
    const [context] = [
      ...(await this.load(sql`e.event_id = ${eventId}::uuid`)),
      ...(await this.load(
        sql`e.resource_version_id = (select resource_version_id from provenances where id = ${eventId}::uuid)`,
      )),
    ];
    if (!context) return undefined;
    const checkpoint = await this.store.ledger.latestCheckpoint();
    const mismatches = [...(await this.inspect(context))];
    const keyDestroyed = mismatches.some((m) => m.problem === KEY_DESTROYED);
    const found = mismatches.filter((m) => m.problem !== KEY_DESTROYED);
    const leafIndex = context.event.leaf_index === null ? null : Number(context.event.leaf_index);
    let inclusionPath: Buffer[] | undefined;
    if (leafIndex !== null && !(Number.isSafeInteger(leafIndex) && leafIndex >= 0)) {
      found.push(eventMismatch(context.event, 'leaf_index is not a position in the log'));
    } else if (leafIndex !== null) {
      const leafKey = { level: 0, index: leafIndex };
      const stored = await this.store.ledger.getNodes([leafKey]);
      const leaf = stored.get(nodeKeyId(leafKey));
      const recomputed = leafHash(Buffer.from(context.event.record, 'utf8'));
      if (!leaf) {
        found.push(nodeMismatch(leafKey, 'the leaf node of this event is missing'));
      } else if (!leaf.equals(recomputed)) {
        found.push(nodeMismatch(leafKey, 'the leaf node does not match the event record'));
      }
      if (checkpoint && leafIndex < checkpoint.treeSize) {
        inclusionPath = await this.inclusion(leafIndex, checkpoint, recomputed, found);
      }
    }
    const anchored = inclusionPath !== undefined;
    return {
      eventId: context.event.event_id,
      kind: context.event.kind,
      leafIndex,
      record: context.event.record,
      leafHash: context.event.leaf_hash,
      status: statusOf(found, keyDestroyed, anchored),
      mismatches: found,
      ...(anchored && checkpoint ? { checkpoint, inclusionPath } : {}),
    };
  }

  /**
   * Audits the whole log: every event and the rows it commits to, every leaf and stored node
   * (recomputed from the records), the log head and every checkpoint, and the rows no event
   * accounts for. Streams the events in pages of {@link PAGE}, in leaf order.
   */
  async auditAll(): Promise<AuditReport> {
    const mismatches: Mismatch[] = [];
    const statuses: Record<EventStatus, number> = {
      verified: 0,
      tampered: 0,
      'key-destroyed': 0,
      pending: 0,
    };
    const checkpoints = (await this.store.ledger.listCheckpoints(Number.MAX_SAFE_INTEGER)).reverse();
    const latest = checkpoints.at(-1);
    const bySize = new Map(checkpoints.map((c) => [c.treeSize, c]));
    let frontier: MerkleNode[] = [];
    let size = 0;
    let events = 0;
    let afterIndex = -1;

    const account = (found: readonly Mismatch[], anchored: boolean) => {
      const keyDestroyed = found.some((m) => m.problem === KEY_DESTROYED);
      const real = found.filter((m) => m.problem !== KEY_DESTROYED);
      mismatches.push(...real);
      statuses[statusOf(real, keyDestroyed, anchored)] += 1;
      events += 1;
    };

    for (;;) {
      const page = await this.load(sql`e.leaf_index > ${afterIndex}`, 'e.leaf_index', PAGE);
      if (page.length === 0) break;
      let pending: Buffer[] = [];
      const recomputed: MerkleNode[] = [];
      // Appends the leaves so far; a checkpoint's root is compared when the log reaches its size.
      const flush = () => {
        const appended = appendLeaves(size, frontier, pending);
        pending = [];
        frontier = [...appended.frontier];
        size = appended.treeSize;
        recomputed.push(...appended.nodes);
        const checkpoint = bySize.get(size);
        if (checkpoint && !checkpoint.root.equals(appended.root)) {
          mismatches.push({
            table: 'checkpoints',
            row: `tree_size=${size}`,
            problem: 'the stored log no longer produces the root anchored at this size',
          });
        }
      };
      for (const context of page) {
        const index = Number(context.event.leaf_index);
        const found = [...(await this.inspect(context))];
        if (index !== size + pending.length) {
          found.push(
            eventMismatch(
              context.event,
              `leaf_index ${index} breaks the log order (expected ${size + pending.length})`,
            ),
          );
        }
        account(found, latest !== undefined && index < latest.treeSize);
        afterIndex = index;
        pending.push(leafHash(Buffer.from(context.event.record, 'utf8')));
        if (bySize.has(size + pending.length)) flush();
      }
      flush();
      await this.compareNodes(recomputed, mismatches);
    }
    // Events not yet sequenced, and any whose leaf_index is no position at all.
    for (const context of await this.load(sql`e.leaf_index is null or e.leaf_index < 0`)) {
      const found = [...(await this.inspect(context))];
      if (context.event.leaf_index !== null) {
        found.push(eventMismatch(context.event, 'leaf_index is not a position in the log'));
      }
      account(found, false);
    }
    await this.auditRest(size, rootFromFrontier(frontier), checkpoints, mismatches);
    return { events, treeSize: size, statuses, mismatches };
  }

  /** Head, checkpoint chain, nodes beyond the tree, rows no event accounts for, key tombstones. */
  private async auditRest(
    size: number,
    root: Buffer,
    checkpoints: readonly StoredCheckpoint[],
    mismatches: Mismatch[],
  ): Promise<void> {
    const db = this.store.db;
    const head = await this.store.ledger.head();
    if (head.treeSize !== size || !head.root.equals(root)) {
      mismatches.push({
        table: 'ledger_state',
        row: 'id=1',
        problem: `the log head (${head.treeSize} leaves) does not match the recomputed log (${size} leaves)`,
      });
    }
    let previous = { treeSize: 0, root: undefined as Buffer | undefined };
    for (const checkpoint of checkpoints) {
      if (checkpoint.treeSize > size) {
        mismatches.push({
          table: 'checkpoints',
          row: `tree_size=${checkpoint.treeSize}`,
          problem: `anchors more leaves than the log holds (${size})`,
        });
      }
      const chained =
        checkpoint.previousSize === previous.treeSize &&
        (previous.root === undefined || checkpoint.previousRoot.equals(previous.root));
      if (!chained) {
        mismatches.push({
          table: 'checkpoints',
          row: `tree_size=${checkpoint.treeSize}`,
          problem: 'does not name the checkpoint before it as its previous head',
        });
      }
      previous = { treeSize: checkpoint.treeSize, root: checkpoint.root };
    }
    // Every stored node is a complete aligned subtree of the log: (idx + 1) · 2^level ≤ size.
    const extra = await sql<{ level: number; idx: string }>`
      select level, idx from ledger_nodes
      where level < 0 or level > 62 or idx < 0 or (idx + 1) * power(2::numeric, level) > ${size}
      order by level, idx`.execute(db);
    for (const row of extra.rows) {
      mismatches.push(nodeMismatch({ level: row.level, index: Number(row.idx) }, 'is not a node of the log'));
    }
    const orphanVersions = await sql<{ id: string }>`
      select v.id from resource_versions v
      where not exists (select 1 from ledger_events e where e.resource_version_id = v.id)
      order by v.id`.execute(db);
    for (const row of orphanVersions.rows) {
      mismatches.push({
        table: 'resource_versions',
        row: `id=${row.id}`,
        problem: 'no ledger event records this resource version',
      });
    }
    const orphanProvenances = await sql<{ id: string }>`
      select p.id from provenances p
      where not exists (select 1 from ledger_events e where e.event_id = p.id)
      order by p.id`.execute(db);
    for (const row of orphanProvenances.rows) {
      mismatches.push({
        table: 'provenances',
        row: `id=${row.id}`,
        problem: 'no ledger event records this Provenance',
      });
    }
    const unexplained = await sql<{ source_id: string; patient_ref: string }>`
      select k.source_id, k.patient_ref from patient_keys k
      where k.wrapped_key is null and not exists (
        select 1 from ledger_events e
        where e.event_id = k.erasure_event_id and e.kind = 'erasure'
          and e.source_id = k.source_id and e.key_scope = k.patient_ref)`.execute(db);
    for (const row of unexplained.rows) {
      mismatches.push({
        table: 'patient_keys',
        row: `source_id=${row.source_id}`,
        problem: 'a patient key was destroyed without an erasure event in the log',
      });
    }
  }

  /** Compares recomputed nodes with the stored ones. */
  private async compareNodes(nodes: readonly MerkleNode[], mismatches: Mismatch[]): Promise<void> {
    if (nodes.length === 0) return;
    const stored = await this.store.ledger.getNodes(nodes);
    for (const node of nodes) {
      const hash = stored.get(nodeKeyId(node));
      if (!hash) mismatches.push(nodeMismatch(node, 'is missing'));
      else if (!hash.equals(node.hash)) {
        mismatches.push(nodeMismatch(node, 'does not match the hash recomputed from the leaves'));
      }
    }
  }

  /** The inclusion path of a leaf from the stored nodes, checked against the checkpoint's root. */
  private async inclusion(
    leafIndex: number,
    checkpoint: StoredCheckpoint,
    leaf: Buffer,
    found: Mismatch[],
  ): Promise<Buffer[] | undefined> {
    const reader = {
      getNodes: (keys: Parameters<Store['ledger']['getNodes']>[0]) => this.store.ledger.getNodes(keys),
    };
    let path: Buffer[];
    try {
      path = await inclusionProof(reader, leafIndex, checkpoint.treeSize);
    } catch {
      const keys = inclusionProofKeys(leafIndex, checkpoint.treeSize);
      const stored = await this.store.ledger.getNodes(keys);
      for (const key of keys.filter((k) => !stored.has(nodeKeyId(k)))) {
        found.push(nodeMismatch(key, 'a node of the inclusion proof is missing'));
      }
      return undefined;
    }
    if (!verifyInclusion(leaf, leafIndex, checkpoint.treeSize, path, checkpoint.root)) {
      const keys = inclusionProofKeys(leafIndex, checkpoint.treeSize);
      found.push({
        table: 'ledger_nodes',
        row: keys.map((k) => `level=${k.level},idx=${k.index}`).join(' / ') || `level=0,idx=${leafIndex}`,
        problem: `the inclusion proof from these stored nodes does not reach the root anchored at ${checkpoint.treeSize} leaves`,
      });
      return undefined;
    }
    return path;
  }

  /** Checks one event against its record, its rows and its patient key. */
  private async inspect(context: EventContext): Promise<readonly Mismatch[]> {
    const { event } = context;
    const found: Mismatch[] = [];
    const fail = (table: AuditedTable, row: string, problem: string) => found.push({ table, row, problem });
    const eventRow = `id=${event.id}`;

    let record: LedgerEventRecord;
    try {
      record = parseLedgerEventRecord(JSON.parse(event.record) as unknown);
      if (eventLeafEntry(record).toString('utf8') !== event.record) {
        throw new Error('not canonical');
      }
    } catch {
      fail('ledger_events', eventRow, 'the event record is not a canonical v1 record');
      return found;
    }
    if (!leafHash(Buffer.from(event.record, 'utf8')).equals(event.leaf_hash)) {
      fail('ledger_events', eventRow, 'leaf_hash does not match the event record');
    }
    const columns: [string, unknown, unknown][] = [
      ['event_id', event.event_id, record.eventId],
      ['kind', event.kind, record.kind],
      ['source_id', event.source_id, record.source],
      ['resource_type', event.resource_type, record.subject],
      ['created_at', iso(event.created_at), iso(record.recorded)],
    ];
    for (const [column, stored, recorded] of columns) {
      if (stored !== recorded) fail('ledger_events', eventRow, `${column} does not match the event record`);
    }

    const scope = event.key_scope;
    // Provenance and erasure events are always written with their key scope; other kinds name one
    // when their writer knows it (without it their pseudonym and digests go unchecked, not flagged).
    const keyRequired = record.kind === 'provenance' || record.kind === 'erasure';
    const key = scope === null ? undefined : await this.keyState(event.source_id, scope);
    if (key === 'unwrap-failed') {
      fail('patient_keys', `source_id=${event.source_id}`, 'the wrapped patient key no longer unwraps');
    } else if (key?.state === 'missing') {
      fail('ledger_events', eventRow, 'key_scope names no patient key');
    } else if (key === undefined && keyRequired) {
      fail('ledger_events', eventRow, `key_scope is missing for a ${record.kind} event`);
    }
    const active =
      key !== undefined && key !== 'unwrap-failed' && key.state === 'active' ? key.key : undefined;
    const destroyed =
      key !== undefined && key !== 'unwrap-failed' && key.state === 'destroyed' ? key : undefined;

    if (record.kind === 'erasure') {
      if (scope !== `Patient/${event.resource_id}` || event.resource_type !== 'Patient') {
        fail('ledger_events', eventRow, 'the erasure event does not name the erased patient key');
      }
      if (!destroyed || destroyed.erasureEventId !== event.event_id) {
        fail('ledger_events', eventRow, 'the erasure event does not match a destroyed patient key');
      }
      return found;
    }
    if (active && scope !== null) {
      const pseudonym = scope === SOURCE_KEY_SCOPE ? undefined : patientPseudonym(active, scope);
      if (record.patient !== pseudonym) {
        fail('ledger_events', eventRow, 'the patient pseudonym does not match key_scope');
      }
    }
    if (destroyed)
      found.push({ table: 'patient_keys', row: `source_id=${event.source_id}`, problem: KEY_DESTROYED });

    if (event.resource_version_id === null) {
      // A disclosure or consent may digest a record kept elsewhere (a consent policy): not checked here.
      if (record.kind === 'provenance') fail('ledger_events', eventRow, 'resource_version_id is missing');
      return found;
    }
    const version = context.version;
    if (!version) {
      fail('ledger_events', eventRow, 'resource_version_id names no stored resource version');
      return found;
    }
    const versionRow = `id=${version.id}`;
    if (
      version.source_id !== event.source_id ||
      version.resource_type !== event.resource_type ||
      version.resource_id !== event.resource_id
    ) {
      fail('resource_versions', versionRow, 'the resource version is not the one its ledger event names');
      fail('ledger_events', eventRow, 'resource_version_id names a version of another resource');
    }
    if (active && record.resourceDigest !== undefined) {
      const digest = resourceVersionDigest(active, {
        source: version.source_id,
        resourceType: version.resource_type,
        resourceId: version.resource_id,
        version: version.version,
        sourceVersionId: version.source_version_id,
        sourceLastUpdated: version.source_last_updated ? iso(version.source_last_updated) : null,
        interaction: version.interaction,
        recorded: iso(version.recorded_at),
        inboxId: String(version.inbox_id),
        entryIndex: version.entry_index,
        applied: version.applied,
        resource: version.content,
      });
      if (digest !== record.resourceDigest) {
        fail('resource_versions', versionRow, 'the resource version does not match its keyed digest');
      }
    }
    if (destroyed && version.content !== null) {
      fail('resource_versions', versionRow, 'holds content although the patient was erased');
    }

    if (record.kind !== 'provenance') return found;
    const provenance = context.provenance;
    if (!provenance) {
      fail('ledger_events', eventRow, 'no Provenance row has this event id');
      return found;
    }
    const provenanceRow = `id=${provenance.id}`;
    if (provenance.resource_version_id !== event.resource_version_id) {
      // Either row may be the altered one: both are named.
      fail('provenances', provenanceRow, 'resource_version_id is not the version its ledger event names');
      fail('ledger_events', eventRow, 'resource_version_id is not the version its Provenance names');
    }
    if (iso(provenance.recorded_at) !== record.recorded) {
      fail('provenances', provenanceRow, 'recorded_at does not match the event record');
    }
    if (active) {
      if (
        provenance.content === null ||
        keyedDigest(active, provenance.content) !== record.provenanceDigest
      ) {
        fail('provenances', provenanceRow, 'the Provenance does not match its keyed digest');
      }
    } else if (destroyed && provenance.content !== null) {
      fail('provenances', provenanceRow, 'holds content although the patient was erased');
    }
    return found;
  }

  private keyState(sourceId: string, scope: string): Promise<PatientKeyState | 'unwrap-failed'> {
    const id = `${sourceId}|${scope}`;
    let state = this.keys.get(id);
    if (!state) {
      state = this.store.patientKeys.find(sourceId, scope).catch(() => 'unwrap-failed' as const);
      this.keys.set(id, state);
    }
    return state;
  }

  /** Events matching `where`, each with the version it names and the Provenance of its id. */
  private async load(
    where: RawBuilder<unknown>,
    orderBy: 'e.id' | 'e.leaf_index' = 'e.id',
    limit?: number,
  ): Promise<EventContext[]> {
    const { rows } = await sql<Record<string, unknown>>`
      select e.id, e.event_id, e.kind, e.source_id, e.resource_type, e.resource_id,
             e.resource_version_id, e.record, e.leaf_hash, e.leaf_index, e.created_at, e.key_scope,
             to_jsonb(v) as version, to_jsonb(p) as provenance
      from ledger_events e
      left join resource_versions v on v.id = e.resource_version_id
      left join provenances p on p.id = e.event_id
      where ${where}
      order by ${sql.ref(orderBy)}
      ${limit === undefined ? sql`` : sql`limit ${limit}`}`.execute(this.store.db);
    return rows.map((row) => ({
      event: row as unknown as EventRow,
      version: row.version ? toVersion(row.version as Record<string, unknown>) : undefined,
      provenance: row.provenance ? toProvenance(row.provenance as Record<string, unknown>) : undefined,
    }));
  }
}

/** Marks an event whose key was destroyed (not a mismatch: the verdict is "key destroyed"). */
const KEY_DESTROYED = 'the patient key was destroyed (erasure)';

function statusOf(found: readonly Mismatch[], keyDestroyed: boolean, anchored: boolean): EventStatus {
  if (found.length > 0) return 'tampered';
  if (keyDestroyed) return 'key-destroyed';
  return anchored ? 'verified' : 'pending';
}

function nodeMismatch(key: { level: number; index: number }, problem: string): Mismatch {
  return { table: 'ledger_nodes', row: `level=${key.level},idx=${key.index}`, problem };
}

function eventMismatch(event: EventRow, problem: string): Mismatch {
  return { table: 'ledger_events', row: `id=${event.id}`, problem };
}

function iso(value: Date | string): string {
  return new Date(value).toISOString();
}

/** `to_jsonb` writes timestamps as text and bigints as numbers; back to the column types. */
function toVersion(json: Record<string, unknown>): VersionRow {
  return {
    ...(json as unknown as VersionRow),
    id: String(json.id),
    inbox_id: String(json.inbox_id),
    recorded_at: new Date(json.recorded_at as string),
    source_last_updated: json.source_last_updated ? new Date(json.source_last_updated as string) : null,
  };
}

function toProvenance(json: Record<string, unknown>): ProvenanceRow {
  return {
    ...(json as unknown as ProvenanceRow),
    resource_version_id: String(json.resource_version_id),
    recorded_at: new Date(json.recorded_at as string),
  };
}
