import { Processor, WorkerHost } from '@nestjs/bullmq';
import { type ShareJob, QUEUES } from '@fhir-trail/jobs';
import type { Job } from 'bullmq';
import { type DeliveryResult, ShareService } from './share.service';

/**
 * Share: `fan-out` jobs turn a stored version into one `deliver` job per interested destination,
 * carrying that destination's retry policy (attempts, fixed backoff). A `deliver` job re-checks
 * consent on every attempt and records exactly one decision per (version, destination);
 * at-least-once, idempotent (a recorded decision ends later attempts).
 */
@Processor(QUEUES.share, { concurrency: 4 })
export class ShareProcessor extends WorkerHost {
  constructor(private readonly share: ShareService) {
    super();
  }

  async process(job: Job<ShareJob>): Promise<DeliveryResult | { fannedOut: number }> {
    if (job.data.kind === 'fan-out')
      return { fannedOut: await this.share.fanOut(job.data.resourceVersionId) };
    return this.share.deliver(job.data.resourceVersionId, job.data.destinationId, job.attemptsMade + 1);
  }
}
