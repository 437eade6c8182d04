import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import { APP_CONFIG, redisConnectionOptions } from '@fhir-trail/runtime';
import { Redis } from 'ioredis';
import { ThrottledError } from '../fhir/throttled.error';

/**
 * A token bucket per source, in Redis so every bridge replica draws from the same one. Refill is
 * continuous at `rate` tokens per second up to `capacity`; the clock is Redis's own (TIME), so the
 * replicas' clocks do not matter. Returns {1, 0} when a token was taken, {0, ms until one is due}.
 */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {allowed, wait}
`;

/** A Redis round trip slower than this lets the notification through rather than eat the sender's budget. */
const COMMAND_TIMEOUT_MS = 250;
/** At most one warning per this long while Redis is unreachable. */
const WARN_EVERY_MS = 60_000;

/** The part of a source the limiter needs. */
export interface RateLimitedSource {
  readonly id: string;
  readonly rateLimitPerSecond?: number;
}

/**
 * Per-source rate limit (sources with `rateLimitPerSecond` only). The bucket holds one second's
 * worth of notifications (at least one), so a sender may burst that much and then sustains the rate.
 * It fails open: if Redis cannot answer within COMMAND_TIMEOUT_MS the notification is accepted —
 * the limit protects the pipeline from floods; it must not turn a Redis outage into lost events.
 */
@Injectable()
export class SourceRateLimiter implements OnApplicationShutdown {
  private readonly logger = new Logger(SourceRateLimiter.name);
  private readonly redis: Redis;
  private readonly keyPrefix: string;
  private connecting?: Promise<void>;
  private lastWarning = 0;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.redis = new Redis({
      ...redisConnectionOptions(config.redisUrl),
      lazyConnect: true,
      // Fail fast instead of queueing while disconnected (BullMQ's connection waits forever).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
    });
    this.redis.on('error', () => undefined);
    this.keyPrefix = `${config.queuePrefix}:rate-limit:`;
  }

  /** Takes one token for the source, or throws a 429 with the seconds until the next one. */
  async take(source: RateLimitedSource): Promise<void> {
    const rate = source.rateLimitPerSecond;
    if (rate === undefined) return;
    let result: unknown;
    try {
      await this.connect();
      result = await this.redis.eval(TAKE_TOKEN, 1, `${this.keyPrefix}${source.id}`, rate, Math.max(1, rate));
    } catch (error) {
      this.warn(source.id, error);
      return;
    }
    const [allowed, waitMs] = Array.isArray(result) ? result.map(Number) : [1, 0];
    if (allowed === 1) return;
    throw new ThrottledError(
      Math.max(1, Math.ceil(waitMs / 1000)),
      `this source may send at most ${rate} notification(s) per second; retry after Retry-After seconds`,
    );
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.redis.status === 'wait') return;
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private connect(): Promise<void> {
    if (this.redis.status !== 'wait') return Promise.resolve();
    this.connecting ??= this.redis.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private warn(sourceId: string, error: unknown): void {
    if (Date.now() - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = Date.now();
    this.logger.warn({
      msg: 'rate limit not applied: Redis unavailable (failing open)',
      sourceId,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}
