import type { StoreDb } from './database';

export interface NewDeadLetter {
  readonly sourceId: string;
  /** The accepted notification it came from; undefined for a request refused at the door. */
  readonly inboxId?: string;
  /** Which event of the notification; -1 for the notification as a whole. */
  readonly entryIndex?: number;
  /** Machine-readable reason, e.g. `invalid-resource`, `unparseable-notification`. */
  readonly reasonCode: string;
  readonly outcome: Readonly<Record<string, unknown>>;
  /** Raw bytes for requests that never reached the inbox. */
  readonly raw?: Buffer;
}

export interface DeadLetter {
  readonly id: string;
  readonly sourceId: string;
  readonly inboxId: string | null;
  readonly entryIndex: number | null;
  readonly reasonCode: string;
  readonly outcome: Record<string, unknown>;
  readonly createdAt: Date;
}

export class DeadLettersRepository {
  constructor(private readonly db: StoreDb) {}

  /** Records a dead letter once per (inbox row, entry): a retried job does not duplicate it. */
  async insert(entry: NewDeadLetter, db: StoreDb = this.db): Promise<void> {
    await db
      .insertInto('dead_letters')
      .values({
        source_id: entry.sourceId,
        inbox_id: entry.inboxId ?? null,
        entry_index: entry.inboxId ? (entry.entryIndex ?? -1) : null,
        reason_code: entry.reasonCode,
        outcome: JSON.stringify(entry.outcome),
        raw: entry.raw ?? null,
      })
      .onConflict((oc) => oc.columns(['inbox_id', 'entry_index']).doNothing())
      .execute();
  }

  async count(sourceId?: string): Promise<number> {
    let query = this.db.selectFrom('dead_letters').select((eb) => eb.fn.countAll<string>().as('n'));
    if (sourceId) query = query.where('source_id', '=', sourceId);
    return Number((await query.executeTakeFirstOrThrow()).n);
  }

  async list(
    filter: { sourceId?: string; inboxId?: string } = {},
    limit = 100,
  ): Promise<readonly DeadLetter[]> {
    let query = this.db.selectFrom('dead_letters').selectAll().orderBy('id').limit(limit);
    if (filter.sourceId) query = query.where('source_id', '=', filter.sourceId);
    if (filter.inboxId) query = query.where('inbox_id', '=', filter.inboxId);
    const rows = await query.execute();
    return rows.map((r) => ({
      id: r.id,
      sourceId: r.source_id,
      inboxId: r.inbox_id,
      entryIndex: r.entry_index,
      reasonCode: r.reason_code,
      outcome: r.outcome,
      createdAt: r.created_at,
    }));
  }
}
