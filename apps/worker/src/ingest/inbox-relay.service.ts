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
import { PeriodicSweep } from '../scheduling/periodic-sweep';

/** Rows re-enqueued per pass; the rest wait for the next pass. */
const RELAY_BATCH = 500;

/**
 * The inbox is the truth, Redis is not (it keeps nothing on disk here). Every interval, rows still
 * `received` whose last enqueue is older than one interval are enqueued again under their
 * deterministic job id: a job still queued absorbs the duplicate, a lost one is recreated.
 */
@Injectable()
export class InboxRelayService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(InboxRelayService.name);
  private readonly sweep = new PeriodicSweep(this.logger, 'inbox relay pass', () => this.relay());

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
    @InjectQueue(QUEUES.ingest) private readonly ingestQueue: Queue<IngestJob>,
  ) {}

  onApplicationBootstrap(): void {
    this.sweep.start(this.config.inboxRelayIntervalMs, true);
  }

  onApplicationShutdown(): Promise<void> {
    return this.sweep.stop();
  }

  /** One relay pass; returns how many rows were re-enqueued. Passes never overlap. */
  relayOnce(): Promise<number> {
    return this.sweep.runOnce();
  }

  private async relay(): Promise<number> {
    let total = 0;
    for (;;) {
      const ids = await this.store.inbox.claimForRelay(
        new Date(Date.now() - this.config.inboxRelayIntervalMs),
        RELAY_BATCH,
      );
      if (ids.length === 0) break;
      await this.ingestQueue.addBulk(
        ids.map((inboxId) => ({ name: 'ingest', data: { inboxId }, opts: { jobId: ingestJobId(inboxId) } })),
      );
      total += ids.length;
      if (ids.length < RELAY_BATCH) break;
    }
    if (total > 0) this.logger.log({ msg: 'inbox relay re-enqueued', count: total });
    return total;
  }
}
