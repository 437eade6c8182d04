import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Resource } from '@medplum/fhirtypes';
import type { AppConfig } from '@fhir-trail/config';
import {
  buildAccessAuditEvent,
  patientReferenceOf,
  type AccessOutcome,
  type ConsentDecision,
  type PurposeOfUse,
} from '@fhir-trail/fhir-mapping';
import {
  APP_CONFIG,
  LEDGER,
  type LedgerConnection,
  STORE,
  ConsentLookupCache,
  checkDisclosureConsent,
  recordDisclosureLeaf,
} from '@fhir-trail/runtime';
import type { Store, StoreDb, VersionForSharing } from '@fhir-trail/store';
import type { RecipientCaller } from './recipient-auth.guard';

/** One resource a recipient asked for, with the decision made about it (already logged). */
export interface AccessDecided {
  readonly version: VersionForSharing;
  readonly outcome: AccessOutcome;
  readonly eventId: string;
}

interface ReadContext {
  readonly caller: RecipientCaller;
  readonly purpose: PurposeOfUse;
  readonly interaction: 'read' | 'search-type';
  /** The search as asked, for the AuditEvent's query entity. */
  readonly query?: string;
}

/**
 * Reads by recipients: each resource is consent-checked **at the moment of the read**, with the
 * same check deliveries use (`checkDisclosureConsent`), and every decision — returned or refused
 * — is recorded before anything is answered: an AuditEvent (IHE BALP Read / Query) and an
 * `access` ledger leaf, in one transaction per request.
 */
@Injectable()
export class RecipientReadsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
    @Inject(LEDGER) private readonly ledger: LedgerConnection,
  ) {}

  /** The current version of `Type/id` in the caller's source, if any (nothing decided yet). */
  current(caller: RecipientCaller, resourceType: string, resourceId: string) {
    return this.store.sharing.currentVersion(caller.destination.sourceId, resourceType, resourceId);
  }

  /** Current versions of one type in a patient's compartment (nothing decided yet). */
  forPatient(caller: RecipientCaller, patientRef: string, resourceType: string) {
    return this.store.sharing.currentVersionsForPatient(
      caller.destination.sourceId,
      patientRef,
      resourceType,
    );
  }

  /** Decides and logs each version; answers the decisions in the same order. */
  async decide(context: ReadContext, versions: readonly VersionForSharing[]): Promise<AccessDecided[]> {
    const now = Date.now();
    // One patient's policies and registry pair are read once per request, however many resources.
    const cache = new ConsentLookupCache();
    const checked: { version: VersionForSharing; patientRef?: string; decision: ConsentDecision }[] = [];
    for (const version of versions) {
      const patientRef = patientReferenceOf(version.content as unknown as Resource);
      const decision = await checkDisclosureConsent(
        this.store,
        this.ledger,
        {
          sourceId: version.sourceId,
          patientRef,
          recipientOrg: context.caller.destination.organisation,
          purpose: context.purpose,
          resourceType: version.resourceType,
          content: version.content,
        },
        now,
        cache,
      );
      checked.push({ version, ...(patientRef ? { patientRef } : {}), decision });
    }
    if (checked.length === 0) return [];
    return this.store.transaction(async (trx) => {
      const decided: AccessDecided[] = [];
      for (const c of checked) {
        const outcome: AccessOutcome = c.decision.decision === 'permit' ? 'delivered' : 'denied';
        const eventId = await this.record(trx, context, c.version, c.patientRef, c.decision, outcome);
        decided.push({ version: c.version, outcome, eventId });
      }
      return decided;
    });
  }

  private async record(
    trx: StoreDb,
    context: ReadContext,
    version: VersionForSharing,
    patientRef: string | undefined,
    decision: ConsentDecision,
    outcome: AccessOutcome,
  ): Promise<string> {
    const { destination } = context.caller;
    const eventId = randomUUID();
    const recordedAt = new Date();
    const auditEvent = buildAccessAuditEvent({
      id: eventId,
      recorded: recordedAt.toISOString(),
      outcome,
      interaction: context.interaction,
      reason: decision.reason,
      purpose: context.purpose,
      resource: `${version.resourceType}/${version.resourceId}/_history/${version.version}`,
      ...(patientRef ? { patient: patientRef } : {}),
      ...(decision.consentRef ? { consent: decision.consentRef } : {}),
      ...(context.query ? { query: context.query } : {}),
      bridge: { system: 'urn:fhir-trail:bridge', value: this.config.bridgeId },
      recipient: { organisation: destination.organisation, credential: context.caller.credential },
    });
    await this.store.sharing.insertAccess(trx, {
      sourceId: version.sourceId,
      destinationId: destination.id,
      resourceVersionId: version.id,
      decision: outcome,
      reason: decision.reason,
      ...(decision.consentRef ? { consentRef: decision.consentRef } : {}),
      eventId,
      auditEvent: auditEvent as unknown as Record<string, unknown>,
    });
    await recordDisclosureLeaf(this.store, trx, {
      kind: 'access',
      eventId,
      recordedAt,
      version,
      patientRef,
      actor: `bridge:${this.config.bridgeId}`,
      destinationId: destination.id,
      purpose: context.purpose,
      consentRef: decision.consentRef,
      decision: outcome,
    });
    return eventId;
  }
}
