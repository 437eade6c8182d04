import { sql } from 'kysely';
import type { StoreDb } from './database';
import type { LedgerEventRow } from './ledger.repository';
import { unwrapKey, wrapKey } from './patient-keys.repository';
import type { JsonWebKey } from 'node:crypto';
import type {
  AccessDecisionKind,
  DeliveryMode,
  DestinationSmartSettings,
  SharingDecisionKind,
} from './schema';

export interface NewDestination {
  readonly id: string;
  readonly name: string;
  readonly sourceId: string;
  readonly organisation: string;
  readonly fhirBaseUrl: string;
  readonly bearerToken?: string;
  /** SMART Backend Services instead of a bearer token. */
  readonly smartBackend?: DestinationSmartSettings & { readonly privateKey: JsonWebKey };
  readonly resourceTypes: readonly string[];
  /** Further sources whose versions it takes (besides `sourceId`); empty = `sourceId` only. */
  readonly sources: readonly string[];
  /** Canonical profile URLs; a version is wanted when its `meta.profile` names one. Empty = any. */
  readonly profiles: readonly string[];
  readonly purpose: string;
  readonly deliveryMode: DeliveryMode;
  readonly maxAttempts: number;
  readonly backoffMs: number;
  /** SHA-256 of the key the destination's organisation presents to read (reads by recipients). */
  readonly readKeySha256?: Buffer;
}

/** A destination as the admin API shows it: never its token, private key nor read key. */
export interface DestinationView extends Omit<
  NewDestination,
  'bearerToken' | 'smartBackend' | 'readKeySha256'
> {
  readonly hasBearerToken: boolean;
  readonly hasReadKey: boolean;
  /** The SMART Backend Services settings, without the key. */
  readonly smartBackend?: DestinationSmartSettings;
  readonly enabled: boolean;
  readonly updatedAt: Date;
}

/** A destination with its credentials unwrapped, for delivery. */
export interface Destination extends Omit<DestinationView, 'smartBackend'> {
  readonly bearerToken?: string;
  readonly smartBackend?: DestinationSmartSettings & { readonly privateKey?: JsonWebKey };
}

export interface NewSharingDecision {
  readonly resourceVersionId: string;
  readonly destinationId: string;
  readonly decision: SharingDecisionKind;
  readonly reason: string;
  readonly consentRef?: string;
  readonly attempts: number;
  readonly eventId: string;
  readonly auditEvent: Record<string, unknown>;
}

export interface SharingDecision extends NewSharingDecision {
  readonly id: string;
  readonly decidedAt: Date;
}

/** A stored resource version, for sharing. */
export interface VersionForSharing {
  readonly id: string;
  readonly sourceId: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly version: number;
  readonly content: Record<string, unknown> | null;
  readonly applied: boolean;
}

export interface NewAccessDecision {
  readonly sourceId: string;
  readonly destinationId: string;
  readonly resourceVersionId: string;
  readonly decision: AccessDecisionKind;
  readonly reason: string;
  readonly consentRef?: string;
  readonly eventId: string;
  readonly auditEvent: Record<string, unknown>;
}

export interface AccessDecision extends NewAccessDecision {
  readonly id: string;
  readonly decidedAt: Date;
}

/** The elements that put a resource in a Patient's compartment (as `patientReferenceOf` reads them). */
const PATIENT_ELEMENTS = ['subject', 'patient', 'beneficiary', 'individual'] as const;
/** Most resources one search by patient considers (each is consent-checked and logged). */
export const PATIENT_SEARCH_LIMIT = 500;

/** Destinations and the sharing decisions made for them. */
export class SharingRepository {
  constructor(
    private readonly db: StoreDb,
    private readonly masterKey: Buffer,
  ) {}

  async upsertDestination(d: NewDestination): Promise<DestinationView> {
    const values = {
      name: d.name,
      source_id: d.sourceId,
      organisation: d.organisation,
      fhir_base_url: d.fhirBaseUrl,
      bearer_token: d.bearerToken
        ? wrapKey(this.masterKey, Buffer.from(d.bearerToken, 'utf8'), `destination-token|${d.id}`)
        : null,
      smart_auth: d.smartBackend ? JSON.stringify(smartSettings(d.smartBackend)) : null,
      smart_private_key: d.smartBackend
        ? wrapKey(
            this.masterKey,
            Buffer.from(JSON.stringify(d.smartBackend.privateKey), 'utf8'),
            `destination-smart-key|${d.id}`,
          )
        : null,
      resource_types: [...d.resourceTypes],
      sources: [...d.sources],
      profiles: [...d.profiles],
      updated_at: new Date(),
      purpose: d.purpose,
      delivery_mode: d.deliveryMode,
      max_attempts: d.maxAttempts,
      backoff_ms: d.backoffMs,
      disabled_at: null,
      read_key_sha256: d.readKeySha256 ?? null,
    };
    await this.db
      .insertInto('destinations')
      .values({ id: d.id, ...values })
      .onConflict((oc) => oc.column('id').doUpdateSet(values))
      .execute();
    return withoutToken((await this.findDestination(d.id))!);
  }

