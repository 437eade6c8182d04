import type { InboxRepository, NewInboxEntry } from '@fhir-trail/store';
import { InboxWriter } from './inbox-writer';

const entry = (n: number, bytes = 10): NewInboxEntry => ({
  sourceId: n < 0 ? 'bad' : 'ehr',
  method: 'POST',
  path: '/hooks/ehr',
  headers: {},
  body: Buffer.alloc(bytes, n),
  shape: 'bare-resource',
  notificationType: 'rest-hook',
  eventCount: 1,
});

/** An inbox that commits when told to, numbering rows like bigserial, and refuses source 'bad'. */
class FakeInbox {
  readonly statements: number[] = [];
  private next = 1;
  private readonly gates: (() => void)[] = [];
  failWith?: Error;

  insertMany(entries: readonly NewInboxEntry[]): Promise<string[]> {
    this.statements.push(entries.length);
    return new Promise((resolve, reject) =>
      this.gates.push(() => {
        if (this.failWith) return reject(this.failWith);
        if (entries.some((e) => e.sourceId === 'bad')) return reject(new Error('violates foreign key'));
        resolve(entries.map(() => String(this.next++)));
      }),
    );
  }

  async insert(one: NewInboxEntry): Promise<string> {
    return (await this.insertMany([one]))[0];
  }

  /** Lets every statement sent so far commit. */
  async commitAll(): Promise<void> {
    while (this.gates.length > 0) {
      this.gates.shift()!();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

describe('InboxWriter (group commit of the intake)', () => {
  it('writes a lone notification at once, and commits those that arrive meanwhile together', async () => {
    const inbox = new FakeInbox();
    const writer = new InboxWriter(inbox as unknown as InboxRepository);
    const first = writer.write(entry(1));
    const second = writer.write(entry(2));
    expect(inbox.statements).toEqual([1, 1]);
    // Both connections are busy: these five wait and go as one statement.
    const rest = [3, 4, 5, 6, 7].map((n) => writer.write(entry(n)));
    expect(inbox.statements).toEqual([1, 1]);
    await inbox.commitAll();
    expect(inbox.statements).toEqual([1, 1, 5]);
    expect(await Promise.all([first, second, ...rest])).toEqual(['1', '2', '3', '4', '5', '6', '7']);
  });

  it('answers nobody before the statement holding its row has committed', async () => {
    const inbox = new FakeInbox();
    const writer = new InboxWriter(inbox as unknown as InboxRepository);
    let settled = false;
    void writer.write(entry(1)).then(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    await inbox.commitAll();
    expect(settled).toBe(true);
  });

  it('keeps a batch under the row and byte limits (a huge notification goes alone)', async () => {
    const inbox = new FakeInbox();
    const writer = new InboxWriter(inbox as unknown as InboxRepository);
    const all = [writer.write(entry(1)), writer.write(entry(2))];
    all.push(...Array.from({ length: 70 }, (_, i) => writer.write(entry(10 + i))));
    all.push(writer.write(entry(99, 2 * 1024 * 1024)), writer.write(entry(100)));
    await inbox.commitAll();
    await Promise.all(all);
    expect(inbox.statements).toEqual([1, 1, 64, 6, 1, 1]);
  });

  it('retries a refused batch row by row, so one bad row fails only its own notification', async () => {
    const inbox = new FakeInbox();
    const writer = new InboxWriter(inbox as unknown as InboxRepository);
    const writes = Promise.allSettled([1, 2, 3, -1, 4].map((n) => writer.write(entry(n))));
    await inbox.commitAll();
    const [first, second, good, bad, alsoGood] = await writes;
    expect([first.status, second.status, good.status, alsoGood.status]).toEqual(Array(4).fill('fulfilled'));
    expect(bad).toMatchObject({ status: 'rejected', reason: new Error('violates foreign key') });
    // The batch of three was refused, then each of its rows went alone.
    expect(inbox.statements).toEqual([1, 1, 3, 1, 1, 1]);
  });

  it('fails every notification of the batch when the database is unreachable (the sender gets 503)', async () => {
    const inbox = new FakeInbox();
    const writer = new InboxWriter(inbox as unknown as InboxRepository);
    const down = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    inbox.failWith = down;
    const writes = Promise.allSettled([1, 2, 3, 4].map((n) => writer.write(entry(n))));
    await inbox.commitAll();
    expect(await writes).toEqual(Array(4).fill({ status: 'rejected', reason: down }));
    // No row-by-row retry against a database that is not there.
    expect(inbox.statements).toEqual([1, 1, 2]);
  });
});
