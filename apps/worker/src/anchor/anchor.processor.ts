import { Inject, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { ANCHOR_SCHEDULER_ID, type AnchorJob, QUEUES } from '@fhir-trail/jobs';
import { APP_CONFIG } from '@fhir-trail/runtime';
import type { Job, Queue } from 'bullmq';
import { type AnchoredBatch, LedgerAnchorService } from './ledger-anchor.service';

/** How often the periodic anchor schedule is re-asserted in Redis. */
const SCHEDULER_KEEPER_MS = 10_000;

/**
 * Anchor: runs every LEDGER_BATCH_INTERVAL_MS (a BullMQ job scheduler, one per deployment) and when
 * ingest fills a batch. Serial (concurrency 1) and single-writer across processes (advisory lock
 * inside the service). A failed run (chain down) is simply tried again at the next tick: pending
 * leaves stay pending, nothing is lost, and the same head is never anchored twice.
 */
@Processor(QUEUES.anchor, { concurrency: 1 })
export class AnchorProcessor extends WorkerHost implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(AnchorProcessor.name);
  private keeper?: NodeJS.Timeout;

  constructor(
    private readonly anchorService: LedgerAnchorService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectQueue(QUEUES.anchor) private readonly anchorQueue: Queue<AnchorJob>,
  ) {
    super();
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.ensureScheduler();
    // Redis keeps nothing on disk: after a Redis restart or flush the scheduler is gone, so it is
    // re-asserted periodically (upsert is idempotent).
    this.keeper = setInterval(() => {
      this.ensureScheduler().catch((error: unknown) =>
        this.logger.warn({ msg: 'could not re-assert the anchor schedule', error: String(error) }),
      );
    }, SCHEDULER_KEEPER_MS);
  }

  onApplicationShutdown(): void {
    clearInterval(this.keeper);
  }

  private async ensureScheduler(): Promise<void> {
    await this.anchorQueue.upsertJobScheduler(
      ANCHOR_SCHEDULER_ID,
      { every: this.config.ledger.batchIntervalMs },
      { name: 'anchor', data: { trigger: 'interval' }, opts: { removeOnComplete: true, removeOnFail: true } },
    );
  }

  async process(job: Job<AnchorJob>): Promise<{ treeSize: number; leaves: number } | null> {
    try {
      const batch: AnchoredBatch | undefined = await this.anchorService.run();
      return batch ? { treeSize: batch.checkpoint.treeSize, leaves: batch.leaves } : null;
    } catch (error) {
      this.logger.warn({
        msg: 'anchor run failed; retrying at the next tick',
        trigger: job.data.trigger,
        error: String(error),
      });
      throw error;
    }
  }
}
