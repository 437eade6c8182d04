import { Processor, WorkerHost } from '@nestjs/bullmq';
import { type ConsentJob, QUEUES } from '@fhir-trail/jobs';
import type { Job } from 'bullmq';
import { ConsentRegistrySyncService } from './consent-registry-sync.service';

/**
 * Consent: syncs the registry pairs of the patient of one stored consent. At-least-once and
 * idempotent (see ConsentRegistrySyncService); one at a time, since one registrar key signs.
 * Failures throw and BullMQ retries; the periodic sweep catches whatever is left.
 */
@Processor(QUEUES.consent, { concurrency: 1 })
export class ConsentProcessor extends WorkerHost {
  constructor(private readonly sync: ConsentRegistrySyncService) {
    super();
  }

  async process(job: Job<ConsentJob>): Promise<{ confirmed: number }> {
    return { confirmed: await this.sync.syncConsent(job.data.consentRowId) };
  }
}