  async listDestinations(): Promise<DestinationView[]> {
    const rows = await this.db.selectFrom('destinations').selectAll().orderBy('id').execute();
    return rows.map((r) => withoutToken(this.toDestination(r, false)));
  }

  async enabledDestinations(sourceId: string): Promise<Destination[]> {
    const rows = await this.db
      .selectFrom('destinations')
      .selectAll()
      .where((eb) => eb.or([eb('source_id', '=', sourceId), eb(eb.val(sourceId), '=', eb.fn.any('sources'))]))
      .where('disabled_at', 'is', null)
      .orderBy('id')
      .execute();
    return rows.map((r) => this.toDestination(r, true));
  }

  async findDestination(id: string): Promise<Destination | undefined> {
    const row = await this.db.selectFrom('destinations').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.toDestination(row, true) : undefined;
  }

  /** The enabled destination whose read key has this SHA-256, if any. */
  async findDestinationByReadKey(keySha256: Buffer): Promise<Destination | undefined> {
    const row = await this.db
      .selectFrom('destinations')
      .selectAll()
      .where('read_key_sha256', '=', keySha256)
      .where('disabled_at', 'is', null)
      .executeTakeFirst();
    return row ? this.toDestination(row, false) : undefined;
  }

  /** The current (applied, not deleted) version of a resource, if any. */
  async currentVersion(
    sourceId: string,
    resourceType: string,
    resourceId: string,
  ): Promise<VersionForSharing | undefined> {
    const row = await this.currentVersions(sourceId)
      .where('h.resource_type', '=', resourceType)
      .where('h.resource_id', '=', resourceId)
      .executeTakeFirst();
    return row ? toVersion(row) : undefined;
  }

  /**
   * The current versions of the resources in a patient's compartment (the Patient itself, and those
   * whose subject, patient, beneficiary or individual is the patient), optionally of one type,
   * ordered by type and id; at most {@link PATIENT_SEARCH_LIMIT}.
   */
  async currentVersionsForPatient(
    sourceId: string,
    patientRef: string,
    resourceType?: string,
  ): Promise<VersionForSharing[]> {
    const patientId = patientRef.slice('Patient/'.length);
    let query = this.currentVersions(sourceId).where((eb) =>
      eb.or([
        eb.and([eb('h.resource_type', '=', 'Patient'), eb('h.resource_id', '=', patientId)]),
        ...PATIENT_ELEMENTS.map(
          (element) =>
            sql<boolean>`v.content @> ${JSON.stringify({ [element]: { reference: patientRef } })}::jsonb`,
        ),
      ]),
    );
    if (resourceType) query = query.where('h.resource_type', '=', resourceType);
    const rows = await query
      .orderBy('h.resource_type')
      .orderBy('h.resource_id')
      .limit(PATIENT_SEARCH_LIMIT)
      .execute();
    return rows.map(toVersion);
  }

  private currentVersions(sourceId: string) {
    return this.db
      .selectFrom('resource_heads as h')
      .innerJoin('resource_versions as v', (join) =>
        join
          .onRef('v.source_id', '=', 'h.source_id')
          .onRef('v.resource_type', '=', 'h.resource_type')
          .onRef('v.resource_id', '=', 'h.resource_id')
          .onRef('v.version', '=', 'h.version'),
      )
      .select([
        'v.id',
        'v.source_id',
        'v.resource_type',
        'v.resource_id',
        'v.version',
        'v.content',
        'v.applied',
      ])
      .where('h.source_id', '=', sourceId)
      .where('h.deleted', '=', false)
      .where('v.applied', '=', true)
      .where('v.content', 'is not', null);
  }

  /** Records one read decision (a resource given to, or refused to, a recipient). */
  async insertAccess(trx: StoreDb, d: NewAccessDecision): Promise<void> {
    await trx
      .insertInto('access_decisions')
      .values({
        source_id: d.sourceId,
        destination_id: d.destinationId,
        resource_version_id: d.resourceVersionId,
        decision: d.decision,
        reason: d.reason,
        consent_ref: d.consentRef ?? null,
        event_id: d.eventId,
        audit_event: JSON.stringify(d.auditEvent),
      })
      .execute();
  }

