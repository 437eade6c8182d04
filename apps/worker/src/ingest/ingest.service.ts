import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import type { OperationOutcome, Reference, Resource } from '@medplum/fhirtypes';
import type { AppConfig } from '@fhir-trail/config';
import {
  buildProvenance,
  eventDedupeKey,
  type EventCounterSemantics,
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
  resourceVersionDigest,
  subscriptionKey,
  validateResource,
} from '@fhir-trail/fhir-mapping';
import { eventLeafEntry, leafHash, provenanceEvent } from '@fhir-trail/ledger';
import { APP_CONFIG, STORE } from '@fhir-trail/runtime';
import {
  type EventGap,
  type InboxEntry,
  PatientKeyDestroyedError,
  type SourceRecord,
  type Store,
  type StoreDb,
} from '@fhir-trail/store';
import { EVENT_RESOLVER, type EventResolver, type ResolvedChange } from './event-resolver';

/** What became of one accepted notification. */
export interface IngestResult {
  readonly status: 'done' | 'dead-letter' | 'already-processed';
  readonly stored: number;
  readonly deadLetters: number;
  /** Events already applied from an earlier delivery (acknowledged, counted, skipped). */
  readonly duplicates: number;
  /** New ledger leaves written (one per stored version). */
  readonly ledgerEvents: number;
  /** Gaps in the sender's event numbers this notification revealed (repaired later). */
  readonly gaps: readonly EventGap[];
}

/** Resources without a Patient compartment share one key per source. */
const SOURCE_KEY_SCOPE = '*';
const HOOK_PATH = /^\/hooks\/[^/]+\/([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]+)$/;

/**
 * Turns one inbox row into stored resource versions, each with a Provenance and a ledger leaf.
 * Two phases: first the events are resolved (id-only and empty ones are fetched back from the
 * source — network calls, outside any transaction); then everything is applied in one
 * transaction that also finishes the inbox row, so it commits whole or not at all and the job is
 * retried. Idempotent and exactly-once in effect: a finished row is skipped, and each event is
 * claimed under the sender's own identity for it (subscription + event number, notification
 * event id, or type/id/version/interaction), so a duplicate delivery is counted, not applied.
 * What cannot be stored becomes a dead letter with its OperationOutcome — never a silent drop.
 */
@Injectable()
export class IngestService implements OnModuleInit {
  private readonly logger = new Logger(IngestService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
    @Inject(EVENT_RESOLVER) private readonly resolver: EventResolver,
  ) {}

  onModuleInit(): void {
    const started = performance.now();
    loadFhirDefinitions();
    this.logger.log({ msg: 'FHIR R4 definitions loaded', ms: Math.round(performance.now() - started) });
  }

