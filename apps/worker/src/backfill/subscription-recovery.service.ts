import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Subscription } from '@medplum/fhirtypes';
import { InjectQueue } from '@nestjs/bullmq';
import { isSourceFhirError } from '@fhir-trail/fhir-client';
import { buildRecoveryBundle, type RecoveredEvent } from '@fhir-trail/fhir-mapping';
import { type IngestJob, ingestJobId, QUEUES } from '@fhir-trail/jobs';
import { STORE } from '@fhir-trail/runtime';
import type { EventGap, SourceRecord, Store } from '@fhir-trail/store';
import type { Queue } from 'bullmq';
import { SourceClients } from '@fhir-trail/runtime';

/** A silent subscription is checked once it has been quiet for this many heartbeat periods. */
const SILENCE_FACTOR = 2;
/** A catch-up search looks this far before the gap was seen, for clock skew between systems. */
const SEARCH_MARGIN_MS = 5 * 60 * 1000;

export type GapOutcome = 'filled' | 'repaired' | 'searched' | 'failed' | 'not-open';

/**
 * Recovers what a sender failed to deliver. A gap in event numbers is first given time to fill by
 * itself (late or retried deliveries); then the missing events are asked for with `$events`, and
 * if the source cannot answer that, its resources changed since are searched. Recovered events are
 * written to the inbox as a `query-event` notification and go through the normal ingest path, so
 * dedupe and ordering apply to them exactly as to pushed ones.
 */
