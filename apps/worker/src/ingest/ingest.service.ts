import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import type { OperationOutcome, Reference, Resource } from '@medplum/fhirtypes';
import type { AppConfig } from '@fhir-trail/config';
import {
  buildProvenance,
  FhirRequestError,
  keyedDigest,
  loadFhirDefinitions,
  type NotificationEvent,
  type NotificationRequest,
  operationOutcome,
  outcomeIssue,
  parseNotification,
  type ParsedNotification,
  patientPseudonym,
  patientReferenceOf,
  validateResource,
} from '@fhir-trail/fhir-mapping';
import { eventLeafEntry, leafHash, type LedgerEventRecord } from '@fhir-trail/ledger';
import { APP_CONFIG, STORE } from '@fhir-trail/runtime';
import type { InboxEntry, SourceRecord, Store, StoreDb } from '@fhir-trail/store';

/** What became of one accepted notification. */
export interface IngestResult {
  readonly status: 'done' | 'dead-letter' | 'already-processed';
  readonly stored: number;
  readonly deadLetters: number;
  /** New ledger leaves written (one per stored version). */
  readonly ledgerEvents: number;
}

/** Resources without a Patient compartment share one key per source. */
const SOURCE_KEY_SCOPE = '*';
const HOOK_PATH = /^\/hooks\/[^/]+\/([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]+)$/;

/**
 * Turns one inbox row into stored resource versions, each with a Provenance and a ledger leaf, in
 * one transaction: either all of it commits and the row is marked done, or none of it does and the
 * job is retried. Idempotent: a row already finished is skipped. What cannot be stored (invalid
 * resource, unparseable body, content that must be fetched) becomes a dead letter with its
 * OperationOutcome — never a silent drop.
 */
@Injectable()
export class IngestService implements OnModuleInit {
  private readonly logger = new Logger(IngestService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
  ) {}

  onModuleInit(): void {
    const started = performance.now();
    loadFhirDefinitions();
    this.logger.log({ msg: 'FHIR R4 definitions loaded', ms: Math.round(performance.now() - started) });
  }

  async process(inboxId: string): Promise<IngestResult> {
    return this.store.transaction(async (trx) => {
      const entry = await this.store.inbox.lockForProcessing(trx, inboxId);
      if (!entry) return { status: 'already-processed', stored: 0, deadLetters: 0, ledgerEvents: 0 };
      const source = await this.store.sources.findById(entry.sourceId);
      if (!source) throw new Error(`inbox ${inboxId} names a source that no longer exists`);

      let notification: ParsedNotification;
      try {
        notification = parseNotification(notificationRequest(entry));
      } catch (error) {
        const outcome =
          error instanceof FhirRequestError
            ? error.outcome
            : failure('structure', 'the stored notification could not be parsed');
        await this.deadLetter(trx, entry, -1, 'unparseable-notification', outcome);
        await this.store.inbox.finish(trx, entry.id, 'dead-letter', 'unparseable-notification');
        return { status: 'dead-letter', stored: 0, deadLetters: 1, ledgerEvents: 0 };
      }

      let stored = 0;
      let deadLetters = 0;
      for (const [index, event] of notification.events.entries()) {
        const outcome = await this.ingestEvent(trx, entry, source, event, index);
        if (outcome === 'stored') stored++;
        else deadLetters++;
      }
      const status = deadLetters > 0 && stored === 0 ? 'dead-letter' : 'done';
      await this.store.inbox.finish(
        trx,
        entry.id,
        status,
        deadLetters > 0 ? `${deadLetters} dead letter(s)` : undefined,
      );
      return { status, stored, deadLetters, ledgerEvents: stored };
    });
  }

  private async ingestEvent(
    trx: StoreDb,
    entry: InboxEntry,
    source: SourceRecord,
    event: NotificationEvent,
    index: number,
  ): Promise<'stored' | 'dead-letter'> {
    if (event.interaction === 'delete') {
      const type = event.focus?.resourceType;
      const id = event.focus?.id;
      if (!type || !id) {
        await this.deadLetter(
          trx,
          entry,
          index,
          'unresolvable-delete',
          failure('required', 'a delete must name the resource as {Type}/{id}'),
        );
        return 'dead-letter';
      }
      await this.storeVersion(trx, entry, source, event, index, { resourceType: type, id });
      return 'stored';
    }
    if (event.content !== 'full-resource' || !event.resource) {
      await this.deadLetter(
        trx,
        entry,
        index,
        'fetch-required',
        failure(
          'not-supported',
          `${event.content} notification: the resource must be fetched from the source, which this bridge does not do yet`,
        ),
      );
      return 'dead-letter';
    }
    const resource = event.resource;
    if (!resource.id) {
      await this.deadLetter(
        trx,
        entry,
        index,
        'missing-id',
        failure('required', 'the resource has no id', `${resource.resourceType}.id`),
      );
      return 'dead-letter';
    }
    const validation = validateResource(resource);
    if (!validation.valid) {
      await this.deadLetter(trx, entry, index, 'invalid-resource', validation.outcome);
      return 'dead-letter';
    }
    await this.storeVersion(trx, entry, source, event, index, resource as Resource & { id: string });
    return 'stored';
  }