  /** Every read decision about a patient (its AuditEvent's patient entity), with its ledger event, oldest first. */
  async accessForPatient(
    sourceId: string,
    patientRef: string,
  ): Promise<{ decision: AccessDecision; event: LedgerEventRow }[]> {
    const patientEntity = JSON.stringify({ entity: [{ what: { reference: patientRef } }] });
    const rows = await this.db
      .selectFrom('access_decisions as d')
      .innerJoin('ledger_events as le', (join) => join.on(sql<boolean>`le.event_id::text = d.event_id`))
      .selectAll('d')
      .select(['le.kind', 'le.record', 'le.leaf_hash', 'le.leaf_index'])
      .where('d.source_id', '=', sourceId)
      .where(sql<boolean>`d.audit_event @> ${patientEntity}::jsonb`)
      .orderBy('d.id')
      .execute();
    return rows.map((r) => ({
      decision: {
        id: r.id,
        sourceId: r.source_id,
        destinationId: r.destination_id,
        resourceVersionId: r.resource_version_id,
        decision: r.decision,
        reason: r.reason,
        ...(r.consent_ref ? { consentRef: r.consent_ref } : {}),
        eventId: r.event_id,
        auditEvent: r.audit_event,
        decidedAt: r.decided_at,
      },
      event: {
        eventId: r.event_id,
        kind: r.kind,
        record: r.record,
        leafHash: r.leaf_hash,
        leafIndex: r.leaf_index === null ? null : Number(r.leaf_index),
      },
    }));
  }

  async findVersion(id: string): Promise<VersionForSharing | undefined> {
    const row = await this.db
      .selectFrom('resource_versions')
      .select(['id', 'source_id', 'resource_type', 'resource_id', 'version', 'content', 'applied'])
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toVersion(row) : undefined;
  }

  async findDecision(resourceVersionId: string, destinationId: string): Promise<SharingDecision | undefined> {
    const row = await this.db
      .selectFrom('sharing_decisions')
      .selectAll()
      .where('resource_version_id', '=', resourceVersionId)
      .where('destination_id', '=', destinationId)
      .executeTakeFirst();
    return row ? toDecision(row) : undefined;
  }

  /** Every decision for a destination, oldest first. */
  async decisionsFor(destinationId: string): Promise<SharingDecision[]> {
    const rows = await this.db
      .selectFrom('sharing_decisions')
      .selectAll()
      .where('destination_id', '=', destinationId)
      .orderBy('id')
      .execute();
    return rows.map(toDecision);
  }

  /**
   * A patient's access log: every sharing decision about the patient (found through the AuditEvent's
   * patient entity) for destinations of one source, with its ledger event, oldest first.
   */
  async decisionsForPatient(
    sourceId: string,
    patientRef: string,
  ): Promise<{ decision: SharingDecision; event: LedgerEventRow }[]> {
    const patientEntity = JSON.stringify({ entity: [{ what: { reference: patientRef } }] });
    const rows = await this.db
      .selectFrom('sharing_decisions as d')
      .innerJoin('destinations as dest', 'dest.id', 'd.destination_id')
      .innerJoin('ledger_events as le', (join) => join.on(sql<boolean>`le.event_id::text = d.event_id`))
      .selectAll('d')
      .select(['le.kind', 'le.record', 'le.leaf_hash', 'le.leaf_index'])
      .innerJoin('resource_versions as rv', 'rv.id', 'd.resource_version_id')
      // The version's source names the patient (a destination may take several sources).
      .where('rv.source_id', '=', sourceId)
      .where(sql<boolean>`d.audit_event @> ${patientEntity}::jsonb`)
      .orderBy('d.id')
      .execute();
    return rows.map((r) => ({
      decision: toDecision(r),
      event: {
        eventId: r.event_id,
        kind: r.kind,
        record: r.record,
        leafHash: r.leaf_hash,
        leafIndex: r.leaf_index === null ? null : Number(r.leaf_index),
      },
    }));
  }

  /** Records a stored, shareable version as awaiting fan-out, in the transaction that stores it. */
  async recordPendingFanOut(trx: StoreDb, resourceVersionId: string): Promise<void> {
    await trx
      .insertInto('share_outbox')
      .values({ resource_version_id: resourceVersionId })
      .onConflict((oc) => oc.column('resource_version_id').doNothing())
      .execute();
  }

  /** Marks a version's fan-out done: its delivery jobs are enqueued. */
  async markFannedOut(resourceVersionId: string): Promise<void> {
    await this.db
      .updateTable('share_outbox')
      .set({ fanned_out_at: new Date() })
      .where('resource_version_id', '=', resourceVersionId)
      .where('fanned_out_at', 'is', null)
      .execute();
  }