@Injectable()
export class SubscriptionRecoveryService {
  private readonly logger = new Logger(SubscriptionRecoveryService.name);

  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly clients: SourceClients,
    @InjectQueue(QUEUES.ingest) private readonly ingestQueue: Queue<IngestJob>,
  ) {}

  async repairGap(gapId: string): Promise<GapOutcome> {
    const gap = await this.store.subscriptions.gap(gapId);
    if (!gap || gap.status !== 'open') return 'not-open';
    const missing = await this.missingNumbers(gap);
    if (missing.length === 0) {
      await this.store.subscriptions.closeGap(gap.id, 'filled', 'the events arrived late');
      return 'filled';
    }
    const source = await this.store.sources.findById(gap.sourceId);
    const client = source ? await this.clients.for(source) : undefined;
    if (!source || !client) {
      await this.fail(gap, 'no FHIR base URL configured to recover missed events');
      return 'failed';
    }
    const subscriptionId = gap.subscription.replace(/^Subscription\//, '');
    try {
      const answer = await client.subscriptionEvents(subscriptionId, missing[0], missing[missing.length - 1]);
      const wanted = new Set(missing.map(String));
      const events: RecoveredEvent[] = answer.events
        .filter((e) => e.eventNumber !== undefined && wanted.has(e.eventNumber))
        .map((e) => ({
          eventNumber: e.eventNumber,
          resource: e.resource,
          focusReference:
            e.focus?.resourceType && e.focus.id ? `${e.focus.resourceType}/${e.focus.id}` : undefined,
        }));
      if (events.length > 0) await this.ingestRecovered(source, gap.subscription, events, 'events');
      if (events.length === wanted.size) {
        await this.store.subscriptions.closeGap(
          gap.id,
          'repaired',
          `${events.length} event(s) recovered with $events`,
        );
        return 'repaired';
      }
    } catch (error) {
      if (!isSourceFhirError(error) || error.retryable) throw error;
      this.logger.warn({ msg: '$events refused; falling back to a search', gapId: gap.id, code: error.code });
    }
    return this.searchSince(source, gap);
  }

  /**
   * Checks every subscription that has been silent for longer than its heartbeat allows with
   * `$status`, and asks the source to re-activate it when it is in error or off.
   */
  async checkSilentSubscriptions(now = new Date()): Promise<number> {
    const silent = await this.store.subscriptions.silent(now, SILENCE_FACTOR);
    for (const subscription of silent) {
      const source = await this.store.sources.findById(subscription.sourceId);
      const client = source ? await this.clients.for(source) : undefined;
      if (!client) {
        await this.store.subscriptions.raiseAlert(
          subscription.sourceId,
          subscription.reference,
          'silent past its heartbeat; no FHIR base URL to check it',
        );
        continue;
      }
      const id = subscription.reference.replace(/^Subscription\//, '');
      try {
        const report = await client.subscriptionStatus(id);
        await this.store.subscriptions.touch(subscription.sourceId, subscription.reference, report.status);
        if (report.status === 'error' || report.status === 'off') {
          const current = await client.read<Subscription>('Subscription', id);
          if (current.status === 'found') {
            await client.updateSubscription({ ...current.resource, id, status: 'requested' });
          }
          await this.store.subscriptions.raiseAlert(
            subscription.sourceId,
            subscription.reference,
            `silent past its heartbeat; $status said ${report.status}; re-activation requested`,
            report.status,
          );
        }
      } catch (error) {
        if (isSourceFhirError(error) && error.status === 404) {
          await this.store.subscriptions.raiseAlert(
            subscription.sourceId,
            subscription.reference,
            'the subscription no longer exists at the source; re-create it',
          );
          continue;
        }
        await this.store.subscriptions.raiseAlert(
          subscription.sourceId,
          subscription.reference,
          `silent past its heartbeat; $status failed (${isSourceFhirError(error) ? error.code : 'error'})`,
        );
      }
    }
    return silent.length;
  }

  /** Open gaps old enough to repair (their own job may have been lost with Redis). */
  async openGaps(): Promise<readonly EventGap[]> {
    return this.store.subscriptions.openGaps();
  }

  private async searchSince(source: SourceRecord, gap: EventGap): Promise<GapOutcome> {
    const client = await this.clients.for(source);
    const types = await this.store.subscriptions.resourceTypes(source.id, gap.subscription);
    if (!client || types.length === 0) {
      await this.fail(gap, '$events unavailable and no resource types known to search');
      return 'failed';
    }
    const view = await this.store.subscriptions.find(source.id, gap.subscription);
    const since = new Date((view?.lastNotificationAt ?? new Date()).getTime() - SEARCH_MARGIN_MS);
    const events: RecoveredEvent[] = [];
    for (const type of types) {
      const found = await client.searchSince(type, since);
      events.push(...found.resources.map((resource) => ({ resource })));
    }
    if (events.length > 0) await this.ingestRecovered(source, gap.subscription, events, 'search');
    await this.store.subscriptions.closeGap(
      gap.id,
      'searched',
      `$events unavailable; ${events.length} resource(s) re-read by search`,
    );
    return 'searched';
  }

  private async missingNumbers(gap: EventGap): Promise<bigint[]> {
    const numbers: bigint[] = [];
    for (let n = gap.from; n <= gap.to; n++) numbers.push(n);
    const seen = await this.store.processedEvents.seen(
      gap.sourceId,
      numbers.map((n) => `sub:${gap.subscription}#${n}`),
    );
    return numbers.filter((n) => !seen.has(`sub:${gap.subscription}#${n}`));
  }

  private async ingestRecovered(
    source: SourceRecord,
    subscription: string,
    events: readonly RecoveredEvent[],
    how: 'events' | 'search',
  ): Promise<void> {
    const body = Buffer.from(JSON.stringify(buildRecoveryBundle(subscription, events)));
    const inboxId = await this.store.inbox.insert({
      sourceId: source.id,
      method: 'POST',
      path: `/recovery/${source.id}/${how}`,
      contentType: 'application/fhir+json',
      headers: { 'x-fhir-trail-recovery': how },
      body,
      shape: 'backport-history',
      notificationType: 'query-event',
      eventCount: events.length,
    });
    await this.ingestQueue.add('ingest', { inboxId }, { jobId: ingestJobId(inboxId) });
    this.logger.log({
      msg: 'recovered events queued',
      sourceId: source.id,
      how,
      count: events.length,
      inboxId,
    });
  }

  private async fail(gap: EventGap, reason: string): Promise<void> {
    await this.store.subscriptions.closeGap(gap.id, 'failed', reason);
    await this.store.subscriptions.raiseAlert(
      gap.sourceId,
      gap.subscription,
      `events ${gap.from}-${gap.to} missing: ${reason}`,
    );
  }
}