  async process(inboxId: string): Promise<IngestResult> {
    const peek = await this.store.inbox.find(inboxId);
    if (!peek || peek.status !== 'received') return NOTHING_TO_DO;
    const source = await this.store.sources.findById(peek.sourceId);
    if (!source) throw new Error(`inbox ${inboxId} names a source that no longer exists`);

    let notification: ParsedNotification;
    try {
      notification = parseNotification(notificationRequest(peek));
    } catch (error) {
      const outcome =
        error instanceof FhirRequestError
          ? error.outcome
          : failure('structure', 'the stored notification could not be parsed');
      return this.store.transaction(async (trx) => {
        if (!(await this.store.inbox.lockForProcessing(trx, inboxId))) return NOTHING_TO_DO;
        await this.deadLetter(trx, peek, -1, 'unparseable-notification', outcome);
        await this.store.inbox.finish(trx, inboxId, 'dead-letter', 'unparseable-notification');
        return { ...NOTHING_TO_DO, status: 'dead-letter', deadLetters: 1 };
      });
    }

    const counter = counterSemantics(source);
    const subscription = subscriptionKey(notification);
    const seen = await this.store.processedEvents.seen(
      source.id,
      notification.events.flatMap((e) => eventDedupeKey(notification, e, counter) ?? []),
    );
    const view = subscription ? await this.store.subscriptions.find(source.id, subscription) : undefined;
    const context = {
      source,
      notification,
      // Changes since the subscription (or, for a classic sender, the source) was last heard from.
      since: view?.lastNotificationAt ?? (await this.store.inbox.previousReceivedAt(source.id, inboxId)),
      resourceTypes: subscription
        ? await this.store.subscriptions.resourceTypes(source.id, subscription)
        : await this.store.subscriptions.resourceTypesForSource(source.id),
    };
    // Phase 1: resolve (fetch back) outside the transaction; events already applied are not fetched again.
    const planned: { event: NotificationEvent; key?: string; changes: readonly ResolvedChange[] }[] = [];
    for (const event of notification.events) {
      const key = eventDedupeKey(notification, event, counter);
      const changes = key && seen.has(key) ? [] : await this.resolver.resolve(event, context);
      planned.push({ event, key, changes });
    }

    // Phase 2: apply everything in one transaction.
    return this.store.transaction(async (trx) => {
      const entry = await this.store.inbox.lockForProcessing(trx, inboxId);
      if (!entry) return NOTHING_TO_DO;
      const gaps = subscription
        ? await this.store.subscriptions.recordNotification(trx, {
            sourceId: source.id,
            reference: subscription,
            topic: notification.subscription?.topic,
            status: notification.subscription?.status,
            type: notification.notificationType,
            eventsSinceStart: notification.subscription?.eventsSinceSubscriptionStart,
            eventNumbers: notification.events.flatMap((e) => e.eventNumber ?? []),
            resourceTypes: [
              ...new Set(
                notification.events.flatMap((e) => e.resource?.resourceType ?? e.focus?.resourceType ?? []),
              ),
            ],
            gapDetection: counter === 'subscription',
            errors: notification.subscription?.error,
          })
        : [];

      let stored = 0;
      let deadLetters = 0;
      let duplicates = 0;
      let erased = false;
      let index = 0;
      for (const { key, changes } of planned) {
        if (
          key &&
          (await this.store.processedEvents.claim(trx, source.id, key, entry.id, index)) === 'duplicate'
        ) {
          duplicates++;
          if (subscription) await this.store.subscriptions.countDuplicate(trx, source.id, subscription);
          index++;
          continue;
        }
        for (const change of changes) {
          const outcome = await this.apply(trx, entry, source, change, index++);
          if (outcome === 'stored') stored++;
          else if (outcome === 'dead-letter') deadLetters++;
          else if (outcome === 'patient-erased') {
            deadLetters++;
            erased = true;
          }
        }
      }
      // The raw notification holds an erased patient's data: it goes too (see the erasure endpoint).
      if (erased) await this.store.inbox.eraseBodies(trx, [entry.id]);
      const status = deadLetters > 0 && stored === 0 && duplicates === 0 ? 'dead-letter' : 'done';
      await this.store.inbox.finish(
        trx,
        entry.id,
        status,
        deadLetters > 0 ? `${deadLetters} dead letter(s)` : undefined,
      );
      return { status, stored, deadLetters, duplicates, ledgerEvents: stored, gaps };
    });
  }

  private async apply(
    trx: StoreDb,
    entry: InboxEntry,
    source: SourceRecord,
    change: ResolvedChange,
    index: number,
  ): Promise<'stored' | 'dead-letter' | 'patient-erased' | 'unchanged'> {
    if (change.kind === 'unresolvable') {
      await this.deadLetter(trx, entry, index, change.reasonCode, change.outcome);
      return 'dead-letter';
    }
    if (change.kind === 'delete') {
      return this.storeVersion(
        trx,
        entry,
        source,
        change.event,
        index,
        { resourceType: change.resourceType, id: change.id },
        true,
      );
    }
    const versionId = change.resource.meta?.versionId;
    if (versionId) {
      // The same source version again (a re-fetch, a catch-up search, two events about one version):
      // nothing new to store.
      const head = await this.store.resources.head(
        trx,
        source.id,
        change.resource.resourceType,
        change.resource.id,
      );
      if (head && !head.deleted && head.sourceVersionId === versionId) return 'unchanged';
    }
    const validation = validateResource(change.resource);
    if (!validation.valid) {
      await this.deadLetter(trx, entry, index, 'invalid-resource', validation.outcome);
      return 'dead-letter';
    }
    return this.storeVersion(trx, entry, source, change.event, index, change.resource, false);
  }

