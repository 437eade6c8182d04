import { type DynamicModule, Module } from '@nestjs/common';
import { BullModule } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { QUEUES } from '@fhir-trail/jobs';
import { MappingProfileRegistry, RuntimeModule, SourceClients } from '@fhir-trail/runtime';
import { AdminDeadLettersController } from './admin/admin-dead-letters.controller';
import { AdminDestinationsController } from './admin/admin-destinations.controller';
import { AdminKeyGuard } from './admin/admin-key.guard';
import { AdminKeysService } from './admin/admin-keys.service';
import { AdminPatientsController } from './admin/admin-patients.controller';
import { PatientErasureService } from './admin/patient-erasure.service';
import { AdminMappingsController } from './admin/admin-mappings.controller';
import { AdminStatusController } from './admin/admin-status.controller';
import { AdminSubscriptionsController } from './admin/admin-subscriptions.controller';
import { AdminSourcesController } from './admin/admin-sources.controller';
import { ProvenanceVerificationService } from './audit/provenance-verification.service';
import { ProvenanceVerifyController } from './audit/provenance-verify.controller';
import { AuditEventController } from './consent/audit-event.controller';
import { ConsentKeyGuard } from './consent/consent-key.guard';
import { ConsentController } from './consent/consent.controller';
import { SignedGrantController } from './consent/signed-grant.controller';
import { SignedGrantService } from './consent/signed-grant.service';
import { HealthController } from './health/health.controller';
import { CheckpointsController } from './ledger/checkpoints.controller';
import { CheckpointsService } from './ledger/checkpoints.service';
import { ProofsController } from './ledger/proofs.controller';
import { ProofsService } from './ledger/proofs.service';
import { RecipientAuthGuard } from './reads/recipient-auth.guard';
import { RecipientReadsController } from './reads/recipient-reads.controller';
import { RecipientReadsService } from './reads/recipient-reads.service';
import { IngestEnqueuer } from './notifications/ingest-enqueuer';
import { NotificationsController } from './notifications/notifications.controller';
import { NotificationsService } from './notifications/notifications.service';
import { SourceRateLimiter } from './notifications/source-rate-limiter';
import { SourcesService } from './notifications/sources.service';

@Module({})
export class BridgeModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: BridgeModule,
      imports: [
        RuntimeModule.forRoot(config, { applicationName: 'fhir-trail-bridge', databasePoolSize: 20 }),
        BullModule.registerQueue(
          {
            name: QUEUES.ingest,
            // Jobs are only a fast path: the inbox row is the truth and the relay re-enqueues it.
            defaultJobOptions: {
              attempts: 5,
              backoff: { type: 'exponential', delay: 1_000 },
              removeOnComplete: true,
              removeOnFail: true,
            },
          },
          { name: QUEUES.consent },
        ),
        BullModule.registerQueue({ name: QUEUES.replay }),
      ],
      controllers: [
        NotificationsController,
        ProofsController,
        CheckpointsController,
        HealthController,
        AdminSourcesController,
        AdminStatusController,
        AdminSubscriptionsController,
        AdminPatientsController,
        ProvenanceVerifyController,
        AdminMappingsController,
        AdminDeadLettersController,
        SignedGrantController,
        ConsentController,
        AdminDestinationsController,
        AuditEventController,
        // Last: its parametric /fhir/R4/:type routes sit beside the static ones above.
        RecipientReadsController,
      ],
      providers: [
        SourcesService,
        SourceRateLimiter,
        IngestEnqueuer,
        NotificationsService,
        ProofsService,
        CheckpointsService,
        AdminKeysService,
        AdminKeyGuard,
        ConsentKeyGuard,
        SourceClients,
        PatientErasureService,
        SignedGrantService,
        ProvenanceVerificationService,
        MappingProfileRegistry,
        RecipientAuthGuard,
        RecipientReadsService,
      ],
    };
  }
}
