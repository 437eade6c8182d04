import { sql } from 'kysely';
import type { StoreDb } from './database';
import type { ConsentOrigin } from './schema';

export interface NewConsent {
  readonly sourceId: string;
  readonly consentId: string;
  readonly patientRef: string;
  readonly status: string;
  /** The normalised policy, as JSON. */
  readonly policy: Record<string, unknown>;
  readonly content: Record<string, unknown>;
  readonly origin: ConsentOrigin;
}

export interface StoredConsent {
  readonly id: string;
  readonly sourceId: string;
  readonly consentId: string;
  readonly version: number;
  readonly patientRef: string;
  readonly status: string;
  readonly policy: Record<string, unknown>;
  readonly content: Record<string, unknown>;
  readonly origin: ConsentOrigin;
  readonly recordedAt: Date;
}

/** A registry grant's scope: bitmaps, unix seconds (0 = unbounded), active flag. */
export interface RegistryGrantState {
  readonly active: boolean;
  readonly purposes: bigint;
  readonly dataClasses: bigint;
  readonly validFrom: number;
  readonly validUntil: number;
}

export interface RegistryPairKey {
  readonly sourceId: string;
  readonly patientRef: string;
  readonly recipientOrg: string;
}

/** One (patient, recipient) pair of the registry mirror: what policies imply, what the chain confirmed. */
export interface RegistryPair extends RegistryPairKey {
  readonly patientKey: Buffer;
  readonly recipientKey: Buffer;
  readonly desired: RegistryGrantState;
  readonly confirmed: RegistryGrantState;
  /** Finalised block at which `confirmed` was read from the chain; null until the first sync. */
  readonly confirmedBlock: number | null;
  readonly txHash: string | null;
}

/** Consents as interpreted, and the mirror of the consent registry contract. */
export class ConsentsRepository {
  constructor(private readonly db: StoreDb) {}

