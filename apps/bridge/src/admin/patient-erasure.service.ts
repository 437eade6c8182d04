import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { sql } from 'kysely';
import type { AppConfig } from '@fhir-trail/config';
import type { Resource } from '@medplum/fhirtypes';
import { patientPseudonym, patientReferenceOf } from '@fhir-trail/fhir-mapping';
import { erasureEvent, eventLeafEntry, leafHash } from '@fhir-trail/ledger';
import { APP_CONFIG, MappingProfileRegistry, STORE } from '@fhir-trail/runtime';
import type { Store, StoreDb } from '@fhir-trail/store';

/** What an erasure did. */
export type ErasureResult =
  | {
      readonly status: 'erased';
      readonly eventId: string;
      readonly destroyedAt: Date;
      readonly resourceVersions: number;
      readonly provenances: number;
      readonly notifications: number;
      readonly deadLetters: number;
      /** Stored consents deleted. */
      readonly consents: number;
      /** Consent registry pairs withdrawn (revoked on chain by the worker's registry sync). */
      readonly registryPairs: number;
    }
  | { readonly status: 'already-erased'; readonly eventId: string | null; readonly destroyedAt: Date }
  | { readonly status: 'unknown-patient' };

/**
 * GDPR art. 17 erasure by crypto-shredding, in one transaction: the patient's key is locked (so
 * ingest cannot use it meanwhile), the erasure leaf is written with the pseudonym computed before
 * the key goes, the off-chain copies are deleted — resource version content, Provenance content,
 * the raw notifications they came in — while their rows stay as tombstones so the log still
 * stands, and the key is destroyed (`wrapped_key` null, time and erasure event kept). Dead letters
 * about the patient lose their kept input (and raw notification) too, so they can no longer be
 * inspected or replayed. The patient's stored consents (resource and policy) are deleted and each
 * of their consent registry pairs is set to inactive, so the worker's registry sync revokes it on
 * chain (the pair rows stay, holding only pseudonymous keys, as the revocation's record).
 */
@Injectable()
export class PatientErasureService {
  private readonly logger = new Logger(PatientErasureService.name);

  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly mappings: MappingProfileRegistry,
  ) {}

  /** @param patientRef `Patient/{id}` as the source names the patient. */
  async erase(sourceId: string, patientRef: string): Promise<ErasureResult> {
    const result = await this.store.transaction(async (trx): Promise<ErasureResult> => {
      const state = await this.store.patientKeys.lockForErasure(trx, sourceId, patientRef);
      if (state.state === 'missing') return { status: 'unknown-patient' };
      if (state.state === 'destroyed') {
        return { status: 'already-erased', eventId: state.erasureEventId, destroyedAt: state.destroyedAt };
      }
      const eventId = randomUUID();
      const recorded = new Date();
      const record = erasureEvent({
        eventId,
        recorded,
        source: sourceId,
        actor: `bridge:${this.config.bridgeId}`,
        patient: patientPseudonym(state.key, patientRef),
      });
      const entry = eventLeafEntry(record);
      await this.store.ledger.insertEvent(trx, {
        eventId,
        kind: record.kind,
        sourceId,
        resourceType: 'Patient',
        resourceId: patientRef.slice('Patient/'.length),
        record: entry.toString('utf8'),
        leafHash: leafHash(entry),
        keyScope: patientRef,
        createdAt: recorded,
      });

      const versions = await trx
        .selectFrom('ledger_events')
        .select('resource_version_id')
        .where('source_id', '=', sourceId)
        .where('key_scope', '=', patientRef)
        .where('resource_version_id', 'is not', null)
        .execute();
      const ids = versions.flatMap((v) => (v.resource_version_id === null ? [] : [v.resource_version_id]));
      let resourceVersions = 0;
      let provenances = 0;
      let notifications = 0;
      if (ids.length > 0) {
        const erasedVersions = await trx
          .updateTable('resource_versions')
          .set({ content: null })
          .where('id', 'in', ids)
          .returning('inbox_id')
          .execute();
        resourceVersions = erasedVersions.length;
        const erasedProvenances = await trx
          .updateTable('provenances')
          .set({ content: null })
          .where('resource_version_id', 'in', ids)
          .executeTakeFirst();
        provenances = Number(erasedProvenances.numUpdatedRows);
        // The disclosure log stays (who received or read what, when, under which decision) but its
        // AuditEvents lose their entities: the patient and resource references.
        for (const table of ['sharing_decisions', 'access_decisions'] as const) {
          await trx
            .updateTable(table)
            .set({ audit_event: sql`audit_event - 'entity'` })
            .where('resource_version_id', 'in', ids)
            .execute();
        }
        // The raw notifications the versions came in are copies too. A notification that also held
        // other patients' resources goes as well: its resources are stored, so only the raw copy is lost.
        const inboxIds = [...new Set(erasedVersions.map((v) => v.inbox_id))];
        // A row still `received` is left to ingest, which drops its body once it meets the erased patient.
        const processed = await trx
          .selectFrom('inbox')
          .select('id')
          .where('id', 'in', inboxIds)
          .where('status', '<>', 'received')
          .execute();
        notifications = await this.store.inbox.eraseBodies(
          trx,
          processed.map((row) => row.id),
        );
        await trx.updateTable('dead_letters').set({ raw: null }).where('inbox_id', 'in', inboxIds).execute();
      }
      const deadLetters = await this.eraseDeadLetterInputs(trx, sourceId, patientRef);
      // Nothing more may be shared: the consents go, and every registry grant is withdrawn.
      const consent = await this.store.consents.eraseForPatient(trx, sourceId, patientRef);
      const destroyedAt = await this.store.patientKeys.destroy(trx, sourceId, patientRef, eventId);
      return {
        status: 'erased',
        eventId,
        destroyedAt,
        resourceVersions,
        provenances,
        notifications,
        deadLetters,
        consents: consent.consents,
        registryPairs: consent.pairs,
      };
    });
    if (result.status === 'erased') {
      this.logger.log({
        msg: 'patient erased',
        source: sourceId,
        eventId: result.eventId,
        resourceVersions: result.resourceVersions,
      });
    }
    return result;
  }

  /**
   * Dead letters keep the resource as the source sent it (before mapping) for a replay. Those about
   * this patient — named as the source names them, or under the id the source's mapping profile
   * stores them (its reference rewriting) — lose that input and the raw notification they came in.
   */
  private async eraseDeadLetterInputs(trx: StoreDb, sourceId: string, patientRef: string): Promise<number> {
    const source = await this.store.sources.findById(sourceId);
    const mapping = source ? await this.mappings.forSource(source) : undefined;
    const letters = await this.store.deadLetters.withInputs(trx, sourceId);
    const about = letters.filter((letter) => {
      const ref = patientReferenceOf(letter.input as Resource);
      if (!ref) return false;
      const id = ref.slice('Patient/'.length);
      return ref === patientRef || `Patient/${mapping?.storedId('Patient', id) ?? id}` === patientRef;
    });
    await this.store.deadLetters.dropInput(trx, ...about.map((letter) => letter.id));
    const inboxIds = [
      ...new Set(about.flatMap((letter) => (letter.inboxId === null ? [] : [letter.inboxId]))),
    ];
    if (inboxIds.length > 0) {
      await this.store.inbox.eraseBodies(trx, inboxIds);
      await trx.updateTable('dead_letters').set({ raw: null }).where('inbox_id', 'in', inboxIds).execute();
    }
    return about.length;
  }
}