  /**
   * Stores one version with its Provenance and its ledger event. The patient key is fetched first:
   * after an erasure (key destroyed) nothing more is stored about that patient, and the change
   * becomes a dead letter (`patient-erased`) without any of its content.
   */
  private async storeVersion(
    trx: StoreDb,
    entry: InboxEntry,
    source: SourceRecord,
    event: NotificationEvent,
    index: number,
    resource: { resourceType: string; id: string; meta?: { versionId?: string; lastUpdated?: string } },
    isDelete: boolean,
  ): Promise<'stored' | 'patient-erased'> {
    const recorded = new Date();
    const content = isDelete ? undefined : (resource as unknown as Record<string, unknown>);
    const patientRef = content ? patientReferenceOf(content as unknown as Resource) : undefined;
    const keyScope = patientRef ?? SOURCE_KEY_SCOPE;
    let key: Buffer;
    try {
      key = await this.store.patientKeys.getOrCreate(source.id, keyScope, trx);
    } catch (error) {
      if (!(error instanceof PatientKeyDestroyedError)) throw error;
      await this.deadLetter(
        trx,
        entry,
        index,
        'patient-erased',
        failure(
          'forbidden',
          'the patient this resource is about was erased; nothing more is stored about them',
        ),
      );
      return 'patient-erased';
    }

    const sourceVersionId = resource.meta?.versionId ?? event.focus?.versionId;
    const interaction = isDelete ? 'delete' : event.interaction === 'create' ? 'create' : 'update';
    const version = await this.store.resources.insertVersion(trx, {
      sourceId: source.id,
      resourceType: resource.resourceType,
      resourceId: resource.id,
      sourceVersionId,
      sourceLastUpdated: resource.meta?.lastUpdated,
      interaction,
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

    const record = provenanceEvent({
      eventId: provenanceId,
      recorded,
      source: source.id,
      subject: resource.resourceType,
      resourceDigest: resourceVersionDigest(key, {
        source: source.id,
        resourceType: resource.resourceType,
        resourceId: resource.id,
        version: version.version,
        sourceVersionId: sourceVersionId ?? null,
        sourceLastUpdated: resource.meta?.lastUpdated
          ? new Date(resource.meta.lastUpdated).toISOString()
          : null,
        interaction,
        recorded: recorded.toISOString(),
        inboxId: entry.id,
        entryIndex: index,
        applied: version.applied,
        resource: content ?? null,
      }),
      provenanceDigest: keyedDigest(key, provenance),
      patient: patientRef ? patientPseudonym(key, patientRef) : undefined,
      actor: `source:${source.id}`,
    });
    const leafEntry = eventLeafEntry(record);
    await this.store.ledger.insertEvent(trx, {
      eventId: provenanceId,
      kind: record.kind,
      sourceId: source.id,
      resourceType: resource.resourceType,
      resourceId: resource.id,
      resourceVersionId: version.id,
      record: leafEntry.toString('utf8'),
      leafHash: leafHash(leafEntry),
      keyScope,
      createdAt: recorded,
    });
    return 'stored';
  }

  private async deadLetter(
    trx: StoreDb,
    entry: { id: string; sourceId: string },
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

const NOTHING_TO_DO: IngestResult = {
  status: 'already-processed',
  stored: 0,
  deadLetters: 0,
  duplicates: 0,
  ledgerEvents: 0,
  gaps: [],
};

/** How the source numbers its events (its sender profile). */
function counterSemantics(source: SourceRecord): EventCounterSemantics {
  return source.senderProfile.counter;
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
  code: 'structure' | 'required' | 'not-supported' | 'forbidden',
  text: string,
  expression?: string,
): OperationOutcome {
  return operationOutcome([outcomeIssue({ code, text, expression })]);
}
