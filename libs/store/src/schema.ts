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
  token_sha256: Buffer | null;
  /** Which HMAC header the source signs its bodies with, if any. */
  signature_kind: SignatureKind | null;
  /** The HMAC secret, AES-256-GCM-wrapped under the master key (context `source-secret|<id>`). */
  signature_secret: Buffer | null;
  /** How the bridge calls the source back: the non-secret part. */
  fhir_auth: JSONColumnType<FhirAuthSettings, string | undefined, string>;
  /** The secret part of `fhir_auth` as JSON, wrapped (context `source-fhir-auth|<id>`). */
  fhir_auth_secret: Buffer | null;
  sender_profile: JSONColumnType<SenderProfile, string | undefined, string>;
  mapping_profile: string | null;
  rate_limit_per_second: number | null;
  default_secret: boolean;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  /** Set when the source is deleted through the admin API (soft: its rows keep referring to it). */
  disabled_at: Timestamp | null;
}

export interface SourceOrganisation {
  readonly display: string;
  readonly identifier?: { readonly system?: string; readonly value?: string };
  readonly reference?: string;
}

/** HMAC-SHA256 over the raw body: athenahealth `X-Hub-Signature: sha256=<hex>`, Medplum `X-Signature: <hex>`. */
export type SignatureKind = 'hub-signature' | 'medplum-signature';

/** Every check a source's notifications must pass (all of them, when several are configured). */
export type SenderAuthKind = 'bearer' | SignatureKind;

/** Algorithms SMART Backend Services clients must support (private_key_jwt). */
export type SmartSigningAlgorithm = 'RS384' | 'ES384';

/** How the bridge authenticates when it calls the source's FHIR API (fetch-back); no secrets. */
export type FhirAuthSettings =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer' }
  | {
      readonly kind: 'smart-backend';
      readonly clientId: string;
      readonly scope: string;
      /** Unset: discovered from `{fhirBaseUrl}/.well-known/smart-configuration`. */
      readonly tokenUrl?: string;
      readonly keyId: string;
      readonly algorithm: SmartSigningAlgorithm;
    };

/**
 * What a sender's event numbers mean: `subscription` is the Backport IG's gap-free counter per
 * subscription (gap detection applies), `per-bundle` numbers events within each Bundle only
 * (athenahealth), `none` sends no counter.
 */
export type EventCounter = 'subscription' | 'per-bundle' | 'none';

/** How the sender tells of a delete: never (R4 classic), HAPI `DELETE {endpoint}/{Type}/{id}`, Medplum `{}` + header. */
export type DeleteStyle = 'none' | 'hapi' | 'medplum';

/** How a sender behaves, for the parts of the pipeline that must adapt to it. */
export interface SenderProfile {
  readonly counter: EventCounter;
  readonly deleteStyle: DeleteStyle;
  /** How long the sender waits for our answer before it counts a failure (athenahealth: 2000). */
  readonly responseBudgetMs: number;
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
  /** False when an older version arrived after a newer one: recorded, never applied. */
  applied: Generated<boolean>;
  source_last_updated: Timestamp | null;
}

export interface ProvenancesTable {
  id: string;
  resource_version_id: Int8;
  /** null once the patient was erased (the row stays as a tombstone). */
  content: JSONColumnType<Record<string, unknown>> | null;
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
  /** The resource as resolved, before mapping: what a replay runs through the active profile again. */
  input: JSONColumnType<Record<string, unknown>> | null;
  /** What storing the input needs besides the resource (interaction, fullUrl, source version). */
  input_context: JSONColumnType<DeadLetterInputContext> | null;
  /** `{id}|{version}` of the mapping profile that refused it (the built-in `identity|0` included). */
  mapping_profile: string | null;
  status: ColumnType<DeadLetterStatus, DeadLetterStatus | undefined, DeadLetterStatus>;
  replay_count: Generated<number>;
  replay_requested_at: Timestamp | null;
  last_replay_at: Timestamp | null;
  last_replay_outcome: JSONColumnType<Record<string, unknown>> | null;
  /** The resource version a successful replay stored. */
  replayed_version_id: Int8 | null;
}

/** `open` until a replay stores the resource (`replayed`). */
export type DeadLetterStatus = 'open' | 'replayed';

/** The parts of the notification event a dead-lettered resource is stored with on replay. */
export interface DeadLetterInputContext {
  readonly interaction: string;
  readonly fullUrl?: string;
  readonly focusVersionId?: string;
}

export interface MappingProfilesTable {
  profile_id: string;
  version: number;
  document: JSONColumnType<Record<string, unknown>>;
  origin: string;
  created_at: GeneratedTimestamp;
}

