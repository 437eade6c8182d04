import {
  type ConsentDecision,
  type DisclosureDecision,
  type LedgerEventKind,
  type LedgerEventRecord,
  parseLedgerEventRecord,
} from './event-record';

/**
 * Builders for the five event kinds of the log. Each takes pseudonyms and keyed digests already
 * computed with the patient's key (`K_patient`, see `keyedDigest` / `patientPseudonym` in
 * `@fhir-trail/fhir-mapping`) — this lib never sees a FHIR resource — and returns a checked v1
 * {@link LedgerEventRecord}: a builder throws `INVALID_EVENT_RECORD` (naming the field) rather
 * than return a record the log would refuse.
 */

/** What every event has: who logged what, when, from which source. */
interface EventBase {
  /** Unique id of the event (the bridge's UUID; never a FHIR resource id of the source). */
  readonly eventId: string;
  /** When the event happened; a Date is written as ISO 8601 UTC. */
  readonly recorded: Date | string;
  /** Id of the source system the data came from. */
  readonly source: string;
  /** Organisation or system that acted, e.g. `source:ehr-a` or `bridge:fhir-trail-1`. */
  readonly actor: string;
}

/** A new resource version stored with its Provenance. */
export interface ProvenanceEventInput extends EventBase {
  /** Resource type of the version, e.g. `Observation`. */
  readonly subject: string;
  /** Keyed digest of the stored resource version (0x-hex). */
  readonly resourceDigest: string;
  /** Keyed digest of its Provenance resource (0x-hex). */
  readonly provenanceDigest: string;
  /** Keyed pseudonym of the patient the resource is about; absent outside a Patient compartment. */
  readonly patient?: string;
}

/** A disclosure: data sent to another organisation (sharing) or read by one (access). */
export interface DisclosureEventInput extends EventBase {
  /** Resource type disclosed, e.g. `Observation`. */
  readonly subject: string;
  /** Organisation that received (or was refused) the data, e.g. `org:clinic-b`. */
  readonly recipient: string;
  /** Purpose of use code, e.g. `TREAT` (v3 PurposeOfUse). */
  readonly purpose: string;
  /** The consent the decision rests on: a pseudonymous consent key or registry id, never a FHIR id. */
  readonly consentKey?: string;
  /** `delivered`, `denied` (consent refused it) or `failed` (the recipient could not be reached). */
  readonly decision: DisclosureDecision;
  /** Keyed digest of the resource version disclosed (0x-hex). */
  readonly resourceDigest?: string;
  /** Keyed pseudonym of the patient. */
  readonly patient?: string;
}

/** A consent grant or revocation for a recipient (MedRec's pattern: keyed by pseudonyms). */
export interface ConsentEventInput extends EventBase {
  /** Keyed pseudonym of the patient who consents. */
  readonly patient: string;
  /** Pseudonymous consent key or registry id (never a FHIR id). */
  readonly consentKey: string;
  readonly decision: ConsentDecision;
  /** Organisation the consent is for, when it names one. */
  readonly recipient?: string;
  /** Purpose of use the consent covers, when it names one. */
  readonly purpose?: string;
  /** Keyed digest of the Consent resource, when one is stored (0x-hex). */
  readonly resourceDigest?: string;
}

/**
 * An erasure (GDPR art. 17): the patient's key was destroyed. Only the pseudonym, computed before
 * the key was destroyed, and the source — nothing else about the patient.
 */
export interface ErasureEventInput extends EventBase {
  readonly patient: string;
}

/** The leaf of a stored resource version and its Provenance. */
export function provenanceEvent(input: ProvenanceEventInput): LedgerEventRecord {
  return build('provenance', input, {
    subject: input.subject,
    resourceDigest: input.resourceDigest,
    provenanceDigest: input.provenanceDigest,
    patient: input.patient,
  });
}

/** The leaf of a delivery to a recipient (or its refusal or failure). */
export function sharingEvent(input: DisclosureEventInput): LedgerEventRecord {
  return build('sharing', input, disclosureFields(input));
}

/** The leaf of a read by a recipient (or its refusal or failure). */
export function accessEvent(input: DisclosureEventInput): LedgerEventRecord {
  return build('access', input, disclosureFields(input));
}

/** The leaf of a consent grant or revocation. */
export function consentEvent(input: ConsentEventInput): LedgerEventRecord {
  return build('consent', input, {
    subject: 'Consent',
    patient: input.patient,
    consent: input.consentKey,
    decision: input.decision,
    recipient: input.recipient,
    purpose: input.purpose,
    resourceDigest: input.resourceDigest,
  });
}

/** The leaf of an erasure: the erased patient's pseudonym and the source, nothing more. */
export function erasureEvent(input: ErasureEventInput): LedgerEventRecord {
  return build('erasure', input, { subject: 'Patient', patient: input.patient });
}

function disclosureFields(input: DisclosureEventInput): Partial<LedgerEventRecord> {
  return {
    subject: input.subject,
    recipient: input.recipient,
    purpose: input.purpose,
    consent: input.consentKey,
    decision: input.decision,
    resourceDigest: input.resourceDigest,
    patient: input.patient,
  };
}

function build(
  kind: LedgerEventKind,
  base: EventBase,
  fields: Partial<LedgerEventRecord>,
): LedgerEventRecord {
  const record: Record<string, unknown> = {
    v: 1,
    kind,
    eventId: base.eventId,
    recorded: typeof base.recorded === 'string' ? base.recorded : base.recorded.toISOString(),
    source: base.source,
    actor: base.actor,
  };
  for (const [field, value] of Object.entries(fields)) {
    if (value !== undefined) record[field] = value;
  }
  return parseLedgerEventRecord(record, kind);
}
