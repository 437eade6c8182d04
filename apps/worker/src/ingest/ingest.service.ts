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
  loadMappingDefinitions,
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
} from '@fhir-trail/fhir-mapping';
import { eventLeafEntry, leafHash, provenanceEvent } from '@fhir-trail/ledger';
import {
  APP_CONFIG,
  type MappedResource,
  MappingProfileRegistry,
  recordConsent,
  type SourceMapping,
  STORE,
} from '@fhir-trail/runtime';
import {
  type DeadLetterInputContext,
  type EventGap,
  type InboxEntry,
  PatientKeyDestroyedError,
  SOURCE_KEY_SCOPE,
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
  /** Resource versions stored and applied (not deletes): what the share processor delivers. */
  readonly shareable?: readonly string[];
}

/** What a replay of one dead letter did. */
export type ReplayResult = 'stored' | 'unchanged' | 'invalid' | 'patient-erased' | 'skipped';

/** A replay's result, with the version it stored when that version is to be shared. */
export interface ReplayOutcome {
  readonly result: ReplayResult;
  readonly shareable?: string;
}

/** A resolved change, with what the source's mapping made of it (resources only). */
interface PreparedChange {
  readonly change: ResolvedChange;
  readonly mapped?: MappedResource;
}

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
    private readonly mappings: MappingProfileRegistry,
  ) {}

  onModuleInit(): void {
    // R4 definitions, terminology and shipped profiles, so the first notification does not pay.
    const { durationMs } = loadMappingDefinitions();
    this.logger.log({ msg: 'FHIR R4 and mapping definitions loaded', ms: Math.round(durationMs) });
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
    // Phase 1, outside the transaction: resolve (fetch back; events already applied are not fetched
    // again) and run each resource through the source's active mapping profile (CPU only).
    const mapping = await this.mappings.forSource(source);
    const planned: { event: NotificationEvent; key?: string; changes: readonly PreparedChange[] }[] = [];
    for (const event of notification.events) {
      const key = eventDedupeKey(notification, event, counter);
      const changes = key && seen.has(key) ? [] : await this.resolver.resolve(event, context);
      planned.push({
        event,
        key,
        changes: changes.map((change) => ({
          change,
          mapped: change.kind === 'resource' ? mapping.normalise(change.resource) : undefined,
        })),
      });
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
      let index = 0;
      let erased = false;
      const shareable: string[] = [];
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
          const outcome = await this.apply(trx, entry, source, mapping, change, index++, shareable);
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
      return { status, stored, deadLetters, duplicates, ledgerEvents: stored, gaps, shareable };
    });
  }

  private async apply(
    trx: StoreDb,
    entry: InboxEntry,
    source: SourceRecord,
    mapping: SourceMapping,
    { change, mapped }: PreparedChange,
    index: number,
    shareable: string[],
  ): Promise<'stored' | 'dead-letter' | 'patient-erased' | 'unchanged'> {
    if (change.kind === 'unresolvable') {
      await this.deadLetter(trx, entry, index, change.reasonCode, change.outcome);
      return 'dead-letter';
    }
    const context = eventContext(change.event);
    if (change.kind === 'delete') {
      const deleted = await this.storeVersion(
        trx,
        { inboxId: entry.id, index, context },
        source,
        { resourceType: change.resourceType, id: mapping.storedId(change.resourceType, change.id) },
        true,
        mapping.policy,
      );
      return deleted === PATIENT_ERASED ? this.patientErased(trx, entry, index) : 'stored';
    }
    if (!mapped?.valid) {
      await this.deadLetter(
        trx,
        entry,
        index,
        mapped?.reasonCode ?? 'invalid-resource',
        mapped?.outcome ?? failure('structure', 'the resource was not mapped'),
        { input: change.resource, context, mappingProfile: mapping.label },
      );
      return 'dead-letter';
    }
    const resource = mapped.output;
    if (await this.sameVersionStored(trx, source, resource)) return 'unchanged';
    const stored = await this.storeVersion(
      trx,
      { inboxId: entry.id, index, context },
      source,
      resource,
      false,
      mapping.policy,
    );
    if (stored === PATIENT_ERASED) return this.patientErased(trx, entry, index);
    if (stored.applied) {
      await this.store.sharing.recordPendingFanOut(trx, stored.versionId);
      shareable.push(stored.versionId);
    }
    return 'stored';
  }

  /**
   * After an erasure (key destroyed) nothing more is stored about that patient: the change becomes a
   * dead letter (`patient-erased`) without any of its content, so it cannot be replayed either.
   */
  private async patientErased(trx: StoreDb, entry: InboxEntry, index: number): Promise<'patient-erased'> {
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

  /**
   * Replays one open dead letter: its input runs through the source's mapping profile active now,
   * and a valid result is stored with its own Provenance and ledger leaf (under the original
   * notification and entry), closing the dead letter; an invalid one leaves it open with this
   * attempt's outcome. Idempotent: a replayed dead letter is skipped.
   */
  async replay(deadLetterId: string): Promise<ReplayOutcome> {
    const peek = await this.store.deadLetters.find(deadLetterId);
    if (!peek || peek.status !== 'open' || !peek.input || peek.inboxId === null || peek.entryIndex === null) {
      return { result: 'skipped' };
    }
    const source = await this.store.sources.findById(peek.sourceId);
    if (!source) return { result: 'skipped' };
    const mapping = await this.mappings.forSource(source);
    const mapped = mapping.normalise(peek.input as unknown as Resource);
    const inboxId = peek.inboxId;
    const index = peek.entryIndex;
    return this.store.transaction(async (trx): Promise<ReplayOutcome> => {
      const letter = await this.store.deadLetters.lockForReplay(trx, deadLetterId);
      if (!letter) return { result: 'skipped' };
      if (!mapped.valid) {
        await this.store.deadLetters.recordReplayFailure(trx, deadLetterId, {
          outcome: { ...mapped.outcome },
          mappingProfile: mapping.label,
        });
        return { result: 'invalid' };
      }
      const resource = mapped.output;
      const context = letter.inputContext ?? { interaction: 'update' };
      const stored = (await this.sameVersionStored(trx, source, resource))
        ? undefined
        : await this.storeVersion(trx, { inboxId, index, context }, source, resource, false, mapping.policy);
      if (stored === PATIENT_ERASED) {
        // Erased since it failed: its input must not be kept, let alone stored.
        await this.store.deadLetters.recordReplayFailure(trx, deadLetterId, {
          outcome: failure(
            'forbidden',
            'the patient this resource is about was erased; nothing more is stored about them',
          ),
          mappingProfile: mapping.label,
        });
        await this.store.deadLetters.dropInput(trx, deadLetterId);
        return { result: 'patient-erased' };
      }
      if (stored) {
        await this.store.deadLetters.markReplayed(trx, deadLetterId, {
          resourceVersionId: stored.versionId,
          mappingProfile: mapping.label,
        });
        await this.store.deadLetters.settleInbox(trx, inboxId);
        if (!stored.applied) return { result: 'stored' };
        await this.store.sharing.recordPendingFanOut(trx, stored.versionId);
        return { result: 'stored', shareable: stored.versionId };
      }
      // Already stored (a later delivery of the same source version): nothing left to replay.
      await this.store.deadLetters.markReplayed(trx, deadLetterId, {
        mappingProfile: mapping.label,
        outcome: { ...ALREADY_STORED },
      });
      await this.store.deadLetters.settleInbox(trx, inboxId);
      return { result: 'unchanged' };
    });
  }

  /**
   * The same source version again (a re-fetch, a catch-up search, two events about one version):
   * nothing new to store.
   */
  private async sameVersionStored(trx: StoreDb, source: SourceRecord, resource: Resource): Promise<boolean> {
    const versionId = resource.meta?.versionId;
    if (!versionId || !resource.id) return false;
    const head = await this.store.resources.head(trx, source.id, resource.resourceType, resource.id);
    return head !== undefined && !head.deleted && head.sourceVersionId === versionId;
  }

  /**
   * Stores one version with its Provenance and its ledger event; answers the version's row id. The
   * patient key is fetched first: after an erasure (key destroyed) nothing is stored and
   * {@link PATIENT_ERASED} is answered instead.
   */
  private async storeVersion(
    trx: StoreDb,
    at: { readonly inboxId: string; readonly index: number; readonly context: DeadLetterInputContext },
    source: SourceRecord,
    resource: { resourceType: string; id?: string; meta?: { versionId?: string; lastUpdated?: string } },
    isDelete: boolean,
    policy: string | undefined,
  ): Promise<{ readonly versionId: string; readonly applied: boolean } | typeof PATIENT_ERASED> {
    if (!resource.id) throw new Error('a resource without an id cannot be stored');
    const id = resource.id;
    const { context } = at;
    const recorded = new Date();
    const content = isDelete ? undefined : (resource as unknown as Record<string, unknown>);
    const patientRef = content ? patientReferenceOf(content as unknown as Resource) : undefined;
    const keyScope = patientRef ?? SOURCE_KEY_SCOPE;
    let key: Buffer;
    try {
      key = await this.store.patientKeys.getOrCreate(source.id, keyScope, trx);
    } catch (error) {
      if (!(error instanceof PatientKeyDestroyedError)) throw error;
      return PATIENT_ERASED;
    }

    const sourceVersionId = resource.meta?.versionId ?? context.focusVersionId;
    const interaction = isDelete ? 'delete' : context.interaction === 'create' ? 'create' : 'update';
    const version = await this.store.resources.insertVersion(trx, {
      sourceId: source.id,
      resourceType: resource.resourceType,
      resourceId: id,
      sourceVersionId,
      sourceLastUpdated: resource.meta?.lastUpdated,
      interaction,
      content,
      inboxId: at.inboxId,
      entryIndex: at.index,
      recordedAt: recorded,
    });

    const provenanceId = randomUUID();
    const provenance = buildProvenance({
      id: provenanceId,
      recorded: recorded.toISOString(),
      target: { resourceType: resource.resourceType, id, versionId: String(version.version) },
      activity: isDelete ? 'delete' : version.version === 1 ? 'create' : 'update',
      sourceOrganisation: source.organisation,
      sourceEntity: sourceEntity(source, context, resource.resourceType, id, sourceVersionId),
      bridge: {
        identifier: { system: 'urn:fhir-trail:bridge', value: this.config.bridgeId },
        display: 'FHIR Trail bridge',
      },
      policy: policy ? [policy] : undefined,
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
        resourceId: id,
        version: version.version,
        sourceVersionId: sourceVersionId ?? null,
        sourceLastUpdated: resource.meta?.lastUpdated
          ? new Date(resource.meta.lastUpdated).toISOString()
          : null,
        interaction,
        recorded: recorded.toISOString(),
        inboxId: at.inboxId,
        entryIndex: at.index,
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
      resourceId: id,
      resourceVersionId: version.id,
      record: leafEntry.toString('utf8'),
      leafHash: leafHash(leafEntry),
      keyScope,
      createdAt: recorded,
    });

    if (resource.resourceType === 'Consent' && content) {
      // A Consent from the source's intake also becomes a consent policy (the registry sweep
      // mirrors it on chain). One the bridge cannot interpret is stored as a version but has no
      // effect, and becomes a dead letter saying why.
      const consent = await recordConsent(this.store, trx, {
        sourceId: source.id,
        resource: content,
        origin: 'intake',
        actor: `source:${source.id}`,
        masterKey: this.config.ledger.masterKey,
      });
      if (!consent.ok) {
        await this.deadLetter(
          trx,
          { id: at.inboxId, sourceId: source.id },
          at.index,
          'consent-not-interpreted',
          consent.outcome,
        );
      }
    }
    return { versionId: version.id, applied: version.applied };
  }

  private async deadLetter(
    trx: StoreDb,
    entry: { id: string; sourceId: string },
    index: number,
    reasonCode: string,
    outcome: OperationOutcome,
    replayable?: {
      readonly input: Resource;
      readonly context: DeadLetterInputContext;
      readonly mappingProfile: string;
    },
  ): Promise<void> {
    this.logger.warn({ msg: 'dead letter', inboxId: entry.id, entry: index, reason: reasonCode });
    await this.store.deadLetters.insert(
      {
        sourceId: entry.sourceId,
        inboxId: entry.id,
        entryIndex: index,
        reasonCode,
        outcome: { ...outcome },
        input: replayable ? (replayable.input as unknown as Record<string, unknown>) : undefined,
        inputContext: replayable?.context,
        mappingProfile: replayable?.mappingProfile,
      },
      trx,
    );
  }
}

/** What {@link IngestService.storeVersion} answers when the patient's key was destroyed. */
const PATIENT_ERASED = 'patient-erased' as const;

const ALREADY_STORED = operationOutcome([
  outcomeIssue({
    severity: 'information',
    code: 'duplicate',
    text: 'this source version of the resource was already stored; the replay stored nothing new',
  }),
]);

const NOTHING_TO_DO: IngestResult = {
  status: 'already-processed',
  stored: 0,
  deadLetters: 0,
  duplicates: 0,
  ledgerEvents: 0,
  gaps: [],
};

/** What storing a resource needs from its event (kept on a dead letter for a replay). */
function eventContext(event: NotificationEvent): DeadLetterInputContext {
  return {
    interaction: event.interaction,
    ...(event.fullUrl ? { fullUrl: event.fullUrl } : {}),
    ...(event.focus?.versionId ? { focusVersionId: event.focus.versionId } : {}),
  };
}

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
  event: DeadLetterInputContext,
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
