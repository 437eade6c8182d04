import canonicalize from 'canonicalize';
import { isHashHex } from './hex-encoding';
import { LedgerError } from './ledger-error';
import { leafHash } from './merkle-hash';

/** What a ledger event records. Later kinds reuse the optional fields of {@link LedgerEventRecord}. */
export const LEDGER_EVENT_KINDS = ['provenance', 'sharing', 'access', 'consent', 'erasure'] as const;
export type LedgerEventKind = (typeof LEDGER_EVENT_KINDS)[number];

/**
 * One event of the log, version 1: the bytes behind a leaf. It holds ids, pseudonyms and keyed
 * digests only — never PHI, never FHIR resource ids. Kinds share one shape; each kind uses the
 * optional fields it needs, so a later kind can use them without a new record version.
 */
export interface LedgerEventRecord {
  readonly v: 1;
  readonly kind: LedgerEventKind;
  /** Unique id of the event (the bridge's, not a FHIR id). */
  readonly eventId: string;
  /** When the event was recorded: ISO 8601 UTC, e.g. `2026-11-25T06:51:00.000Z`. */
  readonly recorded: string;
  /** Id of the source system the change came from. */
  readonly source: string;
  /** What the event is about, e.g. the resource type (`Observation`); never an id. */
  readonly subject: string;
  /** `HMAC-SHA-256(K_patient, canonical resource version)`, 0x-hex. */
  readonly resourceDigest?: string;
  /** Keyed digest of the Provenance resource, 0x-hex. */
  readonly provenanceDigest?: string;
  /** Keyed patient pseudonym `HMAC(K_patient, patient id)`, 0x-hex. */
  readonly patient?: string;
  /** Organisation (or system) that acted. */
  readonly actor: string;
  /** Organisation that received the data (sharing, access). */
  readonly recipient?: string;
  /** Purpose of use code. */
  readonly purpose?: string;
  /** Consent reference (a pseudonymous key or registry id, not a FHIR id). */
  readonly consent?: string;
  /**
   * What was decided: `delivered` | `denied` | `failed` for sharing and access, `granted` |
   * `revoked` for consent. Absent for provenance and erasure.
   */
  readonly decision?: LedgerEventDecision;
}

/** Outcome of a disclosure (sharing, access). */
export const DISCLOSURE_DECISIONS = ['delivered', 'denied', 'failed'] as const;
export type DisclosureDecision = (typeof DISCLOSURE_DECISIONS)[number];
/** Outcome of a consent change. */
export const CONSENT_DECISIONS = ['granted', 'revoked'] as const;
export type ConsentDecision = (typeof CONSENT_DECISIONS)[number];
export type LedgerEventDecision = DisclosureDecision | ConsentDecision;

/** Which decisions each kind may carry (none: the field must be absent). */
const DECISIONS_BY_KIND: Readonly<Record<LedgerEventKind, readonly string[]>> = {
  provenance: [],
  sharing: DISCLOSURE_DECISIONS,
  access: DISCLOSURE_DECISIONS,
  consent: CONSENT_DECISIONS,
  erasure: [],
};

const REQUIRED_TEXT = ['eventId', 'source', 'actor'] as const;
const OPTIONAL_TEXT = ['recipient', 'purpose', 'consent'] as const;
const OPTIONAL_DIGESTS = ['resourceDigest', 'provenanceDigest', 'patient'] as const;
const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  'v',
  'kind',
  'recorded',
  'subject',
  ...REQUIRED_TEXT,
  ...OPTIONAL_TEXT,
  ...OPTIONAL_DIGESTS,
  'decision',
]);
const RECORDED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
/** A type name such as `Observation`: keeps identifiers out of `subject`. */
const SUBJECT = /^[A-Z][A-Za-z0-9]{0,63}$/;
const MAX_TEXT = 256;

/**
 * Checks that `value` is a v1 event record and returns it typed. Throws a {@link LedgerError}
 * (`INVALID_EVENT_RECORD`, `details.field`) naming the first field that is wrong; `path` prefixes
 * field names in messages (e.g. `event`). Unknown fields are refused: the schema is what keeps PHI out.
 */
