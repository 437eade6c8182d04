import { sql } from 'kysely';
import type { StoreDb } from './database';

/** One stored version of a mapping profile; `document` is the profile JSON exactly as accepted. */
export interface MappingProfileVersion {
  readonly profileId: string;
  readonly version: number;
  readonly document: Record<string, unknown>;
  /** `admin-api`, or `file:<name>` for a version loaded from MAPPING_PROFILES_DIR. */
  readonly origin: string;
  readonly createdAt: Date;
  readonly active: boolean;
}

/** A profile and where its versions stand. */
export interface MappingProfileSummary {
  readonly profileId: string;
  readonly name?: string;
  readonly latestVersion: number;
  readonly activeVersion?: number;
  readonly activatedAt?: Date;
  readonly versions: number;
}

/** `createVersion` was told which version to create, and another one is next. */
export class MappingProfileVersionConflictError extends Error {
  readonly code = 'MAPPING_PROFILE_VERSION_CONFLICT';
  constructor(
    readonly profileId: string,
    readonly expected: number,
    readonly next: number,
  ) {
    super(`mapping profile ${profileId}: version ${expected} was asked for, the next version is ${next}`);
    this.name = 'MappingProfileVersionConflictError';
  }
}

/** What {@link MappingProfilesRepository.importVersion} did with a profile from a file. */
export type MappingProfileImport = 'created-and-activated' | 'created' | 'unchanged';

export class MappingProfilesRepository {
  constructor(private readonly db: StoreDb) {}

  /**
   * Stores `document` as the next version of its profile (1 for a new profile); its `version` field
   * is set to that number. With `expectedVersion`, refuses (MappingProfileVersionConflictError)
   * when another version is next, so two engineers editing one profile cannot overwrite each other.
   */
  async createVersion(
    profileId: string,
    document: Readonly<Record<string, unknown>>,
    options: { readonly origin: string; readonly expectedVersion?: number; readonly activate?: boolean },
  ): Promise<MappingProfileVersion> {
    return this.db.transaction().execute(async (trx) => {
      await lockProfile(trx, profileId);
      const next = (await latestVersion(trx, profileId)) + 1;
      if (options.expectedVersion !== undefined && options.expectedVersion !== next) {
        throw new MappingProfileVersionConflictError(profileId, options.expectedVersion, next);
      }
      const stored = { ...document, id: profileId, version: next };
      const row = await trx
        .insertInto('mapping_profiles')
        .values({
          profile_id: profileId,
          version: next,
          document: JSON.stringify(stored),
          origin: options.origin,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      if (options.activate) await activate(trx, profileId, next);
      return {
        profileId,
        version: next,
        document: row.document,
        origin: row.origin,
        createdAt: row.created_at,
        active: options.activate === true,
      };
    });
  }

  /**
   * A profile from a file at start: stored as a new version unless one with the same content (all
   * but `version`) exists, and activated only if the profile has no active version yet — after the
   * first start the admin API decides which version is active.
   */
  async importVersion(
    profileId: string,
    document: Readonly<Record<string, unknown>>,
    origin: string,
  ): Promise<{ readonly outcome: MappingProfileImport; readonly version: number }> {
    return this.db.transaction().execute(async (trx) => {
      await lockProfile(trx, profileId);
      const content = JSON.stringify({ ...document, id: profileId, version: 0 });
      const same = await trx
        .selectFrom('mapping_profiles')
        .select('version')
        .where('profile_id', '=', profileId)
        .where(sql<boolean>`document || '{"version":0}'::jsonb = ${content}::jsonb`)
        .orderBy('version', 'desc')
        .executeTakeFirst();
      const hasActive = await trx
        .selectFrom('mapping_profile_active')
        .select('version')
        .where('profile_id', '=', profileId)
        .executeTakeFirst();
      if (same) {
        if (!hasActive) {
          await activate(trx, profileId, same.version);
          return { outcome: 'created-and-activated', version: same.version };
        }
        return { outcome: 'unchanged', version: same.version };
      }
      const next = (await latestVersion(trx, profileId)) + 1;
      await trx
        .insertInto('mapping_profiles')
        .values({
          profile_id: profileId,
          version: next,
          document: JSON.stringify({ ...document, id: profileId, version: next }),
          origin,
        })
        .execute();
      if (!hasActive) await activate(trx, profileId, next);
      return { outcome: hasActive ? 'created' : 'created-and-activated', version: next };
    });
  }

  /** Makes `version` the active one; false when there is no such version. */
  async activate(profileId: string, version: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const exists = await trx
        .selectFrom('mapping_profiles')
        .select('version')
        .where('profile_id', '=', profileId)
        .where('version', '=', version)
        .executeTakeFirst();
      if (!exists) return false;
      await activate(trx, profileId, version);
      return true;
    });
  }

