import { sql } from 'kysely';
import type { StoreDb } from './database';
import type { LedgerEventRow } from './ledger.repository';
import { unwrapKey, wrapKey } from './patient-keys.repository';
import type { DeliveryMode, SharingDecisionKind } from './schema';

export interface NewDestination {
  readonly id: string;
  readonly name: string;
  readonly sourceId: string;
  readonly organisation: string;
  readonly fhirBaseUrl: string;
  readonly bearerToken?: string;
  readonly resourceTypes: readonly string[];
  readonly purpose: string;
  readonly deliveryMode: DeliveryMode;
  readonly maxAttempts: number;
  readonly backoffMs: number;
}

/** A destination as the admin API shows it: never its token. */
export interface DestinationView extends Omit<NewDestination, 'bearerToken'> {
  readonly hasBearerToken: boolean;
  readonly enabled: boolean;
}

/** A destination with its token unwrapped, for delivery. */
export interface Destination extends DestinationView {
  readonly bearerToken?: string;
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
      resource_types: [...d.resourceTypes],
      purpose: d.purpose,
      delivery_mode: d.deliveryMode,
      max_attempts: d.maxAttempts,
      backoff_ms: d.backoffMs,
      disabled_at: null,
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
      .where('source_id', '=', sourceId)
      .where('disabled_at', 'is', null)
      .orderBy('id')
      .execute();
    return rows.map((r) => this.toDestination(r, true));
  }

  async findDestination(id: string): Promise<Destination | undefined> {
    const row = await this.db.selectFrom('destinations').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.toDestination(row, true) : undefined;
  }

  async findVersion(id: string): Promise<VersionForSharing | undefined> {
    const row = await this.db
      .selectFrom('resource_versions')
      .select(['id', 'source_id', 'resource_type', 'resource_id', 'version', 'content', 'applied'])
      .where('id', '=', id)
      .executeTakeFirst();
    return row
      ? {
          id: row.id,
          sourceId: row.source_id,
          resourceType: row.resource_type,
          resourceId: row.resource_id,
          version: row.version,
          content: row.content,
          applied: row.applied,
        }
      : undefined;
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
      .where('dest.source_id', '=', sourceId)
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
      resource_types: string[];
      purpose: string;
      delivery_mode: DeliveryMode;
      max_attempts: number;
      backoff_ms: number;
      disabled_at: Date | null;
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
      purpose: r.purpose,
      deliveryMode: r.delivery_mode,
      maxAttempts: r.max_attempts,
      backoffMs: r.backoff_ms,
      hasBearerToken: r.bearer_token !== null,
      enabled: r.disabled_at === null,
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
  return view;
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
