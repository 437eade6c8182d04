import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { type IngestJob, ingestJobId, QUEUES } from '@fhir-trail/jobs';
import { APP_CONFIG, STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import type { Queue } from 'bullmq';
import { OutboxRelay } from '../scheduling/periodic-sweep';

/**
 * The inbox is the truth, Redis is not (it keeps nothing on disk here). Every interval, rows still
 * `received` whose last enqueue is older than one interval are enqueued again under their
 * deterministic job id: a job still queued absorbs the duplicate, a lost one is recreated.
 */
@Injectable()
export class InboxRelayService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly relay: OutboxRelay;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(STORE) store: Store,
    @InjectQueue(QUEUES.ingest) ingestQueue: Queue<IngestJob>,
  ) {
    this.relay = new OutboxRelay(
      new Logger(InboxRelayService.name),
      'inbox',
      config.inboxRelayIntervalMs,
      (before, limit) => store.inbox.claimForRelay(before, limit),
      (ids) =>
        ingestQueue.addBulk(
          ids.map((inboxId) => ({
            name: 'ingest',
            data: { inboxId },
            opts: { jobId: ingestJobId(inboxId) },
          })),
        ),
    );
  }

  onApplicationBootstrap(): void {
    this.relay.start();
  }

  onApplicationShutdown(): Promise<void> {
    return this.relay.stop();
  }

  /** One relay pass; returns how many were re-enqueued. Passes never overlap. */
  relayOnce(): Promise<number> {
    return this.relay.runOnce();
  }
}
