import { type Selectable, sql } from 'kysely';
import type { StoreDb } from './database';
import type { DeadLetterInputContext, DeadLettersTable, DeadLetterStatus } from './schema';

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
  /** The resource as resolved, before mapping (what a replay starts from). */
  readonly input?: Readonly<Record<string, unknown>>;
  readonly inputContext?: DeadLetterInputContext;
  /** `{id}|{version}` of the mapping profile that refused it. */
  readonly mappingProfile?: string;
}

export interface DeadLetter {
  readonly id: string;
  readonly sourceId: string;
  readonly inboxId: string | null;
  readonly entryIndex: number | null;
  readonly reasonCode: string;
  readonly outcome: Record<string, unknown>;
  readonly createdAt: Date;
  readonly status: DeadLetterStatus;
  readonly mappingProfile: string | null;
  /** True when it holds a resource a replay can run through the active profile again. */
  readonly replayable: boolean;
  readonly replayCount: number;
  readonly replayRequestedAt: Date | null;
  readonly lastReplayAt: Date | null;
  readonly lastReplayOutcome: Record<string, unknown> | null;
  readonly replayedVersionId: string | null;
}

/** A dead letter with what it was made from. */
export interface DeadLetterDetail extends DeadLetter {
  readonly input: Record<string, unknown> | null;
  readonly inputContext: DeadLetterInputContext | null;
  /** Raw bytes: the refused request, or the accepted notification's body (from the inbox). */
  readonly raw: Buffer | null;
}

/** Filters of the admin list and of replay-all; every one optional, combined with AND. */
export interface DeadLetterFilter {
  readonly sourceId?: string;
  readonly inboxId?: string;
  /** The dead letter's reason code (`invalid-resource`, `mapping-profile-unavailable`, …). */
  readonly reasonCode?: string;
  /** An `OperationOutcome.issue.code` among its issues (`required`, `code-invalid`, …). */
  readonly issueCode?: string;
  readonly status?: DeadLetterStatus;
  /** created_at >= since */
  readonly since?: Date;
  /** created_at < until */
  readonly until?: Date;
  readonly replayable?: boolean;
  /** Only ids greater than this (pagination: pass the last id of the previous page). */
  readonly afterId?: string;
}

