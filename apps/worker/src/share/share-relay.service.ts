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
import { PeriodicSweep } from '../scheduling/periodic-sweep';

/** Rows re-enqueued per pass; the rest wait for the next pass. */
const RELAY_BATCH = 500;

/**
 * The share outbox is the truth, Redis is not. Every inbox-relay interval, versions stored as
 * shareable whose fan-out is still pending and was last enqueued more than one interval ago get a
 * `fan-out` job again under its deterministic id: a job still queued absorbs the duplicate, a lost
 * one is recreated, and delivery decisions are recorded once per (version, destination) anyway.
 */
@Injectable()
export class ShareRelayService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(ShareRelayService.name);
  private readonly sweep = new PeriodicSweep(this.logger, 'share relay pass', () => this.relay());

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
    @InjectQueue(QUEUES.share) private readonly shareQueue: Queue<ShareJob>,
  ) {}

  onApplicationBootstrap(): void {
    this.sweep.start(this.config.inboxRelayIntervalMs, true);
  }

  onApplicationShutdown(): Promise<void> {
    return this.sweep.stop();
  }

  /** One relay pass; returns how many versions were re-enqueued. Passes never overlap. */
  relayOnce(): Promise<number> {
    return this.sweep.runOnce();
  }

  private async relay(): Promise<number> {
    let total = 0;
    for (;;) {
      const ids = await this.store.sharing.claimPendingFanOuts(
        new Date(Date.now() - this.config.inboxRelayIntervalMs),
        RELAY_BATCH,
      );
      if (ids.length === 0) break;
      await this.shareQueue.addBulk(
        ids.map((resourceVersionId) => ({
          name: 'fan-out',
          data: { kind: 'fan-out' as const, resourceVersionId },
          opts: { jobId: shareJobId(resourceVersionId) },
        })),
      );
      total += ids.length;
      if (ids.length < RELAY_BATCH) break;
    }
    if (total > 0) this.logger.log({ msg: 'share relay re-enqueued fan-outs', count: total });
    return total;
  }
}
