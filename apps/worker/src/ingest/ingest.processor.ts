import { Inject, Logger } from '@nestjs/common';
import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { type AnchorJob, ANCHOR_SIZE_JOB_ID, type IngestJob, QUEUES } from '@fhir-trail/jobs';
import { APP_CONFIG } from '@fhir-trail/runtime';
import type { Job, Queue } from 'bullmq';
import { type IngestResult, IngestService } from './ingest.service';

/**
 * Ingest: at-least-once delivery from BullMQ, exactly-once effect (the inbox row is locked and
 * finished in the same transaction as the versions it produces; a duplicate job finds it done).
 * Database or other transient failures throw, and BullMQ retries with backoff; after the last
 * attempt the row stays `received` and the inbox relay enqueues it again.
 */
@Processor(QUEUES.ingest, { concurrency: 8 })
export class IngestProcessor extends WorkerHost {
  private readonly logger = new Logger(IngestProcessor.name);
  private leavesSinceTrigger = 0;

  constructor(
    private readonly ingest: IngestService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectQueue(QUEUES.anchor) private readonly anchorQueue: Queue<AnchorJob>,
  ) {
    super();
  }

  async process(job: Job<IngestJob>): Promise<IngestResult> {
    const result = await this.ingest.process(job.data.inboxId);
    this.logger.debug({ msg: 'ingested', inboxId: job.data.inboxId, ...result });
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
    return result;
  }
}
