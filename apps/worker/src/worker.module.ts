import { type DynamicModule, Module } from '@nestjs/common';
import { BullModule } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { QUEUES } from '@fhir-trail/jobs';
import { MappingProfileRegistry, RuntimeModule, SourceClients } from '@fhir-trail/runtime';
import { AnchorProcessor } from './anchor/anchor.processor';
import { LedgerAnchorService } from './anchor/ledger-anchor.service';
import { BackfillProcessor } from './backfill/backfill.processor';
import { SubscriptionRecoveryService } from './backfill/subscription-recovery.service';
import { ConsentRegistrySyncService } from './consent/consent-registry-sync.service';
import { ConsentProcessor } from './consent/consent.processor';
import { ShareProcessor } from './share/share.processor';
import { ShareService } from './share/share.service';
import { ShareRelayService } from './share/share-relay.service';
import { EVENT_RESOLVER } from './ingest/event-resolver';
import { InboxRelayService } from './ingest/inbox-relay.service';
import { IngestProcessor } from './ingest/ingest.processor';
import { IngestService } from './ingest/ingest.service';
import { ReplayProcessor } from './ingest/replay.processor';
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
          { name: QUEUES.replay },
          {
            name: QUEUES.share,
            // Fan-out jobs; delivery jobs carry their destination's own retry policy.
            defaultJobOptions: {
              attempts: 5,
              backoff: { type: 'exponential', delay: 1_000 },
              removeOnComplete: true,
              removeOnFail: true,
            },
          },
          {
            name: QUEUES.consent,
            defaultJobOptions: {
              attempts: 5,
              backoff: { type: 'exponential', delay: 1_000 },
              removeOnComplete: true,
              removeOnFail: true,
            },
          },
        ),
      ],
      providers: [
        SourceClients,
        { provide: EVENT_RESOLVER, useClass: SourceEventResolver },
        MappingProfileRegistry,
        IngestService,
        IngestProcessor,
        ReplayProcessor,
        InboxRelayService,
        LedgerAnchorService,
        AnchorProcessor,
        SubscriptionRecoveryService,
        BackfillProcessor,
        ConsentRegistrySyncService,
        ConsentProcessor,
        ShareService,
        ShareRelayService,
        ShareProcessor,
      ],
    };
  }
}
