import { CompiledQuery, type Selectable, sql } from 'kysely';
import type { StoreDb } from './database';
import type { InboxStatus, InboxTable } from './schema';

const INSERT_INBOX = `insert into inbox
  (source_id, method, path, content_type, headers, body, shape, notification_type, event_count, enqueued_at)
  values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) returning id`;

export interface NewInboxEntry {
  readonly sourceId: string;
  readonly method: string;
  readonly path: string;
  readonly contentType?: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly shape: string;
  readonly notificationType: string;
  readonly eventCount: number;
}

export interface InboxEntry extends NewInboxEntry {
  readonly id: string;
  readonly status: InboxStatus;
  readonly receivedAt: Date;
  readonly attempts: number;
}

export class InboxRepository {
  constructor(private readonly db: StoreDb) {}

  /**
   * Commits the raw notification; the returned id is all a queue job carries. The hot path of the
   * intake, so the statement is written out once rather than built per request.
   */
  async insert(entry: NewInboxEntry): Promise<string> {
    const result = await this.db.executeQuery<{ id: string }>(
      CompiledQuery.raw(INSERT_INBOX, [
        entry.sourceId,
        entry.method,
        entry.path,
        entry.contentType ?? null,
        JSON.stringify(entry.headers),
        entry.body,
        entry.shape,
        entry.notificationType,
        entry.eventCount,
      ]),
    );
    const row = result.rows[0];
    if (!row) throw new Error('inbox insert returned no id');
    return row.id;
  }

  /** When the source's notification before this one arrived (what an empty ping re-queries since). */
  async previousReceivedAt(sourceId: string, beforeId: string): Promise<Date | undefined> {
    const row = await this.db
      .selectFrom('inbox')
      .select('received_at')
      .where('source_id', '=', sourceId)
      .where('id', '<', beforeId)
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row?.received_at;
  }

  /** Reads one row without locking it (the worker's resolve phase). */
  async find(id: string): Promise<InboxEntry | undefined> {
    const row = await this.db.selectFrom('inbox').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toEntry(row) : undefined;
  }

  /**
   * Locks one inbox row for processing. Returns undefined when it is gone or already finished
   * (a duplicate job), so processing is idempotent.
   */
  async lockForProcessing(db: StoreDb, id: string): Promise<InboxEntry | undefined> {
    const row = await db.selectFrom('inbox').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
    if (!row || row.status !== 'received') return undefined;
    await db
      .updateTable('inbox')
      .set({ attempts: sql<number>`attempts + 1` })
      .where('id', '=', id)
      .execute();
    return { ...toEntry(row), attempts: row.attempts + 1 };
  }

  async finish(
    db: StoreDb,
    id: string,
    status: Exclude<InboxStatus, 'received'>,
    error?: string,
  ): Promise<void> {
    await db
      .updateTable('inbox')
      .set({ status, processed_at: new Date(), last_error: error ?? null })
      .where('id', '=', id)
      .execute();
  }

  /** Records a failed attempt that will be retried (the row stays `received`). */
  async recordError(id: string, error: string): Promise<void> {
    await this.db.updateTable('inbox').set({ last_error: error }).where('id', '=', id).execute();
  }

  /**
   * Accepted rows whose job may have been lost (Redis flushed or down at enqueue time): still
   * `received` and last enqueued before `olderThan`. Marks them enqueued now, and returns their ids.
   */
  async claimForRelay(olderThan: Date, limit: number): Promise<readonly string[]> {
    const rows = await this.db
      .updateTable('inbox')
      .set({ enqueued_at: new Date() })
      .where(
        'id',
        'in',
        this.db
          .selectFrom('inbox')
          .select('id')
          .where('status', '=', 'received')
          .where((eb) => eb.or([eb('enqueued_at', 'is', null), eb('enqueued_at', '<', olderThan)]))
          .orderBy('id')
          .limit(limit),
      )
      .returning('id')
      .execute();
    return rows.map((r) => r.id);
  }

  async findStatus(id: string): Promise<{ status: InboxStatus; lastError: string | null } | undefined> {
    const row = await this.db
      .selectFrom('inbox')
      .select(['status', 'last_error'])
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? { status: row.status, lastError: row.last_error } : undefined;
  }

  async countByStatus(): Promise<Readonly<Record<InboxStatus, number>>> {
    const rows = await this.db
      .selectFrom('inbox')
      .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
      .groupBy('status')
      .execute();
    const counts: Record<InboxStatus, number> = { received: 0, done: 0, 'dead-letter': 0 };
    for (const row of rows) counts[row.status] = Number(row.n);
    return counts;
  }
}

function toEntry(row: Selectable<InboxTable>): InboxEntry {
  return {
    id: row.id,
    sourceId: row.source_id,
    method: row.method,
    path: row.path,
    contentType: row.content_type ?? undefined,
    headers: row.headers,
    body: row.body,
    shape: row.shape,
    notificationType: row.notification_type,
    eventCount: row.event_count,
    status: row.status,
    receivedAt: row.received_at,
    attempts: row.attempts,
  };
}