  /**
   * Claims up to `limit` versions whose fan-out is still pending and was last enqueued before
   * `olderThan` (their job may be lost with Redis), stamping them enqueued now; rows another relay
   * holds are skipped.
   */
  async claimPendingFanOuts(olderThan: Date, limit: number): Promise<readonly string[]> {
    const rows = await this.db
      .updateTable('share_outbox')
      .set({ enqueued_at: new Date() })
      .where(
        'resource_version_id',
        'in',
        this.db
          .selectFrom('share_outbox')
          .select('resource_version_id')
          .where('fanned_out_at', 'is', null)
          .where('enqueued_at', '<', olderThan)
          .orderBy('enqueued_at')
          .limit(limit)
          .forUpdate()
          .skipLocked(),
      )
      .returning('resource_version_id')
      .execute();
    return rows.map((r) => r.resource_version_id);
  }

  /** Records a decision once; a second one for the same (version, destination) is ignored (false). */
  async insertDecision(trx: StoreDb, d: NewSharingDecision): Promise<boolean> {
    const inserted = await trx
      .insertInto('sharing_decisions')
      .values({
        resource_version_id: d.resourceVersionId,
        destination_id: d.destinationId,
        decision: d.decision,
        reason: d.reason,
        consent_ref: d.consentRef ?? null,
        attempts: d.attempts,
        event_id: d.eventId,
        audit_event: JSON.stringify(d.auditEvent),
      })
      .onConflict((oc) => oc.columns(['resource_version_id', 'destination_id']).doNothing())
      .returning('id')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  private toDestination(
    r: {
      id: string;
      name: string;
      source_id: string;
      organisation: string;
      fhir_base_url: string;
      bearer_token: Buffer | null;
      smart_auth: DestinationSmartSettings | null;
      smart_private_key: Buffer | null;
      resource_types: string[];
      sources: string[];
      profiles: string[];
      updated_at: Date;
      purpose: string;
      delivery_mode: DeliveryMode;
      max_attempts: number;
      backoff_ms: number;
      disabled_at: Date | null;
      read_key_sha256: Buffer | null;
    },
    withToken: boolean,
  ): Destination {
    return {
      id: r.id,
      name: r.name,
      sourceId: r.source_id,
      organisation: r.organisation,
      fhirBaseUrl: r.fhir_base_url,
      resourceTypes: r.resource_types,
      sources: r.sources,
      profiles: r.profiles,
      updatedAt: r.updated_at,
      purpose: r.purpose,
      deliveryMode: r.delivery_mode,
      maxAttempts: r.max_attempts,
      backoffMs: r.backoff_ms,
      hasBearerToken: r.bearer_token !== null,
      hasReadKey: r.read_key_sha256 !== null,
      enabled: r.disabled_at === null,
      ...(r.smart_auth
        ? {
            smartBackend: {
              ...smartSettings(r.smart_auth),
              ...(withToken && r.smart_private_key
                ? {
                    privateKey: JSON.parse(
                      unwrapKey(
                        this.masterKey,
                        r.smart_private_key,
                        `destination-smart-key|${r.id}`,
                      ).toString('utf8'),
                    ) as JsonWebKey,
                  }
                : {}),
            },
          }
        : {}),
      ...(withToken && r.bearer_token
        ? {
            bearerToken: unwrapKey(this.masterKey, r.bearer_token, `destination-token|${r.id}`).toString(
              'utf8',
            ),
          }
        : {}),
    };
  }
}

function withoutToken(destination: Destination): DestinationView {
  const view: Destination = { ...destination };
  delete (view as { bearerToken?: string }).bearerToken;
  delete (view as { smartBackend?: unknown }).smartBackend;
  return {
    ...view,
    ...(destination.smartBackend ? { smartBackend: smartSettings(destination.smartBackend) } : {}),
  };
}

/** The settings alone (never the key), in a fixed shape. */
function smartSettings(s: DestinationSmartSettings): DestinationSmartSettings {
  return {
    clientId: s.clientId,
    scope: s.scope,
    ...(s.tokenUrl ? { tokenUrl: s.tokenUrl } : {}),
    keyId: s.keyId,
    algorithm: s.algorithm,
  };
}

function toVersion(row: {
  id: string;
  source_id: string;
  resource_type: string;
  resource_id: string;
  version: number;
  content: Record<string, unknown> | null;
  applied: boolean;
}): VersionForSharing {
  return {
    id: row.id,
    sourceId: row.source_id,
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    version: row.version,
    content: row.content,
    applied: row.applied,
  };
}

function toDecision(row: {
  id: string;
  resource_version_id: string;
  destination_id: string;
  decision: SharingDecisionKind;
  reason: string;
  consent_ref: string | null;
  attempts: number;
  event_id: string;
  audit_event: Record<string, unknown>;
  decided_at: Date;
}): SharingDecision {
  return {
    id: row.id,
    resourceVersionId: row.resource_version_id,
    destinationId: row.destination_id,
    decision: row.decision,
    reason: row.reason,
    ...(row.consent_ref ? { consentRef: row.consent_ref } : {}),
    attempts: row.attempts,
    eventId: row.event_id,
    auditEvent: row.audit_event,
    decidedAt: row.decided_at,
  };
}
