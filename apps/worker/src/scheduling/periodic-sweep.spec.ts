import { Logger } from '@nestjs/common';
import { PeriodicSweep } from './periodic-sweep';

describe('PeriodicSweep', () => {
  const logger = new Logger('test');
  beforeEach(() => jest.spyOn(logger, 'warn').mockImplementation(() => undefined));

  it('never overlaps passes: a call during a pass joins it', async () => {
    let release!: (n: number) => void;
    let started = 0;
    const sweep = new PeriodicSweep(logger, 'test pass', () => {
      started += 1;
      return new Promise<number>((resolve) => (release = resolve));
    });
    const first = sweep.runOnce();
    const second = sweep.runOnce();
    expect(started).toBe(1);
    release(3);
    expect(await first).toBe(3);
    expect(await second).toBe(3);
    const third = sweep.runOnce();
    expect(started).toBe(2);
    release(0);
    expect(await third).toBe(0);
  });

  it('logs a failed pass without its cause leaking further and answers 0', async () => {
    const sweep = new PeriodicSweep(logger, 'test pass', () => Promise.reject(new Error('db down')));
    expect(await sweep.runOnce()).toBe(0);
    expect(logger.warn).toHaveBeenCalledWith({
      msg: 'test pass failed; retrying next interval',
      error: 'Error: db down',
    });
  });

  it('runs every interval and once at start when asked, and stop waits for the pass under way', async () => {
    let passes = 0;
    let finished = 0;
    const sweep = new PeriodicSweep(logger, 'test pass', async () => {
      passes += 1;
      await new Promise((resolve) => setTimeout(resolve, 30));
      finished += 1;
      return 1;
    });
    sweep.start(50, true);
    expect(passes).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(passes).toBeGreaterThanOrEqual(2);
    await sweep.stop();
    expect(finished).toBe(passes);
    const after = passes;
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(passes).toBe(after);
  });
});