  private async storeVersion(
    trx: StoreDb,
    entry: InboxEntry,
    source: SourceRecord,
    event: NotificationEvent,
    index: number,
    resource: { resourceType: string; id: string; meta?: { versionId?: string } },
  ): Promise<void> {
    const recorded = new Date();
    const isDelete = event.interaction === 'delete';
    const content = isDelete ? undefined : (resource as unknown as Record<string, unknown>);
    const sourceVersionId = resource.meta?.versionId ?? event.focus?.versionId;
    const version = await this.store.resources.insertVersion(trx, {
      sourceId: source.id,
      resourceType: resource.resourceType,
      resourceId: resource.id,
      sourceVersionId,
      interaction: isDelete ? 'delete' : event.interaction === 'create' ? 'create' : 'update',
      content,
      inboxId: entry.id,
      entryIndex: index,
      recordedAt: recorded,
    });

    const provenanceId = randomUUID();
    const provenance = buildProvenance({
      id: provenanceId,
      recorded: recorded.toISOString(),
      target: { resourceType: resource.resourceType, id: resource.id, versionId: String(version.version) },
      activity: isDelete ? 'delete' : version.version === 1 ? 'create' : 'update',
      sourceOrganisation: source.organisation,
      sourceEntity: sourceEntity(source, event, resource.resourceType, resource.id, sourceVersionId),
      bridge: {
        identifier: { system: 'urn:fhir-trail:bridge', value: this.config.bridgeId },
        display: 'FHIR Trail bridge',
      },
    });
    await this.store.resources.insertProvenance(trx, {
      id: provenanceId,
      resourceVersionId: version.id,
      content: provenance as unknown as Record<string, unknown>,
      recordedAt: recorded,
    });

    const patientRef = content ? patientReferenceOf(content as unknown as Resource) : undefined;
    const key = await this.store.patientKeys.getOrCreate(source.id, patientRef ?? SOURCE_KEY_SCOPE, trx);
    const record: LedgerEventRecord = {
      v: 1,
      kind: 'provenance',
      eventId: provenanceId,
      recorded: recorded.toISOString(),
      source: source.id,
      subject: resource.resourceType,
      resourceDigest: keyedDigest(key, content ?? { resourceType: resource.resourceType, deleted: true }),
      provenanceDigest: keyedDigest(key, provenance),
      ...(patientRef ? { patient: patientPseudonym(key, patientRef) } : {}),
      actor: `source:${source.id}`,
    };
    const leafEntry = eventLeafEntry(record);
    await this.store.ledger.insertEvent(trx, {
      eventId: provenanceId,
      kind: record.kind,
      sourceId: source.id,
      resourceType: resource.resourceType,
      resourceId: resource.id,
      resourceVersionId: version.id,
      record: Buffer.from(leafEntry).toString('utf8'),
      leafHash: leafHash(leafEntry),
    });
  }

  private async deadLetter(
    trx: StoreDb,
    entry: InboxEntry,
    index: number,
    reasonCode: string,
    outcome: OperationOutcome,
  ): Promise<void> {
    this.logger.warn({ msg: 'dead letter', inboxId: entry.id, entry: index, reason: reasonCode });
    await this.store.deadLetters.insert(
      { sourceId: entry.sourceId, inboxId: entry.id, entryIndex: index, reasonCode, outcome: { ...outcome } },
      trx,
    );
  }
}

function notificationRequest(entry: InboxEntry): NotificationRequest {
  const path = HOOK_PATH.exec(entry.path);
  return {
    method: entry.method as NotificationRequest['method'],
    body:
      entry.body.length === 0
        ? undefined
        : (JSON.parse(entry.body.toString('utf8').replace(/^\uFEFF/, '')) as unknown),
    pathResource: path ? { resourceType: path[1], id: path[2] } : undefined,
    headers: entry.headers,
  };
}

/**
 * Where the resource lives at the source: the Bundle's fullUrl, or its address under the source's
 * FHIR base; for a source with no known base, an identifier naming `{Type}/{id}` in that source.
 */
function sourceEntity(
  source: SourceRecord,
  event: NotificationEvent,
  resourceType: string,
  id: string,
  versionId: string | undefined,
): string | Reference {
  if (event.fullUrl && /^https?:\/\//.test(event.fullUrl)) return event.fullUrl;
  const relative = `${resourceType}/${id}${versionId ? `/_history/${versionId}` : ''}`;
  if (source.fhirBaseUrl) return `${source.fhirBaseUrl.replace(/\/$/, '')}/${relative}`;
  return {
    type: resourceType as Reference['type'],
    identifier: { system: `urn:fhir-trail:source:${source.id}`, value: relative },
  };
}

function failure(
  code: 'structure' | 'required' | 'not-supported',
  text: string,
  expression?: string,
): OperationOutcome {
  return operationOutcome([outcomeIssue({ code, text, expression })]);
}
