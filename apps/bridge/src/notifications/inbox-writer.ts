import { type InboxRepository, isDatabaseUnavailable, type NewInboxEntry } from '@fhir-trail/store';

/**
 * At most this many inbox INSERTs of the intake run at once (pool connections it holds): one
 * commits while the next gathers what arrives meanwhile. Measured on 2 cores at 500 notifications/s:
 * PostgreSQL CPU per notification 0.70 ms with one INSERT each, 0.38 ms with 4 in flight, 0.16-0.25 ms
 * with 2, ~0.2 ms with 1 (which is the most exposed to one slow statement).
 */
const MAX_IN_FLIGHT = 2;
/** ...each with at most this many rows... */
const MAX_ROWS = 64;
/** ...and about this many body bytes (a batch always takes at least one notification). */
const MAX_BYTES = 1024 * 1024;

interface Waiting {
  readonly entry: NewInboxEntry;
  readonly resolve: (id: string) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit for the intake. Each notification is written as soon as a connection is free; when
 * MAX_IN_FLIGHT INSERTs are already running, the notifications arriving meanwhile wait and are then
 * committed together by one multi-row INSERT (one round trip, one commit, one WAL flush for all of
 * them) — so a lone notification is never delayed, and under load PostgreSQL and the bridge do a
 * fraction of the per-commit work. Every caller learns its own id only once the statement holding
 * its row has committed, so "200 only after the inbox row is committed" holds for each of them.
 *
 * A batch the database refuses for any reason other than being unreachable is retried one row at a
 * time, so one row it will not take (none is expected) cannot fail the notifications beside it.
 */
export class InboxWriter {
  private waiting: Waiting[] = [];
  private inFlight = 0;

  constructor(private readonly inbox: InboxRepository) {}

  /** Commits the notification; resolves with its inbox id once committed. */
  write(entry: NewInboxEntry): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.waiting.push({ entry, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.waiting.length > 0) {
      const batch = this.takeBatch();
      this.inFlight += 1;
      void this.commit(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  private takeBatch(): Waiting[] {
    let rows = 0;
    let bytes = 0;
    while (rows < this.waiting.length && rows < MAX_ROWS) {
      bytes += this.waiting[rows].entry.body.length;
      if (rows > 0 && bytes > MAX_BYTES) break;
      rows += 1;
    }
    return this.waiting.splice(0, rows);
  }

  private async commit(batch: readonly Waiting[]): Promise<void> {
    try {
      const ids = await this.inbox.insertMany(batch.map((w) => w.entry));
      batch.forEach((w, i) => w.resolve(ids[i]));
    } catch (error) {
      if (batch.length === 1 || isDatabaseUnavailable(error)) {
        for (const w of batch) w.reject(error);
        return;
      }
      await Promise.all(
        batch.map(async (w) => {
          try {
            w.resolve(await this.inbox.insert(w.entry));
          } catch (rowError) {
            w.reject(rowError);
          }
        }),
      );
    }
  }
}
