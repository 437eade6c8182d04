import { sql } from 'kysely';
import type { StoreDb } from './database';

export interface NewResourceVersion {
  readonly sourceId: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly sourceVersionId?: string;
  /** `meta.lastUpdated` at the source, when it said. */
  readonly sourceLastUpdated?: string;
  readonly interaction: 'create' | 'update' | 'delete';
  /** Undefined for a delete tombstone. */
  readonly content?: Readonly<Record<string, unknown>>;
  readonly inboxId: string;
  readonly entryIndex: number;
  readonly recordedAt: Date;
}

export interface StoredResourceVersion {
  readonly id: string;
  readonly version: number;
  /**
   * False when the source's version is older than the one already applied (a late, out-of-order
   * arrival): it is recorded, with its own Provenance, but never becomes the current version.
   */
  readonly applied: boolean;
}

/** What the bridge holds as the current version of a resource. */
export interface ResourceHead {
  readonly version: number;
  readonly sourceVersionId: string | null;
  readonly sourceLastUpdated: Date | null;
  readonly deleted: boolean;
}

export class ResourcesRepository {
  /**
   * Stores the next version of a resource. Must run inside a transaction: a transaction-scoped
   * advisory lock on (source, type, id) serialises concurrent writers of the same resource, so
   * version numbers are gap-free and never collide, and the current-version pointer only moves
   * forward (an older source version is stored with `applied = false`).
   */
  async insertVersion(trx: StoreDb, entry: NewResourceVersion): Promise<StoredResourceVersion> {
    const lockKey = `${entry.sourceId}|${entry.resourceType}|${entry.resourceId}`;
    await sql`select pg_advisory_xact_lock(hashtextextended(${lockKey}, 0))`.execute(trx);
    const [current, head] = await Promise.all([
      trx
        .selectFrom('resource_versions')
        .select((eb) => eb.fn.max('version').as('version'))
        .where('source_id', '=', entry.sourceId)
        .where('resource_type', '=', entry.resourceType)
        .where('resource_id', '=', entry.resourceId)
        .executeTakeFirst(),
      this.head(trx, entry.sourceId, entry.resourceType, entry.resourceId),
    ]);
    const version = (current?.version ?? 0) + 1;
    const applied = !head || !isOlder(entry, head);
    const row = await trx
      .insertInto('resource_versions')
      .values({
        source_id: entry.sourceId,
        resource_type: entry.resourceType,
        resource_id: entry.resourceId,
        version,
        source_version_id: entry.sourceVersionId ?? null,
        source_last_updated: entry.sourceLastUpdated ?? null,
        interaction: entry.interaction,
        content: entry.content ? JSON.stringify(entry.content) : null,
        inbox_id: entry.inboxId,
        entry_index: entry.entryIndex,
        recorded_at: entry.recordedAt,
        applied,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    if (applied) {
      const values = {
        version,
        source_version_id: entry.sourceVersionId ?? null,
        source_last_updated: entry.sourceLastUpdated ?? null,
        deleted: entry.interaction === 'delete',
      };
      await trx
        .insertInto('resource_heads')
        .values({
          source_id: entry.sourceId,
          resource_type: entry.resourceType,
          resource_id: entry.resourceId,
          ...values,
        })
        .onConflict((oc) => oc.columns(['source_id', 'resource_type', 'resource_id']).doUpdateSet(values))
        .execute();
    }
    return { id: row.id, version, applied };
  }

  /** The current (applied) version of a resource, if any. */
  async head(
    db: StoreDb,
    sourceId: string,
    resourceType: string,
    resourceId: string,
  ): Promise<ResourceHead | undefined> {
    const row = await db
      .selectFrom('resource_heads')
      .selectAll()
      .where('source_id', '=', sourceId)
      .where('resource_type', '=', resourceType)
      .where('resource_id', '=', resourceId)
      .executeTakeFirst();
    return row
      ? {
          version: row.version,
          sourceVersionId: row.source_version_id,
          sourceLastUpdated: row.source_last_updated,
          deleted: row.deleted,
        }
      : undefined;
  }

  async insertProvenance(
    trx: StoreDb,
    provenance: {
      id: string;
      resourceVersionId: string;
      content: Readonly<Record<string, unknown>>;
      recordedAt: Date;
    },
  ): Promise<void> {
    await trx
      .insertInto('provenances')
      .values({
        id: provenance.id,
        resource_version_id: provenance.resourceVersionId,
        content: JSON.stringify(provenance.content),
        recorded_at: provenance.recordedAt,
      })
      .execute();
  }

  /** Every stored version of a resource with its Provenance, oldest first. */
  async history(
    db: StoreDb,
    sourceId: string,
    resourceType: string,
    resourceId: string,
  ): Promise<
    readonly {
      version: number;
      interaction: string;
      applied: boolean;
      content: Record<string, unknown> | null;
      provenance: Record<string, unknown> | null;
    }[]
  > {
    const rows = await db
      .selectFrom('resource_versions as v')
      .leftJoin('provenances as p', 'p.resource_version_id', 'v.id')
      .select(['v.version', 'v.interaction', 'v.applied', 'v.content', 'p.content as provenance'])
      .where('v.source_id', '=', sourceId)
      .where('v.resource_type', '=', resourceType)
      .where('v.resource_id', '=', resourceId)
      .orderBy('v.version')
      .execute();
    return rows.map((r) => ({
      version: r.version,
      interaction: r.interaction,
      applied: r.applied,
      content: r.content,
      provenance: r.provenance,
    }));
  }
}

/**
 * Whether an arriving version is older than the applied one, by the source's own version id when
 * both are numeric (HAPI, Medplum and most servers count up), else by `meta.lastUpdated`. Without
 * either, arrival order decides (the newest arrival wins).
 */
function isOlder(entry: NewResourceVersion, head: ResourceHead): boolean {
  const incoming = entry.sourceVersionId;
  const held = head.sourceVersionId;
  if (incoming && held && /^\d+$/.test(incoming) && /^\d+$/.test(held))
    return BigInt(incoming) < BigInt(held);
  if (entry.sourceLastUpdated && head.sourceLastUpdated) {
    return Date.parse(entry.sourceLastUpdated) < head.sourceLastUpdated.getTime();
  }
  return false;
}
