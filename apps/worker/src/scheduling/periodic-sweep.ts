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