  /** The active version's number, or undefined (no such profile, or none active). One indexed read. */
  async activeVersion(profileId: string): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('mapping_profile_active')
      .select('version')
      .where('profile_id', '=', profileId)
      .executeTakeFirst();
    return row?.version;
  }

  /** One version, or the latest when `version` is undefined. */
  async find(profileId: string, version?: number): Promise<MappingProfileVersion | undefined> {
    let query = this.db
      .selectFrom('mapping_profiles as p')
      .leftJoin('mapping_profile_active as a', (join) =>
        join.onRef('a.profile_id', '=', 'p.profile_id').onRef('a.version', '=', 'p.version'),
      )
      .select(['p.profile_id', 'p.version', 'p.document', 'p.origin', 'p.created_at', 'a.version as active'])
      .where('p.profile_id', '=', profileId);
    query =
      version === undefined
        ? query.orderBy('p.version', 'desc').limit(1)
        : query.where('p.version', '=', version);
    const row = await query.executeTakeFirst();
    return row
      ? {
          profileId: row.profile_id,
          version: row.version,
          document: row.document,
          origin: row.origin,
          createdAt: row.created_at,
          active: row.active !== null,
        }
      : undefined;
  }

  /** Every version of a profile, newest first, without their documents' bodies. */
  async versions(profileId: string): Promise<readonly Omit<MappingProfileVersion, 'document'>[]> {
    const rows = await this.db
      .selectFrom('mapping_profiles as p')
      .leftJoin('mapping_profile_active as a', (join) =>
        join.onRef('a.profile_id', '=', 'p.profile_id').onRef('a.version', '=', 'p.version'),
      )
      .select(['p.profile_id', 'p.version', 'p.origin', 'p.created_at', 'a.version as active'])
      .where('p.profile_id', '=', profileId)
      .orderBy('p.version', 'desc')
      .execute();
    return rows.map((row) => ({
      profileId: row.profile_id,
      version: row.version,
      origin: row.origin,
      createdAt: row.created_at,
      active: row.active !== null,
    }));
  }

  /** Every profile with its latest and active versions, by id. */
  async list(): Promise<readonly MappingProfileSummary[]> {
    const rows = await this.db
      .selectFrom('mapping_profiles as p')
      .leftJoin('mapping_profile_active as a', 'a.profile_id', 'p.profile_id')
      .select((eb) => [
        'p.profile_id',
        eb.fn.max('p.version').as('latest'),
        eb.fn.count<string>('p.version').as('versions'),
        eb.fn.max('a.version').as('active'),
        eb.fn.max('a.activated_at').as('activated_at'),
        sql<string | null>`(array_agg(p.document->>'name' order by p.version desc))[1]`.as('name'),
      ])
      .groupBy('p.profile_id')
      .orderBy('p.profile_id')
      .execute();
    return rows.map((row) => ({
      profileId: row.profile_id,
      name: row.name ?? undefined,
      latestVersion: Number(row.latest),
      activeVersion: row.active === null ? undefined : Number(row.active),
      activatedAt: row.activated_at === null ? undefined : new Date(row.activated_at),
      versions: Number(row.versions),
    }));
  }
}

/** Serialises version numbering per profile (two creates cannot both take the same number). */
async function lockProfile(trx: StoreDb, profileId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`mapping-profile|${profileId}`}, 0))`.execute(
    trx,
  );
}

async function latestVersion(trx: StoreDb, profileId: string): Promise<number> {
  const row = await trx
    .selectFrom('mapping_profiles')
    .select((eb) => eb.fn.max('version').as('version'))
    .where('profile_id', '=', profileId)
    .executeTakeFirst();
  return row?.version ?? 0;
}

async function activate(trx: StoreDb, profileId: string, version: number): Promise<void> {
  await trx
    .insertInto('mapping_profile_active')
    .values({ profile_id: profileId, version })
    .onConflict((oc) => oc.column('profile_id').doUpdateSet({ version, activated_at: new Date() }))
    .execute();
}
