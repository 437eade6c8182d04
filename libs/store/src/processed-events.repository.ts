import { sql } from 'kysely';
import type { StoreDb } from './database';

/**
 * One row per event the bridge has applied, under the sender's own identity for it; a second
 * arrival is acknowledged, counted and skipped. Claimed inside the ingest transaction, so a
 * rolled-back attempt leaves no claim behind.
 */
export class ProcessedEventsRepository {
  constructor(private readonly db: StoreDb) {}

  /** 'new' the first time a key is seen for a source; 'duplicate' afterwards (and counted). */
  async claim(
    trx: StoreDb,
    sourceId: string,
    dedupeKey: string,
    inboxId: string,
    entryIndex: number,
  ): Promise<'new' | 'duplicate'> {
    const result = await sql<{ inserted: boolean }>`
      insert into processed_events (source_id, dedupe_key, inbox_id, entry_index)
      values (${sourceId}, ${dedupeKey}, ${inboxId}, ${entryIndex})
      on conflict (source_id, dedupe_key) do update
        set duplicates = processed_events.duplicates + 1, last_duplicate_at = now()
      returning (xmax = 0) as inserted`.execute(trx);
    return result.rows[0]?.inserted ? 'new' : 'duplicate';
  }

  /** Which of these keys were already applied. */
  async seen(sourceId: string, dedupeKeys: readonly string[]): Promise<ReadonlySet<string>> {
    if (dedupeKeys.length === 0) return new Set();
    const rows = await this.db
      .selectFrom('processed_events')
      .select('dedupe_key')
      .where('source_id', '=', sourceId)
      .where('dedupe_key', 'in', dedupeKeys)
      .execute();
    return new Set(rows.map((r) => r.dedupe_key));
  }

  async duplicatesCount(sourceId: string): Promise<number> {
    const row = await this.db
      .selectFrom('processed_events')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<string>('duplicates'), sql<string>`0`).as('n'))
      .where('source_id', '=', sourceId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