export function parseLedgerEventRecord(value: unknown, path = 'record'): LedgerEventRecord {
  const fail = (field: string, problem: string): never => {
    throw new LedgerError('INVALID_EVENT_RECORD', `${path}.${field} ${problem}`, {
      details: { field: `${path}.${field}` },
    });
  };
  if (!isPlainObject(value)) {
    throw new LedgerError('INVALID_EVENT_RECORD', `${path} must be a JSON object`, {
      details: { field: path },
    });
  }
  for (const field of Object.keys(value)) {
    if (!KNOWN_FIELDS.has(field)) fail(field, 'is not a field of a v1 event record');
  }
  if (value['v'] !== 1) fail('v', 'must be 1');
  const kind = value['kind'];
  if (typeof kind !== 'string' || !(LEDGER_EVENT_KINDS as readonly string[]).includes(kind)) {
    fail('kind', `must be one of ${LEDGER_EVENT_KINDS.join(', ')}`);
  }
  const recorded = value['recorded'];
  if (typeof recorded !== 'string' || !RECORDED.test(recorded) || Number.isNaN(Date.parse(recorded))) {
    fail('recorded', 'must be an ISO 8601 UTC timestamp such as 2026-11-25T06:51:00.000Z');
  }
  const subject = value['subject'];
  if (typeof subject !== 'string' || !SUBJECT.test(subject)) {
    fail('subject', 'must be a type name such as Observation (no ids)');
  }
  for (const field of REQUIRED_TEXT) {
    if (!isText(value[field])) fail(field, `must be a non-empty string of at most ${MAX_TEXT} characters`);
  }
  for (const field of OPTIONAL_TEXT) {
    if (field in value && !isText(value[field])) {
      fail(field, `must be absent or a non-empty string of at most ${MAX_TEXT} characters`);
    }
  }
  for (const field of OPTIONAL_DIGESTS) {
    if (field in value && !isHashHex(value[field]))
      fail(field, 'must be absent or 0x-prefixed lowercase hex of 32 bytes');
  }
  const allowed = DECISIONS_BY_KIND[kind as LedgerEventKind];
  if ('decision' in value) {
    const decision = value['decision'];
    if (typeof decision !== 'string' || !allowed.includes(decision)) {
      fail(
        'decision',
        allowed.length === 0
          ? `must be absent for a ${String(kind)} event`
          : `must be one of ${allowed.join(', ')} for a ${String(kind)} event`,
      );
    }
  }
  return value as unknown as LedgerEventRecord;
}

/**
 * The leaf entry of an event: UTF-8 bytes of its RFC 8785 (JCS) canonical JSON. Validates the
 * record first, so a record that could not be verified later is never logged.
 */
export function eventLeafEntry(record: LedgerEventRecord): Buffer {
  const checked = parseLedgerEventRecord(withoutUndefined(record));
  return Buffer.from(canonicalRecordJson(checked), 'utf8');
}

/**
 * RFC 8785 (JCS) canonical JSON of any JSON value (event records, batch manifests): sorted keys,
 * no whitespace, ES number formatting; `undefined` members are dropped. Throws `INVALID_ARGUMENT`
 * for what JSON cannot hold (NaN, Infinity, a bare `undefined`).
 */
export function canonicalRecordJson(value: unknown): string {
  let json: string | undefined;
  try {
    json = canonicalize(value);
  } catch (error) {
    throw new LedgerError('INVALID_ARGUMENT', 'value cannot be written as canonical JSON', { cause: error });
  }
  if (json === undefined) {
    throw new LedgerError('INVALID_ARGUMENT', 'value cannot be written as canonical JSON');
  }
  return json;
}

/** The RFC 9162 leaf hash of an event: `SHA-256(0x00 || canonical JSON)`. */
export function eventLeafHash(record: LedgerEventRecord): Buffer {
  return leafHash(eventLeafEntry(record));
}

function isText(value: unknown): value is string {
  return (
    typeof value === 'string' && value.length > 0 && value.length <= MAX_TEXT && !hasControlCharacter(value)
  );
}

/** Control characters have no business in ids and codes, and would hide in terminals. */
function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i += 1) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) {
      return true;
    }
  }
  return false;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `{ recipient: undefined }` and `{}` are the same record. */
function withoutUndefined(record: LedgerEventRecord): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined));
}
