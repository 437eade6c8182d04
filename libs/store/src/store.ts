import { sql } from 'kysely';
import {
  ensureDatabaseExists,
  migrateToLatest,
  openDatabase,
  type DatabaseOptions,
  type StoreDb,
} from './database';
import { AdminKeysRepository } from './admin-keys.repository';
import { AnchorOutboxRepository } from './anchor-outbox.repository';
import { ConsentsRepository } from './consents.repository';
import { SharingRepository } from './sharing.repository';
import { DeadLettersRepository } from './dead-letters.repository';
import { InboxRepository } from './inbox.repository';
import { LedgerRepository } from './ledger.repository';
import { type KeyWrapper, LocalKeyWrapper } from './key-wrapper';
import { MappingProfilesRepository } from './mapping-profiles.repository';
import { PatientKeysRepository } from './patient-keys.repository';
import { ProcessedEventsRepository } from './processed-events.repository';
import { ResourcesRepository } from './resources.repository';
import { SourcesRepository } from './sources.repository';
import { SubscriptionsRepository } from './subscriptions.repository';

export interface StoreOptions extends DatabaseOptions {
  readonly databaseUrl: string;
  readonly masterKey: Buffer;
  /**
   * Wraps per-patient keys; default {@link LocalKeyWrapper} over `masterKey`. Pass a KMS-backed
   * {@link KeyWrapper} to keep the key-encryption key out of the process.
   */
  readonly keyWrapper?: KeyWrapper;
  /** Create the database if missing and run migrations (both apps do this on start). */
  readonly migrate?: boolean;
}

/** The off-chain system of record: one handle, one repository per aggregate. */
export class Store {
  readonly sources: SourcesRepository;
  readonly adminKeys: AdminKeysRepository;
  readonly inbox: InboxRepository;
  readonly resources: ResourcesRepository;
  readonly deadLetters: DeadLettersRepository;
  readonly ledger: LedgerRepository;
  readonly anchorOutbox: AnchorOutboxRepository;
  readonly patientKeys: PatientKeysRepository;
  readonly processedEvents: ProcessedEventsRepository;
  readonly subscriptions: SubscriptionsRepository;
  readonly mappingProfiles: MappingProfilesRepository;
  readonly consents: ConsentsRepository;
  readonly sharing: SharingRepository;

  private constructor(
    readonly db: StoreDb,
    masterKey: Buffer,
    keyWrapper: KeyWrapper,
  ) {
    this.sources = new SourcesRepository(db, masterKey);
    this.adminKeys = new AdminKeysRepository(db);
    this.inbox = new InboxRepository(db);
    this.resources = new ResourcesRepository();
    this.deadLetters = new DeadLettersRepository(db);
    this.ledger = new LedgerRepository(db);
    this.anchorOutbox = new AnchorOutboxRepository(db);
    this.patientKeys = new PatientKeysRepository(db, keyWrapper);
    this.processedEvents = new ProcessedEventsRepository(db);
    this.subscriptions = new SubscriptionsRepository(db);
    this.mappingProfiles = new MappingProfilesRepository(db);
    this.consents = new ConsentsRepository(db);
    this.sharing = new SharingRepository(db, masterKey);
  }

  static async open(options: StoreOptions): Promise<Store> {
    if (options.migrate) await ensureDatabaseExists(options.databaseUrl);
    const db = openDatabase(options.databaseUrl, options);
    try {
      if (options.migrate) await migrateToLatest(db);
    } catch (error) {
      await db.destroy();
      throw error;
    }
    return new Store(db, options.masterKey, options.keyWrapper ?? new LocalKeyWrapper(options.masterKey));
  }

  /** Runs `work` in one transaction; everything it writes commits together or not at all. */
  transaction<T>(work: (trx: StoreDb) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(work);
  }

  /** Round trip to the database for health checks; rejects when it is unreachable. */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
