/** Helpers of the ledger benchmark (bench/ledger.bench.ts): a throwaway database, timing, a table. */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';

const SERVER_URL =
  process.env.BENCH_DATABASE_SERVER_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';

/** A fresh database for one run (dropped first if a crashed run left it); `drop` removes it. */
export async function throwawayDatabase(name: string): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = async (statement: string): Promise<void> => {
    const client = new Client({ connectionString: SERVER_URL });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`drop database if exists ${name} with (force)`);
  await admin(`create database ${name}`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) };
}

/** Wall-clock milliseconds of `work`, with its result. */
export async function timed<T>(work: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

/** Distribution of a list of durations in ms (rounded to µs). */
export interface Timing {
  readonly samples: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export function timing(durations: readonly number[]): Timing {
  const sorted = [...durations].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const round = (ms: number): number => Math.round(ms * 1000) / 1000;
  return {
    samples: sorted.length,
    medianMs: round(at(0.5)),
    p99Ms: round(at(0.99)),
    maxMs: round(sorted.at(-1) ?? 0),
  };
}

/** A deterministic leaf hash for synthetic leaf `i` (what `leafHash` of an event record would be). */
export function syntheticLeaf(i: number): Buffer {
  const entry = Buffer.alloc(9);
  entry.writeUInt8(0, 0); // RFC 9162 leaf prefix
  entry.writeBigUInt64BE(BigInt(i), 1);
  return createHash('sha256').update(entry).digest();
}

/** mulberry32: seeded, so every run proves the same leaves. */
export function seededRandom(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A plain-text table: the first row is the header; numbers align right. */
export function table(rows: readonly (readonly (string | number)[])[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, c) =>
          typeof cell === 'number' ? String(cell).padStart(widths[c]) : String(cell).padEnd(widths[c]),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
