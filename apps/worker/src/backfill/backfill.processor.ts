import { Inject, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { BACKFILL_SWEEP_SCHEDULER_ID, type BackfillJob, gapJobId, QUEUES } from '@fhir-trail/jobs';
import { APP_CONFIG } from '@fhir-trail/runtime';
import type { Job, Queue } from 'bullmq';
import { keepJobScheduler } from '../scheduling/job-scheduler-keeper';
import { type GapOutcome, SubscriptionRecoveryService } from './subscription-recovery.service';

/**
 * Backfill: gap repairs (each delayed by the grace period after the gap was seen, so late
 * deliveries can fill it first) and a periodic sweep that re-queues open gaps whose job was lost
 * and checks subscriptions silent past their heartbeat. At-least-once; every step is idempotent
 * (a gap is closed once; recovered events are deduplicated by ingest). Source errors that can pass
 * are thrown so BullMQ retries with backoff.
 */
@Processor(QUEUES.backfill, { concurrency: 2 })
export class BackfillProcessor extends WorkerHost implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(BackfillProcessor.name);
  private stopKeeper?: () => void;

  constructor(
    private readonly recovery: SubscriptionRecoveryService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectQueue(QUEUES.backfill) private readonly queue: Queue<BackfillJob>,
  ) {
    super();
  }

  async onApplicationBootstrap(): Promise<void> {
    this.stopKeeper = await keepJobScheduler(
      this.queue,
      BACKFILL_SWEEP_SCHEDULER_ID,
      this.config.recoverySweepIntervalMs,
      { name: 'sweep', data: { kind: 'sweep' } },
      this.logger,
    );
  }

  onApplicationShutdown(): void {
    this.stopKeeper?.();
  }

  /** Queues the repair of a gap once the grace period has passed. */
  async scheduleGap(gapId: string): Promise<void> {
    await this.queue.add(
      'gap',
      { kind: 'gap', gapId },
      {
        jobId: gapJobId(gapId),
        delay: this.config.gapGraceMs,
        attempts: 5,
        backoff: { type: 'exponential', delay: 2_000 },
        removeOnComplete: true,
        removeOnFail: true,
      },
    );
  }

  async process(job: Job<BackfillJob>): Promise<GapOutcome | number> {
    if (job.data.kind === 'gap') {
      const outcome = await this.recovery.repairGap(job.data.gapId);
      this.logger.log({ msg: 'gap repair', gapId: job.data.gapId, outcome });
      return outcome;
    }
    const gaps = await this.recovery.openGaps();
    const due = gaps.filter((g) => Date.now() - g.detectedAt.getTime() > this.config.gapGraceMs);
    for (const gap of due) await this.scheduleGap(gap.id);
    return this.recovery.checkSilentSubscriptions();
  }
}
