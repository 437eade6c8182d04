import type { Logger } from '@nestjs/common';

/**
 * The skeleton the worker's database sweeps share (inbox relay, share relay, consent registry
 * sync): a pass every interval, passes never overlapping, a failed pass logged and retried at the
 * next interval, and shutdown waiting for the pass under way.
 */
export class PeriodicSweep {
  private timer?: NodeJS.Timeout;
  private running?: Promise<number>;

  /** @param what names the pass in the warning a failure logs (no PHI: only `String(error)`). */
  constructor(
    private readonly logger: Logger,
    private readonly what: string,
    private readonly pass: () => Promise<number>,
  ) {}

  /** Runs a pass every `intervalMs`, and one now when `immediately`. */
  start(intervalMs: number, immediately: boolean): void {
    this.timer = setInterval(() => void this.runOnce(), intervalMs);
    if (immediately) void this.runOnce();
  }

  /** One pass (or the one under way); resolves to its count, 0 when it failed. */
  runOnce(): Promise<number> {
    this.running ??= this.pass()
      .catch((error: unknown) => {
        this.logger.warn({ msg: `${this.what} failed; retrying next interval`, error: String(error) });
        return 0;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /** Stops the timer and waits for the pass under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}

/** Rows re-enqueued per claim; a pass claims until fewer come back. */
const RELAY_BATCH = 500;

/**
 * A relay from a PostgreSQL outbox to a BullMQ queue (the inbox, the share outbox): every interval,
 * rows still pending whose last enqueue is older than one interval are claimed (the claim stamps
 * them, so replicas do not repeat each other) and enqueued again under their deterministic job ids
 * — a job still queued absorbs the duplicate, one Redis lost is recreated.
 */
export class OutboxRelay {
  private readonly sweep: PeriodicSweep;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
    private readonly intervalMs: number,
    private readonly claim: (enqueuedBefore: Date, limit: number) => Promise<readonly string[]>,
    private readonly enqueue: (ids: readonly string[]) => Promise<unknown>,
  ) {
    this.sweep = new PeriodicSweep(logger, `${what} relay pass`, () => this.relay());
  }

  start(): void {
    this.sweep.start(this.intervalMs, true);
  }

  stop(): Promise<void> {
    return this.sweep.stop();
  }

  /** One relay pass; resolves to how many rows were re-enqueued. Passes never overlap. */
  runOnce(): Promise<number> {
    return this.sweep.runOnce();
  }

  private async relay(): Promise<number> {
    let total = 0;
    for (;;) {
      const ids = await this.claim(new Date(Date.now() - this.intervalMs), RELAY_BATCH);
      if (ids.length === 0) break;
      await this.enqueue(ids);
      total += ids.length;
      if (ids.length < RELAY_BATCH) break;
    }
    if (total > 0) this.logger.log({ msg: `${this.what} relay re-enqueued`, count: total });
    return total;
  }
}
