import type { ColumnType, Generated, JSONColumnType } from 'kysely';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** int8 columns come back from node-postgres as strings; we keep them so (no precision loss). */
type Int8 = ColumnType<string, string | number | bigint, string | number | bigint>;
type GeneratedInt8 = ColumnType<string, string | number | bigint | undefined, never>;

export type InboxStatus = 'received' | 'done' | 'dead-letter';

export interface SourcesTable {
  id: string;
  name: string;
  organisation: JSONColumnType<SourceOrganisation>;
  fhir_base_url: string | null;
  /** SHA-256 of the bearer secret the source presents; the secret itself is never stored. */
  token_sha256: Buffer;
  default_secret: boolean;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface SourceOrganisation {
  readonly display: string;
  readonly identifier?: { readonly system?: string; readonly value?: string };
  readonly reference?: string;
}

export interface InboxTable {
  id: GeneratedInt8;
  source_id: string;
  received_at: GeneratedTimestamp;
  method: string;
  path: string;
  content_type: string | null;
  /** Request headers with credentials removed. */
  headers: JSONColumnType<Record<string, string>>;
  body: Buffer;
  shape: string;
  notification_type: string;
  event_count: number;
  status: Generated<InboxStatus>;
  enqueued_at: Timestamp | null;
  processed_at: Timestamp | null;
  attempts: Generated<number>;
  last_error: string | null;
}

export interface ResourceVersionsTable {
  id: GeneratedInt8;
  source_id: string;
  resource_type: string;
  resource_id: string;
  version: number;
  source_version_id: string | null;
  interaction: string;
  /** null for a delete tombstone. */
  content: JSONColumnType<Record<string, unknown>> | null;
  inbox_id: Int8;
  entry_index: number;
  recorded_at: Timestamp;
}

export interface ProvenancesTable {
  id: string;
  resource_version_id: Int8;
  content: JSONColumnType<Record<string, unknown>>;
  recorded_at: Timestamp;
}

export interface DeadLettersTable {
  id: GeneratedInt8;
  source_id: string;
  inbox_id: Int8 | null;
  entry_index: number | null;
  reason_code: string;
  outcome: JSONColumnType<Record<string, unknown>>;
  raw: Buffer | null;
  created_at: GeneratedTimestamp;
}

export interface LedgerEventsTable {
  id: GeneratedInt8;
  event_id: string;
  kind: string;
  source_id: string;
  resource_type: string;
  resource_id: string;
  resource_version_id: Int8 | null;
  /** The canonical (RFC 8785) event record exactly as hashed into the leaf. */
  record: string;
  leaf_hash: Buffer;
  /** Position in the log; null until the sequencer assigns it. */
  leaf_index: Int8 | null;
  created_at: GeneratedTimestamp;
}

export interface LedgerNodesTable {
  level: number;
  idx: Int8;
  hash: Buffer;
}

export interface LedgerStateTable {
  id: number;
  tree_size: Int8;
  root: Buffer;
}

export interface CheckpointsTable {
  tree_size: Int8;
  root: Buffer;
  previous_size: Int8;
  previous_root: Buffer;
  manifest_hash: Buffer;
  chain_id: string;
  contract: string;
  tx_hash: string;
  block_number: Int8;
  block_hash: string;
  log_index: number;
  gas_used: Int8;
  anchored_at: GeneratedTimestamp;
}

export interface PatientKeysTable {
  source_id: string;
  patient_ref: string;
  /** AES-256-GCM(master key) of the 32-byte patient key: iv(12) || tag(16) || ciphertext(32). */
  wrapped_key: Buffer | null;
  created_at: GeneratedTimestamp;
  destroyed_at: Timestamp | null;
}

export interface Database {
  sources: SourcesTable;
  inbox: InboxTable;
  resource_versions: ResourceVersionsTable;
  provenances: ProvenancesTable;
  dead_letters: DeadLettersTable;
  ledger_events: LedgerEventsTable;
  ledger_nodes: LedgerNodesTable;
  ledger_state: LedgerStateTable;
  checkpoints: CheckpointsTable;
  patient_keys: PatientKeysTable;
}