export interface MappingProfileActiveTable {
  profile_id: string;
  version: number;
  activated_at: GeneratedTimestamp;
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
  /** The patient key the digests were made with: `Patient/{id}`, or `*` outside a Patient compartment. */
  key_scope: string | null;
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
  /** The erasure leaf that destroyed the key. */
  erasure_event_id: string | null;
}

export interface ProcessedEventsTable {
  source_id: string;
  /** `sub:<subscription>#<n>`, `evt:<notification event id>` or `res:<Type>/<id>/<version>/<interaction>`. */
  dedupe_key: string;
  inbox_id: Int8;
  entry_index: number;
  first_seen_at: GeneratedTimestamp;
  duplicates: Generated<number>;
  last_duplicate_at: Timestamp | null;
}

export interface ResourceHeadsTable {
  source_id: string;
  resource_type: string;
  resource_id: string;
  version: number;
  source_version_id: string | null;
  source_last_updated: Timestamp | null;
  deleted: Generated<boolean>;
}

export interface SubscriptionsTable {
  source_id: string;
  reference: string;
  topic: string | null;
  status: string | null;
  last_event_number: Int8 | null;
  heartbeat_period_s: number | null;
  last_heartbeat_at: Timestamp | null;
  last_notification_at: Timestamp | null;
  last_event_at: Timestamp | null;
  alert: string | null;
  alert_at: Timestamp | null;
  notifications: ColumnType<string, string | number | undefined, string | number>;
  duplicates: ColumnType<string, string | number | undefined, string | number>;
  /** Resource types seen in this subscription's events: what a fallback search re-queries. */
  resource_types: ColumnType<string[], string[] | undefined, string[]>;
  updated_at: GeneratedTimestamp;
  /** Created by the bridge through the admin API (it holds the subscription's secret). */
  managed: Generated<boolean>;
  content: string | null;
}

export interface SubscriptionTokensTable {
  source_id: string;
  reference: string;
  token_sha256: Buffer;
  created_at: GeneratedTimestamp;
}

export type EventGapStatus = 'open' | 'filled' | 'repaired' | 'searched' | 'failed';

export interface EventGapsTable {
  id: GeneratedInt8;
  source_id: string;
  subscription: string;
  from_number: Int8;
  to_number: Int8;
  status: ColumnType<EventGapStatus, EventGapStatus | undefined, EventGapStatus>;
  detected_at: GeneratedTimestamp;
  closed_at: Timestamp | null;
  detail: string | null;
}

