import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { SignerLock } from './signer-lock';

/** The one-writer-per-key lease on a real Redis (unique prefix per run). */
describe('SignerLock on Redis', () => {
  const prefix = `signer-lock-${randomUUID().slice(0, 8)}`;
  const redisUrl = 'redis://127.0.0.1:6379';
  const key = `${prefix}:anchor-signer:31337:0xabc`;
  const redis = new Redis(redisUrl);
  const locks = [new SignerLock(redisUrl, prefix, 300), new SignerLock(redisUrl, prefix, 300)];

  afterAll(async () => {
    await redis.del(key);
    redis.disconnect();
    await Promise.all(locks.map((l) => l.close()));
  });

  it('gives the key to one holder at a time, keeps it while renewed, and frees it on release', async () => {
    const [a, b] = locks;
    const lease = await a.acquire('31337', '0xABC');
    expect(lease).toBeDefined();
    expect(await b.acquire('31337', '0xabc')).toBeUndefined();
    await sleep(700); // over two lease lengths: only renewal keeps it
    expect(await b.acquire('31337', '0xabc')).toBeUndefined();
    expect(lease?.lost).toBe(false);
    await lease?.release();
    const next = await b.acquire('31337', '0xabc');
    expect(next).toBeDefined();
    await next?.release();
  });

  it('notices a lease taken over by someone else, and does not delete their key on release', async () => {
    const lease = await locks[0].acquire('31337', '0xabc');
    await redis.set(key, 'someone-else', 'PX', 5_000);
    await sleep(250);
    expect(lease?.lost).toBe(true);
    await lease?.release();
    expect(await redis.get(key)).toBe('someone-else');
    await redis.del(key);
  });

  it('expires the key of a holder that died (no renewal), so another worker takes over', async () => {
    await redis.set(key, 'crashed-worker', 'PX', 200);
    expect(await locks[1].acquire('31337', '0xabc')).toBeUndefined();
    await sleep(300);
    const lease = await locks[1].acquire('31337', '0xabc');
    expect(lease).toBeDefined();
    await lease?.release();
  });
});
