import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import { LedgerError, type RegistryGrant } from '@fhir-trail/ledger';
import { APP_CONFIG, LEDGER, type LedgerConnection, STORE } from '@fhir-trail/runtime';
import type { RegistryGrantState, Store } from '@fhir-trail/store';
import { PeriodicSweep } from '../scheduling/periodic-sweep';

/** Patients synced per sweep pass; the rest wait for the next pass. */
const SWEEP_BATCH = 50;

/**
 * Keeps the consent registry contract in line with the stored consents, one patient at a time:
 * for each (patient, recipient) pair whose wanted state differs from what the chain confirmed,
 * send `grant` or `revoke` (idempotent: the client reads the chain first), wait for the configured
 * confirmations, then read the pair back **at the finalised block** and record that as the mirror's
 * confirmed state. Deliveries check the confirmed state only, so nothing is disclosed on the
 * strength of a grant that is not final on chain. Runs on each consent job and on a periodic sweep
 * (a lost job only delays the chain). At-least-once; idempotent.
 */
@Injectable()
export class ConsentRegistrySyncService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(ConsentRegistrySyncService.name);
  private readonly sweeper = new PeriodicSweep(this.logger, 'consent registry sweep', () => this.sweep());

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
    @Inject(LEDGER) private readonly ledger: LedgerConnection,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.ledger.consentRegistry) {
      this.logger.warn({ msg: 'no consent registrar key: the consent registry is not mirrored' });
      return;
    }
    this.sweeper.start(this.config.inboxRelayIntervalMs, false);
  }

  onApplicationShutdown(): Promise<void> {
    return this.sweeper.stop();
  }

  /** One sweep over patients out of sync; passes never overlap. Returns the patients synced. */
  sweepOnce(): Promise<number> {
    return this.sweeper.runOnce();
  }

  /** Syncs the patient of one stored consent (a consent job). */
  async syncConsent(consentRowId: string): Promise<number> {
    const consent = await this.store.consents.find(consentRowId);
    if (!consent) return 0;
    return this.syncPatient(consent.sourceId, consent.patientRef);
  }

  /** Brings every pair of one patient in line; returns how many pairs were confirmed anew. */
  async syncPatient(sourceId: string, patientRef: string): Promise<number> {
    const registry = this.ledger.consentRegistry;
    if (!registry) return 0;
    let confirmed = 0;
    for (const pair of await this.store.consents.pairs(sourceId, patientRef)) {
      if (pair.confirmedBlock !== null && sameState(pair.desired, pair.confirmed)) continue;
      const patientKey = hex(pair.patientKey);
      const recipientKey = hex(pair.recipientKey);
      const txHash = await registry.apply(patientKey, recipientKey, pair.desired);
      const block = await registry.finalisedBlock();
      const onChain = await registry.readGrant(patientKey, recipientKey, block);
      if (!sameState(pair.desired, onChain)) {
        throw new LedgerError(
          'UNEXPECTED_CHAIN_DATA',
          `the finalised registry state of a pair does not match its consents yet (block ${block})`,
        );
      }
      await this.store.consents.setConfirmed(pair, onChain, block, txHash);
      confirmed++;
    }
    return confirmed;
  }

  private async sweep(): Promise<number> {
    const patients = await this.store.consents.patientsOutOfSync(SWEEP_BATCH);
    for (const p of patients) await this.syncPatient(p.sourceId, p.patientRef);
    return patients.length;
  }
}

/** Equal as far as isConsented can tell: an inactive grant's scope does not matter. */
export function sameState(
  a: RegistryGrantState | RegistryGrant,
  b: RegistryGrantState | RegistryGrant,
): boolean {
  if (!a.active || !b.active) return a.active === b.active;
  return (
    a.purposes === b.purposes &&
    a.dataClasses === b.dataClasses &&
    a.validFrom === b.validFrom &&
    a.validUntil === b.validUntil
  );
}

function hex(key: Buffer): string {
  return `0x${key.toString('hex')}`;
}