export interface AdminApiKeysTable {
  /** Where the key comes from, e.g. `ADMIN_API_KEY`. */
  id: string;
  /** SHA-256 of the key; the key itself is never stored. */
  key_sha256: Buffer;
  default_secret: boolean;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/** Signed anchor transactions until settled (see migration 0010). */
export interface AnchorOutboxTable {
  tx_hash: string;
  chain_id: string;
  signer: string;
  nonce: Int8;
  tree_size: Int8;
  root: string;
  previous_size: Int8;
  previous_root: string;
  manifest_hash: string;
  raw_transaction: string;
  replaces: string | null;
  /** numeric: decimal wei. */
  max_fee_per_gas: string;
  max_priority_fee_per_gas: string;
  status: 'pending' | 'mined' | 'failed' | 'replaced';
  block_number: Int8 | null;
  created_at: GeneratedTimestamp;
  sent_at: Timestamp | null;
  settled_at: Timestamp | null;
}

/** Where a consent came from: a source's intake, the FHIR API, or an EIP-712 grant signed by the patient or a delegate. */
export type ConsentOrigin = 'intake' | 'api' | 'signed';

export interface ConsentsTable {
  id: GeneratedInt8;
  source_id: string;
  /** The FHIR id of the Consent (unique per source). */
  consent_id: string;
  version: Generated<number>;
  patient_ref: string;
  status: string;
  /** The normalised policy (`ConsentPolicy` of @fhir-trail/fhir-mapping). */
  policy: JSONColumnType<Record<string, unknown>>;
  content: JSONColumnType<Record<string, unknown>>;
  origin: ConsentOrigin;
  recorded_at: GeneratedTimestamp;
}

/** numeric(78,0): node-postgres returns it as a decimal string. */
type Uint256 = ColumnType<string, string | bigint | undefined, string | bigint>;

export interface ConsentRegistryPairsTable {
  source_id: string;
  patient_ref: string;
  recipient_org: string;
  patient_key: Buffer;
  recipient_key: Buffer;
  desired_active: boolean;
  desired_purposes: Uint256;
  desired_data_classes: Uint256;
  desired_valid_from: Int8;
  desired_valid_until: Int8;
  confirmed_active: Generated<boolean>;
  confirmed_purposes: Uint256;
  confirmed_data_classes: Uint256;
  confirmed_valid_from: ColumnType<string, string | number | bigint | undefined, string | number | bigint>;
  confirmed_valid_until: ColumnType<string, string | number | bigint | undefined, string | number | bigint>;
  confirmed_block: Int8 | null;
  tx_hash: string | null;
  updated_at: GeneratedTimestamp;
}

export type DeliveryMode = 'put' | 'transaction';
export type SharingDecisionKind = 'delivered' | 'denied' | 'failed';

export interface DestinationsTable {
  id: string;
  name: string;
  /** The source whose ids (Patient, Organization) this destination's consents use. */
  source_id: string;
  /** `Organization/<id>` the destination represents: the recipient consents name. */
  organisation: string;
  fhir_base_url: string;
  /** AES-256-GCM-wrapped bearer token (context `destination-token|<id>`), or null for no auth. */
  bearer_token: Buffer | null;
  resource_types: ColumnType<string[], string[], string[]>;
  purpose: string;
  delivery_mode: DeliveryMode;
  max_attempts: number;
  backoff_ms: number;
  /** SMART Backend Services settings (no key), or null. */
  smart_auth: ColumnType<DestinationSmartSettings | null, string | null, string | null>;
  /** AES-256-GCM-wrapped private JWK (JSON; context `destination-smart-key|<id>`), or null. */
  smart_private_key: Buffer | null;
  /** Further sources whose versions it takes (besides `source_id`). */
  sources: ColumnType<string[], string[] | undefined, string[]>;
  /** Canonical profile URLs of which `meta.profile` must name one; empty = any. */
  profiles: ColumnType<string[], string[] | undefined, string[]>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
  created_at: GeneratedTimestamp;
  disabled_at: Timestamp | null;
  /** SHA-256 of the destination's read key (reads by recipients); the key itself is never stored. */
  read_key_sha256: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
}

/** A destination's SMART Backend Services settings (client_credentials + private_key_jwt). */
export interface DestinationSmartSettings {
  readonly clientId: string;
  readonly scope: string;
  /** Unset: discovered from `{fhirBaseUrl}/.well-known/smart-configuration`. */
  readonly tokenUrl?: string;
  readonly keyId: string;
  readonly algorithm: 'RS384' | 'ES384';
}

export interface SharingDecisionsTable {
  id: GeneratedInt8;
  resource_version_id: Int8;
  destination_id: string;
  decision: SharingDecisionKind;
  reason: string;
  consent_ref: string | null;
  attempts: number;
  event_id: string;
  audit_event: JSONColumnType<Record<string, unknown>>;
  decided_at: GeneratedTimestamp;
}

/** A shareable version awaiting fan-out (migration 0060); `fanned_out_at` once its deliveries are enqueued. */
export interface ShareOutboxTable {
  resource_version_id: Int8;
  created_at: GeneratedTimestamp;
  /** When a fan-out job was last enqueued for it (the relay's clock). */
  enqueued_at: GeneratedTimestamp;
  fanned_out_at: Timestamp | null;
}

export type AccessDecisionKind = 'delivered' | 'denied';

/** One read by a recipient (migration 0050): a resource it was given or refused. */
export interface AccessDecisionsTable {
  id: GeneratedInt8;
  source_id: string;
  destination_id: string;
  resource_version_id: Int8;
  decision: AccessDecisionKind;
  reason: string;
  consent_ref: string | null;
  event_id: string;
  audit_event: JSONColumnType<Record<string, unknown>>;
  decided_at: GeneratedTimestamp;
}

export interface Database {
  sources: SourcesTable;
  admin_api_keys: AdminApiKeysTable;
  inbox: InboxTable;
  resource_versions: ResourceVersionsTable;
  provenances: ProvenancesTable;
  dead_letters: DeadLettersTable;
  ledger_events: LedgerEventsTable;
  ledger_nodes: LedgerNodesTable;
  ledger_state: LedgerStateTable;
  checkpoints: CheckpointsTable;
  patient_keys: PatientKeysTable;
  processed_events: ProcessedEventsTable;
  resource_heads: ResourceHeadsTable;
  subscriptions: SubscriptionsTable;
  event_gaps: EventGapsTable;
  subscription_tokens: SubscriptionTokensTable;
  anchor_outbox: AnchorOutboxTable;
  mapping_profiles: MappingProfilesTable;
  mapping_profile_active: MappingProfileActiveTable;
  destinations: DestinationsTable;
  sharing_decisions: SharingDecisionsTable;
  share_outbox: ShareOutboxTable;
  access_decisions: AccessDecisionsTable;
  consents: ConsentsTable;
  consent_registry_pairs: ConsentRegistryPairsTable;
}
