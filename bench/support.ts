import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { Client } from 'pg';

export const SERVER_URL =
  process.env.BENCH_DATABASE_SERVER_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** A fresh database for one benchmark run; returns its URL. */
export async function freshDatabase(name: string): Promise<string> {
  await adminQuery(`drop database if exists ${name} with (force)`);
  await adminQuery(`create database ${name}`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropDatabase(name: string): Promise<void> {
  await adminQuery(`drop database if exists ${name} with (force)`);
}

async function adminQuery(statement: string): Promise<void> {
  const client = new Client({ connectionString: SERVER_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** Runs one query against `url` and returns its rows. */
export async function query<T>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Deletes every Redis key under a BullMQ prefix (the jobs a benchmark left behind). */
export async function deleteRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Starts a child process and resolves once `ready()` answers true. */
export async function startProcess(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  ready: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<ChildProcess> {
  const child = spawn(command, args, {
    env,
    stdio: ['ignore', process.env.BENCH_CHILD_OUTPUT ? 'inherit' : 'ignore', 'inherit'],
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
    if (await ready().catch(() => false)) return child;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.kill('SIGKILL');
  throw new Error(`${args.join(' ')} did not become ready in ${timeoutMs} ms`);
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export interface LoadFigures {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly requests: number;
}

/**
 * Runs autocannon against one endpoint and returns its figures. `bodies` sends each body once, in
 * turn (`amount` = how many; the run ends when all are answered); otherwise `body` for `durationSeconds`.
 */
export async function load(options: {
  url: string;
  body?: Buffer;
  bodies?: readonly Buffer[];
  headers: Record<string, string>;
  connections: number;
  durationSeconds?: number;
  overallRate?: number;
}): Promise<LoadFigures> {
  const bodies = options.bodies;
  let next = 0;
  const result = await autocannon({
    url: options.url,
    method: 'POST',
    headers: options.headers,
    connections: options.connections,
    overallRate: options.overallRate,
    ...(bodies
      ? {
          amount: bodies.length,
          requests: [
            {
              method: 'POST',
              setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }),
            },
          ],
        }
      : { body: options.body, duration: options.durationSeconds }),
  });
  return {
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    requests: result.requests.total,
  };
}

export interface PacedFigures extends LoadFigures {
  readonly offeredRate: number;
  readonly p90Ms: number;
  readonly maxMs: number;
  /** How late the generator sent requests (p99), ms: the machine's share, not the server's. */
  readonly lagP99Ms: number;
}

/**
 * Open-loop load at a steady rate: request i is due at start + i/rate and is sent then, on one of
 * `connections` keep-alive connections (queued until one is free), whether or not earlier ones were
 * answered. Latency counts from when the request was handed to the HTTP client, so time spent
 * queued behind busy connections (a slow server) counts, while the load generator's own lateness
 * (it shares the CPUs; its timers can fire late) does not — that is reported apart, as `lagP99Ms`.
 * (autocannon's `overallRate` instead lets each connection fire its whole per-second quota back to
 * back at the top of each second, and corrects for coordinated omission with an expected interval
 * of ceil(1/rate) = 1 ms, which records one 50 ms answer as 50 answers of 50, 49, ... 1 ms.)
 */
export async function paced(options: {
  url: string;
  body: Buffer;
  headers: Record<string, string>;
  connections: number;
  durationSeconds: number;
  rate: number;
}): Promise<PacedFigures> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const total = Math.max(1, Math.round(options.rate * options.durationSeconds));
  const interval = 1000 / options.rate;
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  const lags: number[] = [];
  const send = (sentAt: number) =>
    new Promise<void>((resolve) => {
      const req = httpRequest(
        options.url,
        {
          method: 'POST',
          agent,
          headers: { ...options.headers, 'content-length': String(options.body.length) },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            latencies.push(performance.now() - sentAt);
            if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) non2xx += 1;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors += 1;
        resolve();
      });
      req.end(options.body);
    });
  const pending: Promise<void>[] = [];
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    while (sent < total && start + sent * interval <= now) {
      lags.push(now - (start + sent * interval));
      pending.push(send(now));
      sent += 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  lags.sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return {
    offeredRate: options.rate,
    requestsPerSecond: Math.round(latencies.length / elapsed),
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: Math.round(latencies.at(-1) ?? 0),
    lagP99Ms: Math.round(lags[Math.floor(0.99 * lags.length)] ?? 0),
    non2xx,
    errors,
    requests: latencies.length,
  };
}

// ------------------------------------------------------------------------------------ CPU use

/** user + system CPU of one process (all its threads) in ms; 0 once it has gone. */
async function processCpuMs(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** USER_HZ: 100 on every Linux this runs on (sysconf is not reachable from Node). */
const CLOCK_TICKS_PER_SECOND = 100;

/** The PostgreSQL backends serving `database` (the app's pool), by pid. */
async function backendPids(databaseUrl: string): Promise<number[]> {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  const rows = await query<{ pid: number }>(
    SERVER_URL,
    'select pid from pg_stat_activity where datname = $1',
    [name],
  );
  return rows.map((r) => r.pid);
}

/** CPU spent per request by the server process and by its PostgreSQL backends, in ms. */
export interface CpuFigures {
  readonly serverMsPerRequest: number;
  readonly postgresMsPerRequest: number;
}

/**
 * Measures the CPU a server process and the PostgreSQL backends of its database use during
 * `work` (Linux /proc; all threads, user + system). Backends that come and go during the run are
 * counted for the part of it they lived through. Returns undefined where /proc is not there.
 */
export async function withCpu<T extends { requests: number }>(
  serverPid: number | undefined,
  databaseUrl: string,
  work: () => Promise<T>,
): Promise<{ figures: T; cpu?: CpuFigures }> {
  if (serverPid === undefined || process.platform !== 'linux') return { figures: await work() };
  const before = new Map<number, number>();
  for (const pid of await backendPids(databaseUrl)) before.set(pid, await processCpuMs(pid));
  const serverBefore = await processCpuMs(serverPid);
  const figures = await work();
  const serverAfter = await processCpuMs(serverPid);
  let postgres = 0;
  for (const pid of new Set([...before.keys(), ...(await backendPids(databaseUrl))])) {
    const after = await processCpuMs(pid);
    if (after > 0) postgres += after - (before.get(pid) ?? 0);
  }
  const per = (ms: number) => Number((ms / Math.max(1, figures.requests)).toFixed(3));
  return {
    figures,
    cpu: { serverMsPerRequest: per(serverAfter - serverBefore), postgresMsPerRequest: per(postgres) },
  };
}