type Row = Selectable<DeadLettersTable>;

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
        input: entry.input ? JSON.stringify(entry.input) : null,
        input_context: entry.inputContext ? JSON.stringify(entry.inputContext) : null,
        mapping_profile: entry.mappingProfile ?? null,
      })
      .onConflict((oc) => oc.columns(['inbox_id', 'entry_index']).doNothing())
      .execute();
  }

  /** Open dead letters (not yet replayed), of one source or all. */
  async count(sourceId?: string): Promise<number> {
    let query = this.db
      .selectFrom('dead_letters')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('status', '=', 'open');
    if (sourceId) query = query.where('source_id', '=', sourceId);
    return Number((await query.executeTakeFirstOrThrow()).n);
  }

  /** Dead letters matching `filter`, oldest first, without their inputs (see {@link find}). */
  async list(filter: DeadLetterFilter = {}, limit = 100): Promise<readonly DeadLetter[]> {
    const rows = await this.filtered(filter)
      .select(SUMMARY_COLUMNS)
      .select(sql<boolean>`input is not null`.as('has_input'))
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => toDeadLetter(r, r.has_input));
  }

  /** Ids of open, replayable dead letters matching `filter`, oldest first, at most `limit`. */
  async replayableIds(filter: DeadLetterFilter, limit: number): Promise<readonly string[]> {
    const rows = await this.filtered({ ...filter, status: 'open', replayable: true })
      .select('id')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  /** One dead letter with its input and raw bytes (for a notification, the inbox body). */
  async find(id: string): Promise<DeadLetterDetail | undefined> {
    if (!/^[0-9]{1,18}$/.test(id)) return undefined;
    const row = await this.db
      .selectFrom('dead_letters as d')
      .leftJoin('inbox as i', 'i.id', 'd.inbox_id')
      .selectAll('d')
      .select('i.body as inbox_body')
      .where('d.id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      ...toDeadLetter(row, row.input !== null),
      input: row.input,
      inputContext: row.input_context,
      raw: row.raw ?? row.inbox_body ?? null,
    };
  }

  /** Marks dead letters as asked to be replayed (the worker replays them from the queue). */
  async markReplayRequested(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .updateTable('dead_letters')
      .set({ replay_requested_at: new Date() })
      .where('id', 'in', [...ids])
      .execute();
  }

  /** Locks one open dead letter for a replay (undefined when already replayed or gone). */
  async lockForReplay(trx: StoreDb, id: string): Promise<DeadLetterDetail | undefined> {
    const row = await trx
      .selectFrom('dead_letters')
      .selectAll()
      .where('id', '=', id)
      .where('status', '=', 'open')
      .forUpdate()
      .executeTakeFirst();
    return row
      ? {
          ...toDeadLetter(row, row.input !== null),
          input: row.input,
          inputContext: row.input_context,
          raw: null,
        }
      : undefined;
  }

  /**
   * A replay stored the resource as `resourceVersionId` with `mappingProfile` (or found that version
   * already stored: no version id, an informational `outcome`).
   */
  async markReplayed(
    trx: StoreDb,
    id: string,
    result: {
      readonly resourceVersionId?: string;
      readonly mappingProfile: string;
      readonly outcome?: object;
    },
  ): Promise<void> {
    await trx
      .updateTable('dead_letters')
      .set((eb) => ({
        status: 'replayed',
        replay_count: eb('replay_count', '+', 1),
        last_replay_at: new Date(),
        last_replay_outcome: result.outcome ? JSON.stringify(result.outcome) : null,
        replayed_version_id: result.resourceVersionId ?? null,
        mapping_profile: result.mappingProfile,
      }))
      .where('id', '=', id)
      .execute();
  }

  /**
   * After a replay closed a dead letter: an inbox row that ended `dead-letter` becomes `done` once
   * none of its dead letters is open any more (what a status page counts stays true).
   */
  async settleInbox(trx: StoreDb, inboxId: string): Promise<void> {
    await trx
      .updateTable('inbox')
      .set({ status: 'done', last_error: 'dead letters replayed' })
      .where('id', '=', inboxId)
      .where('status', '=', 'dead-letter')
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('dead_letters')
              .select('id')
              .where('inbox_id', '=', inboxId)
              .where('status', '=', 'open'),
          ),
        ),
      )
      .execute();
  }

  /** A replay failed again: the dead letter stays open with this attempt's outcome beside the first. */
  async recordReplayFailure(
    trx: StoreDb,
    id: string,
    result: { readonly outcome: object; readonly mappingProfile: string },
  ): Promise<void> {
    await trx
      .updateTable('dead_letters')
      .set((eb) => ({
        replay_count: eb('replay_count', '+', 1),
        last_replay_at: new Date(),
        last_replay_outcome: JSON.stringify(result.outcome),
        mapping_profile: result.mappingProfile,
      }))
      .where('id', '=', id)
      .execute();
  }

  /**
   * Forgets the inputs of these dead letters (an erased patient's data): they stay listed, with their
   * OperationOutcome, but can no longer be inspected or replayed.
   */
  async dropInput(trx: StoreDb, ...ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await trx.updateTable('dead_letters').set({ input: null }).where('id', 'in', ids).execute();
  }

  /** Open or replayed dead letters of a source that still hold an input, with that input. */
  async withInputs(
    trx: StoreDb,
    sourceId: string,
  ): Promise<readonly { readonly id: string; readonly inboxId: string | null; readonly input: unknown }[]> {
    const rows = await trx
      .selectFrom('dead_letters')
      .select(['id', 'inbox_id', 'input'])
      .where('source_id', '=', sourceId)
      .where('input', 'is not', null)
      .execute();
    return rows.map((row) => ({
      id: String(row.id),
      inboxId: row.inbox_id === null ? null : String(row.inbox_id),
      input: row.input,
    }));
  }

  private filtered(filter: DeadLetterFilter) {
    let query = this.db.selectFrom('dead_letters');
    if (filter.sourceId) query = query.where('source_id', '=', filter.sourceId);
    if (filter.inboxId) query = query.where('inbox_id', '=', filter.inboxId);
    if (filter.reasonCode) query = query.where('reason_code', '=', filter.reasonCode);
    if (filter.issueCode) {
      query = query.where(
        sql<boolean>`outcome -> 'issue' @> ${JSON.stringify([{ code: filter.issueCode }])}::jsonb`,
      );
    }
    if (filter.status) query = query.where('status', '=', filter.status);
    if (filter.since) query = query.where('created_at', '>=', filter.since);
    if (filter.until) query = query.where('created_at', '<', filter.until);
    if (filter.replayable !== undefined) {
      query = query.where(filter.replayable ? sql<boolean>`input is not null` : sql<boolean>`input is null`);
    }
    if (filter.afterId) query = query.where('id', '>', filter.afterId);
    return query;
  }
}

const SUMMARY_COLUMNS = [
  'id',
  'source_id',
  'inbox_id',
  'entry_index',
  'reason_code',
  'outcome',
  'created_at',
  'status',
  'mapping_profile',
  'replay_count',
  'replay_requested_at',
  'last_replay_at',
  'last_replay_outcome',
  'replayed_version_id',
] as const;

type SummaryRow = Pick<Row, (typeof SUMMARY_COLUMNS)[number]>;

function toDeadLetter(r: SummaryRow, replayable: boolean): DeadLetter {
  return {
    id: r.id,
    sourceId: r.source_id,
    inboxId: r.inbox_id,
    entryIndex: r.entry_index,
    reasonCode: r.reason_code,
    outcome: r.outcome,
    createdAt: r.created_at,
    status: r.status,
    mappingProfile: r.mapping_profile,
    replayable,
    replayCount: r.replay_count,
    replayRequestedAt: r.replay_requested_at,
    lastReplayAt: r.last_replay_at,
    lastReplayOutcome: r.last_replay_outcome,
    replayedVersionId: r.replayed_version_id,
  };
}
