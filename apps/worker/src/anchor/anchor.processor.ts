import { Inject, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { ANCHOR_SCHEDULER_ID, type AnchorJob, QUEUES } from '@fhir-trail/jobs';
import { APP_CONFIG } from '@fhir-trail/runtime';
import type { Job, Queue } from 'bullmq';
import { keepJobScheduler } from '../scheduling/job-scheduler-keeper';
import { type AnchoredBatch, LedgerAnchorService } from './ledger-anchor.service';

/**
 * Anchor: runs every LEDGER_BATCH_INTERVAL_MS (a BullMQ job scheduler, one per deployment) and when
 * ingest fills a batch. Serial (concurrency 1) and single-writer across processes (advisory lock
 * inside the service). A failed run (chain down) is simply tried again at the next tick: pending
 * leaves stay pending, nothing is lost, and the same head is never anchored twice.
 */
@Processor(QUEUES.anchor, { concurrency: 1 })
export class AnchorProcessor extends WorkerHost implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(AnchorProcessor.name);
  private stopKeeper?: () => void;

  constructor(
    private readonly anchorService: LedgerAnchorService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectQueue(QUEUES.anchor) private readonly anchorQueue: Queue<AnchorJob>,
  ) {
    super();
  }

  async onApplicationBootstrap(): Promise<void> {
    this.stopKeeper = await keepJobScheduler(
      this.anchorQueue,
      ANCHOR_SCHEDULER_ID,
      this.config.ledger.batchIntervalMs,
      { name: 'anchor', data: { trigger: 'interval' } },
      this.logger,
    );
  }

  onApplicationShutdown(): void {
    this.stopKeeper?.();
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
