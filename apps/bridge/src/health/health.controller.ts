import { Controller, Get, Inject, Res } from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { type IngestJob, QUEUES } from '@fhir-trail/jobs';
import { Store } from '@fhir-trail/store';
import type { Queue } from 'bullmq';
import type { FastifyReply } from 'fastify';
import { LEDGER, type LedgerConnection, STORE } from '@fhir-trail/runtime';

interface Check {
  readonly status: 'up' | 'down';
  readonly latencyMs: number;
  readonly detail?: Readonly<Record<string, string | number>>;
  readonly error?: string;
}

/** Each dependency gets this long to answer before it is reported down. */
const CHECK_TIMEOUT_MS = 2_000;

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(LEDGER) private readonly ledger: LedgerConnection,
    @InjectQueue(QUEUES.ingest) private readonly ingestQueue: Queue<IngestJob>,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Readiness of PostgreSQL, Redis and the chain (200 all up, 503 otherwise)' })
  @ApiResponse({ status: 200, description: '{ status: "up", checks: { database, redis, chain } }' })
  @ApiResponse({ status: 503, description: 'one or more checks down' })
  async health(
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ status: string; checks: Record<string, Check> }> {
    const [database, redis, chain] = await Promise.all([
      check(async () => {
        await this.store.ping();
        return {};
      }),
      check(async () => {
        // A round trip to Redis through the queue's own connection.
        return { waiting: await this.ingestQueue.getWaitingCount() };
      }),
      check(async () => {
        const [blockNumber, code] = await Promise.all([
          this.ledger.provider.getBlockNumber(),
          this.ledger.provider.getCode(this.ledger.contractAddress),
        ]);
        if (code === '0x') throw new Error('no contract code at the configured address');
        return { chainId: this.ledger.chainId, contract: this.ledger.contractAddress, blockNumber };
      }),
    ]);
    const up = [database, redis, chain].every((c) => c.status === 'up');
    void reply.status(up ? 200 : 503).header('cache-control', 'no-store');
    return { status: up ? 'up' : 'down', checks: { database, redis, chain } };
  }
}

async function check(probe: () => Promise<Readonly<Record<string, string | number>>>): Promise<Check> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const detail = await Promise.race([
      probe(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    return { status: 'up', latencyMs: Math.round(performance.now() - started), detail };
  } catch (error) {
    return {
      status: 'down',
      latencyMs: Math.round(performance.now() - started),
      error: error instanceof Error ? error.message : String(error),
    };
  } finally {
    clearTimeout(timer);
  }
}
