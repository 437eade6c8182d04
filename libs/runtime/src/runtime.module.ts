import {
  type DynamicModule,
  Global,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { BullModule } from '@nestjs/bullmq';
import type { AppConfig } from '@fhir-trail/config';
import { Store } from '@fhir-trail/store';
import { type LedgerConnection, openLedgerConnection } from './ledger-connection';
import { redisConnectionOptions } from './redis-connection';
import { APP_CONFIG, LEDGER, STORE } from './tokens';

@Injectable()
class RuntimeShutdown implements OnApplicationShutdown {
  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(LEDGER) private readonly ledger: LedgerConnection,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([this.store.close(), this.ledger.close()]);
  }
}

export interface RuntimeOptions {
  /** Shown in pg_stat_activity. */
  readonly applicationName: string;
  readonly databasePoolSize: number;
}

/**
 * What both apps stand on: the validated configuration, PostgreSQL (created and migrated on
 * start), the ledger connection (embedded chain when none is configured) and BullMQ's Redis.
 */
@Global()
@Module({})
export class RuntimeModule {
  static forRoot(config: AppConfig, options: RuntimeOptions): DynamicModule {
    return {
      module: RuntimeModule,
      imports: [
        BullModule.forRoot({
          connection: redisConnectionOptions(config.redisUrl),
          prefix: config.queuePrefix,
        }),
      ],
      providers: [
        { provide: APP_CONFIG, useValue: config },
        {
          provide: STORE,
          useFactory: () =>
            Store.open({
              databaseUrl: config.databaseUrl,
              masterKey: config.ledger.masterKey,
              migrate: true,
              applicationName: options.applicationName,
              max: options.databasePoolSize,
            }),
        },
        {
          provide: LEDGER,
          useFactory: (store: Store) => openLedgerConnection(config, { outbox: store.anchorOutbox }),
          inject: [STORE],
        },
        RuntimeShutdown,
      ],
      exports: [APP_CONFIG, STORE, LEDGER],
    };
  }
}
