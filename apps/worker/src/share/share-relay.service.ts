import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { QUEUES, type ShareJob, shareJobId } from '@fhir-trail/jobs';
import { APP_CONFIG, STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import type { Queue } from 'bullmq';
import { OutboxRelay } from '../scheduling/periodic-sweep';

/**
 * The share outbox is the truth, Redis is not. Every inbox-relay interval, versions stored as
 * shareable whose fan-out is still pending and was last enqueued more than one interval ago get a
 * `fan-out` job again under its deterministic id: a job still queued absorbs the duplicate, a lost
 * one is recreated, and delivery decisions are recorded once per (version, destination) anyway.
 */
@Injectable()
export class ShareRelayService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly relay: OutboxRelay;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(STORE) store: Store,
    @InjectQueue(QUEUES.share) shareQueue: Queue<ShareJob>,
  ) {
    this.relay = new OutboxRelay(
      new Logger(ShareRelayService.name),
      'share fan-out',
      config.inboxRelayIntervalMs,
      (before, limit) => store.sharing.claimPendingFanOuts(before, limit),
      (ids) =>
        shareQueue.addBulk(
          ids.map((resourceVersionId) => ({
            name: 'fan-out',
            data: { kind: 'fan-out' as const, resourceVersionId },
            opts: { jobId: shareJobId(resourceVersionId) },
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
