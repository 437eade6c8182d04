import { type DynamicModule, Module } from '@nestjs/common';
import { BullModule } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { QUEUES } from '@fhir-trail/jobs';
import { RuntimeModule } from '@fhir-trail/runtime';
import { AnchorProcessor } from './anchor/anchor.processor';
import { LedgerAnchorService } from './anchor/ledger-anchor.service';
import { BackfillProcessor } from './backfill/backfill.processor';
import { SubscriptionRecoveryService } from './backfill/subscription-recovery.service';
import { EVENT_RESOLVER } from './ingest/event-resolver';
import { InboxRelayService } from './ingest/inbox-relay.service';
import { IngestProcessor } from './ingest/ingest.processor';
import { IngestService } from './ingest/ingest.service';
import { SourceClients } from '@fhir-trail/runtime';
import { SourceEventResolver } from './ingest/source-event.resolver';

@Module({})
export class WorkerModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        RuntimeModule.forRoot(config, { applicationName: 'fhir-trail-worker', databasePoolSize: 12 }),
        BullModule.registerQueue(
          {
            name: QUEUES.ingest,
            defaultJobOptions: {
              attempts: 5,
              backoff: { type: 'exponential', delay: 1_000 },
              removeOnComplete: true,
              removeOnFail: true,
            },
          },
          { name: QUEUES.anchor },
          { name: QUEUES.backfill },
        ),
      ],
      providers: [
        SourceClients,
        { provide: EVENT_RESOLVER, useClass: SourceEventResolver },
        IngestService,
        IngestProcessor,
        InboxRelayService,
        LedgerAnchorService,
        AnchorProcessor,
        SubscriptionRecoveryService,
        BackfillProcessor,
      ],
    };
  }
}
