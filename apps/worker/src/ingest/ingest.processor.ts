import { Inject, Logger } from '@nestjs/common';
import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import {
  type AnchorJob,
  ANCHOR_SIZE_JOB_ID,
  type IngestJob,
  QUEUES,
  type ShareJob,
  shareJobId,
} from '@fhir-trail/jobs';
import { APP_CONFIG } from '@fhir-trail/runtime';
import type { Job, Queue } from 'bullmq';
import { BackfillProcessor } from '../backfill/backfill.processor';
import { type IngestResult, IngestService } from './ingest.service';

type IngestSummary = Pick<IngestResult, 'status' | 'stored' | 'deadLetters' | 'duplicates'> & {
  readonly gaps: number;
};

/**
 * A job whose worker died (SIGKILL, OOM, lost host) keeps its deterministic id in BullMQ's active
 * list, so the inbox relay cannot enqueue it again: it waits until BullMQ declares it stalled (its
 * lock expired, seen by two stall checks). BullMQ's defaults (30 s lock, 30 s checks) left such
 * rows unprocessed for up to a minute; these bound it to about 15 s. The lock is renewed every
 * 5 s, and a job wrongly taken for stalled is harmless: processing is idempotent.
 */
const INGEST_LOCK_MS = 10_000;
const INGEST_STALLED_CHECK_MS = 5_000;

/**
 * Ingest: at-least-once delivery from BullMQ, exactly-once effect (the inbox row is locked and
 * finished in the same transaction as the versions it produces; a duplicate job finds it done).
 * Database or other transient failures throw, and BullMQ retries with backoff; after the last
 * attempt the row stays `received` and the inbox relay enqueues it again.
 */
@Processor(QUEUES.ingest, {
  concurrency: 8,
  lockDuration: INGEST_LOCK_MS,
  stalledInterval: INGEST_STALLED_CHECK_MS,
})
export class IngestProcessor extends WorkerHost {
  private readonly logger = new Logger(IngestProcessor.name);
  private leavesSinceTrigger = 0;

  constructor(
    private readonly ingest: IngestService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectQueue(QUEUES.anchor) private readonly anchorQueue: Queue<AnchorJob>,
    @InjectQueue(QUEUES.share) private readonly shareQueue: Queue<ShareJob>,
    private readonly backfill: BackfillProcessor,
  ) {
    super();
  }

  async process(job: Job<IngestJob>): Promise<IngestSummary> {
    const result = await this.ingest.process(job.data.inboxId);
    this.logger.debug({
      msg: 'ingested',
      inboxId: job.data.inboxId,
      stored: result.stored,
      duplicates: result.duplicates,
    });
    for (const gap of result.gaps) await this.backfill.scheduleGap(gap.id);
    if (result.shareable?.length) {
      await this.shareQueue.addBulk(
        result.shareable.map((resourceVersionId) => ({
          name: 'fan-out',
          data: { kind: 'fan-out' as const, resourceVersionId },
          opts: { jobId: shareJobId(resourceVersionId) },
        })),
      );
    }
    this.leavesSinceTrigger += result.ledgerEvents;
    if (this.leavesSinceTrigger >= this.config.ledger.batchSize) {
      // The batch is full: close it now rather than at the next interval.
      this.leavesSinceTrigger = 0;
      await this.anchorQueue.add(
        'anchor',
        { trigger: 'size' },
        { jobId: ANCHOR_SIZE_JOB_ID, removeOnComplete: true, removeOnFail: true },
      );
    }
    // The job's return value is stored in Redis as JSON: counts only (no bigints, no PHI).
    return {
      status: result.status,
      stored: result.stored,
      deadLetters: result.deadLetters,
      duplicates: result.duplicates,
      gaps: result.gaps.length,
    };
  }
}
