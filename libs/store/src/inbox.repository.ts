import { CompiledQuery, type Selectable, sql } from 'kysely';
import type { StoreDb } from './database';
import type { InboxStatus, InboxTable } from './schema';

const INBOX_COLUMNS =
  '(source_id, method, path, content_type, headers, body, shape, notification_type, event_count, enqueued_at)';
const INSERT_INBOX = `insert into inbox ${INBOX_COLUMNS}
  values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) returning id`;
/** Parameters per row of the inbox INSERT. */
const PARAMETERS_PER_ROW = 9;
/** Statements of insertMany by row count, written out once each. */
const insertManyStatements = new Map<number, string>();

function insertManyStatement(rows: number): string {
  let statement = insertManyStatements.get(rows);
  if (statement === undefined) {
    const tuples: string[] = [];
    for (let row = 0; row < rows; row++) {
      const first = row * PARAMETERS_PER_ROW;
      const parameters = Array.from({ length: PARAMETERS_PER_ROW }, (_, i) => `$${first + i + 1}`);
      tuples.push(`(${parameters.join(', ')}, now())`);
    }
    statement = `insert into inbox ${INBOX_COLUMNS} values ${tuples.join(', ')} returning id`;
    if (rows <= 256) insertManyStatements.set(rows, statement);
  }
  return statement;
}

function insertParameters(entry: NewInboxEntry): unknown[] {
  return [
    entry.sourceId,
    entry.method,
    entry.path,
    entry.contentType ?? null,
    JSON.stringify(entry.headers),
    entry.body,
    entry.shape,
    entry.notificationType,
    entry.eventCount,
  ];
}

/** Numeric order of bigint ids given as decimal strings. */
function byNumericId(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

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
      CompiledQuery.raw(INSERT_INBOX, insertParameters(entry)),
    );
    const row = result.rows[0];
    if (!row) throw new Error('inbox insert returned no id');
    return row.id;
  }

  /**
   * Commits several notifications with one statement — one round trip, one commit, one WAL flush —
   * and returns their ids in the order given. Atomic: every row is committed, or none is.
   */
  async insertMany(entries: readonly NewInboxEntry[]): Promise<string[]> {
    if (entries.length === 0) return [];
    if (entries.length === 1) return [await this.insert(entries[0])];
    const parameters: unknown[] = [];
    for (const entry of entries) parameters.push(...insertParameters(entry));
    const result = await this.db.executeQuery<{ id: string }>(
      CompiledQuery.raw(insertManyStatement(entries.length), parameters),
    );
    if (result.rows.length !== entries.length) {
      throw new Error('inbox insert returned the wrong number of ids');
    }
    // The ids come from the bigserial default, drawn row by row as the VALUES list is read, so they
    // ascend in the order of the list whatever order RETURNING lists them in (which SQL leaves open).
    return result.rows.map((row) => row.id).sort(byNumericId);
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

  /**
   * Deletes the raw bytes (and headers) of notifications that held an erased patient's data; the
   * rows stay, so what was received and when is still known.
   */
  async eraseBodies(db: StoreDb, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const result = await db
      .updateTable('inbox')
      .set({ body: Buffer.alloc(0), headers: JSON.stringify({}) })
      .where('id', 'in', ids)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /** Records a failed attempt that will be retried (the row stays `received`). */
  async recordError(id: string, error: string): Promise<void> {
    await this.db.updateTable('inbox').set({ last_error: error }).where('id', '=', id).execute();
  }

  /**
   * Accepted rows whose job may have been lost (Redis flushed or down at enqueue time): still
   * `received` and last enqueued before `olderThan`. Marks them enqueued now, and returns their ids.
   * Rows locked by an ingest transaction are being processed right now and are skipped: waiting for
   * them made every pass a convoy that stalled ingest behind it whenever there was a backlog.
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
          .limit(limit)
          .forUpdate()
          .skipLocked(),
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
