import {
  dataClassIndex,
  decide,
  purposeIndex,
  registryScopeAllows,
  type ConsentDecision,
  type ConsentPolicy,
  keyedDigest,
  patientPseudonym,
  type PurposeOfUse,
} from '@fhir-trail/fhir-mapping';
import {
  accessEvent,
  type DisclosureDecision,
  eventLeafEntry,
  leafHash,
  sharingEvent,
} from '@fhir-trail/ledger';
import { SOURCE_KEY_SCOPE, type Store, type StoreDb, type VersionForSharing } from '@fhir-trail/store';
import type { LedgerConnection } from './ledger-connection';

/** One disclosure to decide: a stored resource to a recipient organisation, for a purpose. */
export interface DisclosureRequest {
  readonly sourceId: string;
  /** `Patient/<id>` the resource is about; a resource outside a Patient compartment is denied. */
  readonly patientRef: string | undefined;
  /** `Organization/<id>` of the recipient. */
  readonly recipientOrg: string;
  readonly purpose: PurposeOfUse;
  readonly resourceType: string;
  /** The resource (its `meta.security` labels take part in the decision). */
  readonly content: Record<string, unknown> | null;
}

/**
 * What one request may reuse across its checks (a search checks every resource of one patient):
 * the patient's policies and the registry pair, read once. Make a new one per request.
 */
export class ConsentLookupCache {
  readonly policies = new Map<string, Promise<ConsentPolicy[]>>();
  readonly pairs = new Map<string, ReturnType<Store['consents']['pair']>>();
}

/**
 * The consent decision for one disclosure **at this moment**, shared by deliveries (share
 * processor) and reads by recipients: the patient's active stored policies must permit it
 * (`decide`), and, when a consent registry is configured, the mirror's (patient, recipient) pair
 * must be confirmed at finality and allow the purpose and resource type; otherwise a deny with
 * `rulePath: 'registry'`.
 */
export async function checkDisclosureConsent(
  store: Store,
  ledger: Pick<LedgerConnection, 'consentRegistry'>,
  request: DisclosureRequest,
  now: number = Date.now(),
  cache: ConsentLookupCache = new ConsentLookupCache(),
): Promise<ConsentDecision> {
  const { sourceId, patientRef, recipientOrg, purpose, resourceType } = request;
  if (!patientRef) return { decision: 'deny', reason: 'no-applicable-consent' };
  const patientKey = `${sourceId}|${patientRef}`;
  let loading = cache.policies.get(patientKey);
  if (!loading) {
    loading = store.consents
      .forPatient(sourceId, patientRef)
      .then((rows) => rows.map((c) => c.policy as unknown as ConsentPolicy));
    cache.policies.set(patientKey, loading);
  }
  const policies = await loading;
  const decision = decide(policies, {
    patient: patientRef,
    recipientOrg,
    purpose,
    resourceType,
    securityLabels: securityLabelsOf(request.content),
    at: now,
  });
  if (decision.decision === 'deny' || !ledger.consentRegistry) return decision;
  const pairKey = `${patientKey}|${recipientOrg}`;
  let pairLoading = cache.pairs.get(pairKey);
  if (!pairLoading) {
    pairLoading = store.consents.pair({ sourceId, patientRef, recipientOrg });
    cache.pairs.set(pairKey, pairLoading);
  }
  const pair = await pairLoading;
  const allowed =
    pair?.confirmedBlock !== null &&
    pair?.confirmed.active === true &&
    registryScopeAllows(
      pair.confirmed,
      purposeIndex(purpose),
      dataClassIndex(resourceType),
      Math.floor(now / 1000),
    );
  return allowed
    ? decision
    : {
        decision: 'deny',
        reason: 'no-applicable-consent',
        consentRef: decision.consentRef,
        rulePath: 'registry',
      };
}

function securityLabelsOf(content: Record<string, unknown> | null): string[] {
  const meta = content?.['meta'] as { security?: { system?: string; code?: string }[] } | undefined;
  return (meta?.security ?? []).flatMap((c) => (c.system && c.code ? [`${c.system}|${c.code}`] : []));
}

/** One disclosure decision to record as a ledger leaf: a delivery (`sharing`) or a read (`access`). */
export interface DisclosureLeaf {
  readonly kind: 'sharing' | 'access';
  readonly eventId: string;
  readonly recordedAt: Date;
  readonly version: VersionForSharing;
  readonly patientRef: string | undefined;
  /** `bridge:<id>`: who disclosed. */
  readonly actor: string;
  readonly destinationId: string;
  readonly purpose: string;
  readonly consentRef?: string;
  readonly decision: DisclosureDecision;
}

/**
 * Writes the ledger leaf of one disclosure decision (deliveries and reads alike), in the caller's
 * transaction: keyed digest of the version and of the consent, the patient pseudonym, and the key
 * scope on the row so the auditor and erasure find it. Ids and pseudonyms only, never PHI.
 */
export async function recordDisclosureLeaf(store: Store, trx: StoreDb, leaf: DisclosureLeaf): Promise<void> {
  const { version, patientRef } = leaf;
  const keyScope = patientRef ?? SOURCE_KEY_SCOPE;
  const key = await store.patientKeys.getOrCreate(version.sourceId, keyScope, trx);
  const build = leaf.kind === 'sharing' ? sharingEvent : accessEvent;
  const record = build({
    eventId: leaf.eventId,
    recorded: leaf.recordedAt,
    source: version.sourceId,
    subject: version.resourceType,
    resourceDigest: keyedDigest(key, version.content),
    patient: patientRef ? patientPseudonym(key, patientRef) : undefined,
    actor: leaf.actor,
    recipient: `destination:${leaf.destinationId}`,
    purpose: leaf.purpose,
    consentKey: leaf.consentRef ? keyedDigest(key, leaf.consentRef) : undefined,
    decision: leaf.decision,
  });
  const entry = eventLeafEntry(record);
  await store.ledger.insertEvent(trx, {
    eventId: leaf.eventId,
    kind: leaf.kind,
    sourceId: version.sourceId,
    resourceType: version.resourceType,
    resourceId: version.resourceId,
    resourceVersionId: version.id,
    record: entry.toString('utf8'),
    leafHash: leafHash(entry),
    keyScope,
    createdAt: leaf.recordedAt,
  });
}
