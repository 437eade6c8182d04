import { randomUUID } from 'node:crypto';
import { redisConnectionOptions } from '@fhir-trail/runtime';
import { Redis } from 'ioredis';

/**
 * The lock lives this long unless renewed: long enough to ride out a slow PostgreSQL or RPC call,
 * short enough that a crashed worker's key is free again within half a minute.
 */
const LEASE_MS = 30_000;

/** Extends the lease only while we still own it. */
const RENEW_SCRIPT = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
/** Deletes the lock only while we still own it. */
const RELEASE_SCRIPT = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/** A held lease; release it when done. `lost` turns true if a renewal found someone else's token. */
export interface SignerLease {
  readonly lost: boolean;
  release(): Promise<void>;
}

/**
 * One writer per signing key: a Redis lease (SET NX PX, renewed while held, released by token)
 * named after the chain and the anchorer's address within this deployment's QUEUE_PREFIX. Two
 * workers with the same key never sign concurrently, so nonces never collide. (A key shared by two
 * deployments with different prefixes is a configuration error: give each deployment its own key.)
 */
export class SignerLock {
  private readonly redis: Redis;

  constructor(
    redisUrl: string,
    private readonly keyPrefix: string,
    /** Renewed every third of it (three chances per lease). */
    private readonly leaseMs: number = LEASE_MS,
  ) {
    this.redis = new Redis({
      ...redisConnectionOptions(redisUrl),
      lazyConnect: true,
      maxRetriesPerRequest: 1,
    });
    this.redis.on('error', () => undefined);
  }

  /** The lease on (chainId, signer), or undefined when another process holds it. */
  async acquire(chainId: string, signer: string): Promise<SignerLease | undefined> {
    const key = `${this.keyPrefix}:anchor-signer:${chainId}:${signer.toLowerCase()}`;
    const token = randomUUID();
    const taken = await this.redis.set(key, token, 'PX', this.leaseMs, 'NX');
    if (taken !== 'OK') return undefined;
    let lost = false;
    const timer = setInterval(() => {
      this.redis.eval(RENEW_SCRIPT, 1, key, token, this.leaseMs).then(
        (renewed) => {
          if (renewed === 0) lost = true;
        },
        () => undefined, // Redis unreachable: the next renewal tries again; the lease outlives two misses
      );
    }, this.leaseMs / 3);
    timer.unref();
    return {
      get lost() {
        return lost;
      },
      release: async () => {
        clearInterval(timer);
        await this.redis.eval(RELEASE_SCRIPT, 1, key, token);
      },
    };
  }

  async close(): Promise<void> {
    this.redis.disconnect();
    return Promise.resolve();
  }
}
