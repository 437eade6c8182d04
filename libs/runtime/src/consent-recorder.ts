import { createHmac, randomUUID } from 'node:crypto';
import type { OperationOutcome } from '@medplum/fhirtypes';
import {
  interpretConsent,
  keyedDigest,
  operationOutcome,
  outcomeIssue,
  patientPseudonym,
  registryScopesOf,
  type ConsentPolicy,
} from '@fhir-trail/fhir-mapping';
import { consentEvent, eventLeafEntry, leafHash } from '@fhir-trail/ledger';
import {
  type ConsentOrigin,
  PatientKeyDestroyedError,
  type Store,
  type StoreDb,
  type StoredConsent,
} from '@fhir-trail/store';

export interface ConsentIntake {
  readonly sourceId: string;
  readonly resource: unknown;
  readonly origin: ConsentOrigin;
  /** Who recorded it, for the ledger leaf: `source:<id>`, `api:consent-key`, `api:admin-key`. */
  readonly actor: string;
  /** The id to give a Consent that has none (a create through the API). */
  readonly assignId?: string;
  readonly masterKey: Buffer;
}

export type ConsentRecording =
  | {
      readonly ok: true;
      readonly consent: StoredConsent;
      /** The consent ledger leaf's event id. */
      readonly eventId: string;
    }
  | { readonly ok: false; readonly status: 400 | 422; readonly outcome: OperationOutcome };

/**
 * Interprets a FHIR Consent and, in the caller's transaction, stores it with its policy, appends a
 * `consent` ledger leaf (keyed digest of the resource, patient pseudonym; no ids) and records
 * what the patient's active policies now imply for each (patient, recipient) pair of the registry
 * mirror. A Consent the bridge cannot read is returned as a refusal and nothing is written.
 */
export async function recordConsent(
  store: Store,
  trx: StoreDb,
  intake: ConsentIntake,
): Promise<ConsentRecording> {
  const interpreted = interpretConsent(
    intake.resource,
    intake.assignId ? { consentRef: `Consent/${intake.assignId}` } : {},
  );
  if (!interpreted.ok) return interpreted;
  const policy = interpreted.policy;
  const consentId = policy.consentRef.slice('Consent/'.length);
  const content = { ...(intake.resource as Record<string, unknown>), id: consentId };
  let key: Buffer;
  try {
    key = await store.patientKeys.getOrCreate(intake.sourceId, policy.patient, trx);
  } catch (error) {
    if (!(error instanceof PatientKeyDestroyedError)) throw error;
    // An erased patient's data may no longer be kept or shared: no consent is recorded for them.
    return {
      ok: false,
      status: 422,
      outcome: operationOutcome([
        outcomeIssue({
          code: 'business-rule',
          text: 'the patient was erased; no consent can be recorded for them',
          expression: 'Consent.patient',
        }),
      ]),
    };
  }
  const previous = await store.consents.findByConsentId(intake.sourceId, consentId, trx);
  const consent = await store.consents.upsert(trx, {
    sourceId: intake.sourceId,
    consentId,
    patientRef: policy.patient,
    status: policy.status,
    policy: policy as unknown as Record<string, unknown>,
    content,
    origin: intake.origin,
  });

  const eventId = randomUUID();
  const recorded = new Date();
  const record = consentEvent({
    eventId,
    recorded,
    source: intake.sourceId,
    resourceDigest: keyedDigest(key, content),
    patient: patientPseudonym(key, policy.patient),
    actor: intake.actor,
    consentKey: keyedDigest(key, policy.consentRef),
    // An active consent grants what it permits; any other status withdraws it.
    decision: policy.status === 'active' ? 'granted' : 'revoked',
  });
  const entry = eventLeafEntry(record);
  await store.ledger.insertEvent(trx, {
    eventId,
    kind: 'consent',
    sourceId: intake.sourceId,
    resourceType: 'Consent',
    resourceId: consentId,
    record: entry.toString('utf8'),
    leafHash: leafHash(entry),
    keyScope: policy.patient,
    createdAt: recorded,
  });

  await refreshRegistryPairs(store, trx, intake.sourceId, policy.patient, key, intake.masterKey);
  if (previous && previous.patientRef !== policy.patient) {
    // The update moved the consent to another patient: the first one's grants go with it.
    const previousKey = await store.patientKeys.getOrCreate(intake.sourceId, previous.patientRef, trx);
    await refreshRegistryPairs(
      store,
      trx,
      intake.sourceId,
      previous.patientRef,
      previousKey,
      intake.masterKey,
    );
  }
  return { ok: true, consent, eventId };
}

/** Recomputes the registry mirror's wanted state for every recipient of one patient. */
async function refreshRegistryPairs(
  store: Store,
  trx: StoreDb,
  sourceId: string,
  patientRef: string,
  patientKey: Buffer,
  masterKey: Buffer,
): Promise<void> {
  const policies = (await store.consents.forPatient(sourceId, patientRef, trx)).map(
    (c) => c.policy as unknown as ConsentPolicy,
  );
  const scopes = registryScopesOf(policies);
  const registryPatientKey = Buffer.from(patientPseudonym(patientKey, patientRef).slice(2), 'hex');
  const existing = await store.consents.pairs(sourceId, patientRef, trx);
  const wanted = new Set(scopes.map((s) => s.recipientOrg));
  for (const scope of scopes) {
    await store.consents.setDesired(
      trx,
      {
        sourceId,
        patientRef,
        recipientOrg: scope.recipientOrg,
        patientKey: registryPatientKey,
        recipientKey: recipientKeyOf(masterKey, sourceId, scope.recipientOrg),
      },
      { active: true, ...scope },
    );
  }
  for (const pair of existing) {
    if (wanted.has(pair.recipientOrg)) continue;
    await store.consents.setDesired(trx, pair, {
      active: false,
      purposes: 0n,
      dataClasses: 0n,
      validFrom: 0,
      validUntil: 0,
    });
  }
}

/**
 * The registry key of a recipient organisation: HMAC-SHA-256 under a key derived from the master
 * key, over `<source>|Organization/<id>`, so organisation ids stay off chain yet the bridge can
 * always recompute the key.
 */
export function recipientKeyOf(masterKey: Buffer, sourceId: string, recipientOrg: string): Buffer {
  const derived = createHmac('sha256', masterKey).update('fhir-trail consent recipient key').digest();
  return createHmac('sha256', derived).update(`${sourceId}|${recipientOrg}`).digest();
}
