import type { Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';

/** How often a periodic job schedule is re-asserted in Redis. */
const KEEPER_INTERVAL_MS = 10_000;

/**
 * Upserts a BullMQ job scheduler now, then again every 10 s: Redis keeps nothing on disk here, so
 * after a Redis restart or flush the schedule would otherwise be gone (upsert is idempotent).
 * Returns the function that stops the keeper.
 */
export async function keepJobScheduler<T>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any job payload; the template is typed by T
  queue: Queue<any>,
  schedulerId: string,
  everyMs: number,
  template: { name: string; data: T },
  logger: Logger,
): Promise<() => void> {
  const upsert = () =>
    queue.upsertJobScheduler(
      schedulerId,
      { every: everyMs },
      { name: template.name, data: template.data, opts: { removeOnComplete: true, removeOnFail: true } },
    );
  await upsert();
  const timer = setInterval(() => {
    upsert().catch((error: unknown) =>
      logger.warn({ msg: 'could not re-assert a job schedule', schedulerId, error: String(error) }),
    );
  }, KEEPER_INTERVAL_MS);
  return () => clearInterval(timer);
}