  /** Inserts a consent, or replaces the stored one with the same (source, FHIR id) and bumps its version. */
  async upsert(trx: StoreDb, consent: NewConsent): Promise<StoredConsent> {
    const row = await trx
      .insertInto('consents')
      .values({
        source_id: consent.sourceId,
        consent_id: consent.consentId,
        patient_ref: consent.patientRef,
        status: consent.status,
        policy: JSON.stringify(consent.policy),
        content: JSON.stringify(consent.content),
        origin: consent.origin,
      })
      .onConflict((oc) =>
        oc.columns(['source_id', 'consent_id']).doUpdateSet((eb) => ({
          version: sql<number>`${eb.ref('consents.version')} + 1`,
          patient_ref: eb.ref('excluded.patient_ref'),
          status: eb.ref('excluded.status'),
          policy: eb.ref('excluded.policy'),
          content: eb.ref('excluded.content'),
          origin: eb.ref('excluded.origin'),
          recorded_at: sql<Date>`now()`,
        })),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
    return toConsent(row);
  }

  async find(id: string, db: StoreDb = this.db): Promise<StoredConsent | undefined> {
    const row = await db.selectFrom('consents').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toConsent(row) : undefined;
  }

  async findByConsentId(
    sourceId: string,
    consentId: string,
    db: StoreDb = this.db,
  ): Promise<StoredConsent | undefined> {
    const row = await db
      .selectFrom('consents')
      .selectAll()
      .where('source_id', '=', sourceId)
      .where('consent_id', '=', consentId)
      .executeTakeFirst();
    return row ? toConsent(row) : undefined;
  }

  /** Every stored consent of a patient (all statuses), oldest first. */
  async forPatient(sourceId: string, patientRef: string, db: StoreDb = this.db): Promise<StoredConsent[]> {
    const rows = await db
      .selectFrom('consents')
      .selectAll()
      .where('source_id', '=', sourceId)
      .where('patient_ref', '=', patientRef)
      .orderBy('id')
      .execute();
    return rows.map(toConsent);
  }

  async pairs(sourceId: string, patientRef: string, db: StoreDb = this.db): Promise<RegistryPair[]> {
    const rows = await db
      .selectFrom('consent_registry_pairs')
      .selectAll()
      .where('source_id', '=', sourceId)
      .where('patient_ref', '=', patientRef)
      .orderBy('recipient_org')
      .execute();
    return rows.map(toPair);
  }

  async pair(key: RegistryPairKey, db: StoreDb = this.db): Promise<RegistryPair | undefined> {
    const row = await db
      .selectFrom('consent_registry_pairs')
      .selectAll()
      .where('source_id', '=', key.sourceId)
      .where('patient_ref', '=', key.patientRef)
      .where('recipient_org', '=', key.recipientOrg)
      .executeTakeFirst();
    return row ? toPair(row) : undefined;
  }

  /** Records what the policies now imply for a pair (the chain is brought in line later). */
  async setDesired(
    trx: StoreDb,
    key: RegistryPairKey & { readonly patientKey: Buffer; readonly recipientKey: Buffer },
    desired: RegistryGrantState,
  ): Promise<void> {
    const values = {
      desired_active: desired.active,
      desired_purposes: desired.purposes.toString(),
      desired_data_classes: desired.dataClasses.toString(),
      desired_valid_from: desired.validFrom,
      desired_valid_until: desired.validUntil,
      updated_at: new Date(),
    };
    await trx
      .insertInto('consent_registry_pairs')
      .values({
        source_id: key.sourceId,
        patient_ref: key.patientRef,
        recipient_org: key.recipientOrg,
        patient_key: key.patientKey,
        recipient_key: key.recipientKey,
        confirmed_purposes: '0',
        confirmed_data_classes: '0',
        ...values,
      })
      .onConflict((oc) => oc.columns(['source_id', 'patient_ref', 'recipient_org']).doUpdateSet(values))
      .execute();
  }

  /**
   * Erasure: deletes every stored consent of a patient (resource and policy; the `consent` ledger
   * leaves stay, they hold only keyed digests) and sets every registry pair of theirs to inactive,
   * so the registry sync revokes them on chain. The pair rows stay as tombstones (pseudonymous keys
   * and the revocation's confirmation). Returns (consents deleted, pairs withdrawn).
   */
  async eraseForPatient(
    trx: StoreDb,
    sourceId: string,
    patientRef: string,
  ): Promise<{ consents: number; pairs: number }> {
    const deleted = await trx
      .deleteFrom('consents')
      .where('source_id', '=', sourceId)
      .where('patient_ref', '=', patientRef)
      .executeTakeFirst();
    const withdrawn = await trx
      .updateTable('consent_registry_pairs')
      .set({
        desired_active: false,
        desired_purposes: '0',
        desired_data_classes: '0',
        desired_valid_from: 0,
        desired_valid_until: 0,
        updated_at: new Date(),
      })
      .where('source_id', '=', sourceId)
      .where('patient_ref', '=', patientRef)
      .executeTakeFirst();
    return { consents: Number(deleted.numDeletedRows), pairs: Number(withdrawn.numUpdatedRows) };
  }

  /**
   * Patients with at least one pair whose confirmed chain state differs from what their policies
   * imply (or was never read), oldest change first.
   */
  async patientsOutOfSync(limit: number): Promise<{ sourceId: string; patientRef: string }[]> {
    const rows = await this.db
      .selectFrom('consent_registry_pairs')
      .select(['source_id', 'patient_ref'])
      .where((eb) =>
        eb.or([
          eb('confirmed_block', 'is', null),
          eb('desired_active', '!=', eb.ref('confirmed_active')),
          eb.and([
            eb('desired_active', '=', true),
            eb.or([
              eb('desired_purposes', '!=', eb.ref('confirmed_purposes')),
              eb('desired_data_classes', '!=', eb.ref('confirmed_data_classes')),
              eb('desired_valid_from', '!=', eb.ref('confirmed_valid_from')),
              eb('desired_valid_until', '!=', eb.ref('confirmed_valid_until')),
            ]),
          ]),
        ]),
      )
      .groupBy(['source_id', 'patient_ref'])
      .orderBy(sql`min(updated_at)`)
      .limit(limit)
      .execute();
    return rows.map((r) => ({ sourceId: r.source_id, patientRef: r.patient_ref }));
  }

  /** Records the pair's grant as read from finalised chain state at `block`. */
  async setConfirmed(
    key: RegistryPairKey,
    confirmed: RegistryGrantState,
    block: number,
    txHash: string | null,
  ): Promise<void> {
    await this.db
      .updateTable('consent_registry_pairs')
      .set({
        confirmed_active: confirmed.active,
        confirmed_purposes: confirmed.purposes.toString(),
        confirmed_data_classes: confirmed.dataClasses.toString(),
        confirmed_valid_from: confirmed.validFrom,
        confirmed_valid_until: confirmed.validUntil,
        confirmed_block: block,
        ...(txHash === null ? {} : { tx_hash: txHash }),
        updated_at: new Date(),
      })
      .where('source_id', '=', key.sourceId)
      .where('patient_ref', '=', key.patientRef)
      .where('recipient_org', '=', key.recipientOrg)
      .execute();
  }
}

type ConsentRow = {
  id: string;
  source_id: string;
  consent_id: string;
  version: number;
  patient_ref: string;
  status: string;
  policy: Record<string, unknown>;
  content: Record<string, unknown>;
  origin: ConsentOrigin;
  recorded_at: Date;
};

function toConsent(row: ConsentRow): StoredConsent {
  return {
    id: row.id,
    sourceId: row.source_id,
    consentId: row.consent_id,
    version: row.version,
    patientRef: row.patient_ref,
    status: row.status,
    policy: row.policy,
    content: row.content,
    origin: row.origin,
    recordedAt: row.recorded_at,
  };
}

type PairRow = {
  source_id: string;
  patient_ref: string;
  recipient_org: string;
  patient_key: Buffer;
  recipient_key: Buffer;
  desired_active: boolean;
  desired_purposes: string;
  desired_data_classes: string;
  desired_valid_from: string;
  desired_valid_until: string;
  confirmed_active: boolean;
  confirmed_purposes: string;
  confirmed_data_classes: string;
  confirmed_valid_from: string;
  confirmed_valid_until: string;
  confirmed_block: string | null;
  tx_hash: string | null;
};

function toPair(row: PairRow): RegistryPair {
  return {
    sourceId: row.source_id,
    patientRef: row.patient_ref,
    recipientOrg: row.recipient_org,
    patientKey: row.patient_key,
    recipientKey: row.recipient_key,
    desired: {
      active: row.desired_active,
      purposes: BigInt(row.desired_purposes),
      dataClasses: BigInt(row.desired_data_classes),
      validFrom: Number(row.desired_valid_from),
      validUntil: Number(row.desired_valid_until),
    },
    confirmed: {
      active: row.confirmed_active,
      purposes: BigInt(row.confirmed_purposes),
      dataClasses: BigInt(row.confirmed_data_classes),
      validFrom: Number(row.confirmed_valid_from),
      validUntil: Number(row.confirmed_valid_until),
    },
    confirmedBlock: row.confirmed_block === null ? null : Number(row.confirmed_block),
    txHash: row.tx_hash,
  };
}
