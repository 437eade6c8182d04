import { sql } from 'kysely';
import type { StoreDb } from './database';

export interface NewResourceVersion {
  readonly sourceId: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly sourceVersionId?: string;
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
}

export class ResourcesRepository {
  /**
   * Stores the next version of a resource. Must run inside a transaction: a transaction-scoped
   * advisory lock on (source, type, id) serialises concurrent writers of the same resource, so
   * version numbers are gap-free and never collide.
   */
  async insertVersion(trx: StoreDb, entry: NewResourceVersion): Promise<StoredResourceVersion> {
    const lockKey = `${entry.sourceId}|${entry.resourceType}|${entry.resourceId}`;
    await sql`select pg_advisory_xact_lock(hashtextextended(${lockKey}, 0))`.execute(trx);
    const current = await trx
      .selectFrom('resource_versions')
      .select((eb) => eb.fn.max('version').as('version'))
      .where('source_id', '=', entry.sourceId)
      .where('resource_type', '=', entry.resourceType)
      .where('resource_id', '=', entry.resourceId)
      .executeTakeFirst();
    const version = (current?.version ?? 0) + 1;
    const row = await trx
      .insertInto('resource_versions')
      .values({
        source_id: entry.sourceId,
        resource_type: entry.resourceType,
        resource_id: entry.resourceId,
        version,
        source_version_id: entry.sourceVersionId ?? null,
        interaction: entry.interaction,
        content: entry.content ? JSON.stringify(entry.content) : null,
        inbox_id: entry.inboxId,
        entry_index: entry.entryIndex,
        recorded_at: entry.recordedAt,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { id: row.id, version };
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
      content: Record<string, unknown> | null;
      provenance: Record<string, unknown> | null;
    }[]
  > {
    const rows = await db
      .selectFrom('resource_versions as v')
      .leftJoin('provenances as p', 'p.resource_version_id', 'v.id')
      .select(['v.version', 'v.interaction', 'v.content', 'p.content as provenance'])
      .where('v.source_id', '=', sourceId)
      .where('v.resource_type', '=', resourceType)
      .where('v.resource_id', '=', resourceId)
      .orderBy('v.version')
      .execute();
    return rows.map((r) => ({
      version: r.version,
      interaction: r.interaction,
      content: r.content,
      provenance: r.provenance,
    }));
  }
}
