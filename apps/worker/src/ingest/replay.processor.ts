import { Logger } from '@nestjs/common';
import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import { QUEUES, type ReplayJob, type ShareJob, shareJobId } from '@fhir-trail/jobs';
import type { Job, Queue } from 'bullmq';
import { IngestService, type ReplayResult } from './ingest.service';

/**
 * Replay: at-least-once from BullMQ, exactly-once in effect (the dead letter is locked and closed in
 * the transaction that stores the resource; a replayed one is skipped). Uses the mapping profile
 * active when the job runs. A lost job (Redis flush) leaves the dead letter open: ask again. A stored
 * version goes to the share processor like any newly ingested one.
 */
@Processor(QUEUES.replay, { concurrency: 4 })
export class ReplayProcessor extends WorkerHost {
  private readonly logger = new Logger(ReplayProcessor.name);

  constructor(
    private readonly ingest: IngestService,
    @InjectQueue(QUEUES.share) private readonly shareQueue: Queue<ShareJob>,
  ) {
    super();
  }

  async process(job: Job<ReplayJob>): Promise<{ result: ReplayResult }> {
    const { result, shareable } = await this.ingest.replay(job.data.deadLetterId);
    this.logger.debug({ msg: 'replayed', deadLetterId: job.data.deadLetterId, result });
    if (shareable) {
      await this.shareQueue.add(
        'fan-out',
        { kind: 'fan-out', resourceVersionId: shareable },
        { jobId: shareJobId(shareable) },
      );
    }
    return { result };
  }
}
