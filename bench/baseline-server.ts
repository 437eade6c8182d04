/**
 * The intake baseline: a minimal Node HTTP server doing the same durable work as the bridge's
 * intake — one INSERT of the raw body into the same PostgreSQL, committed before the 200 — and
 * nothing else (no auth, no parsing, no queue, no framework).
 */
import { createServer } from 'node:http';
import { Pool } from 'pg';

const databaseUrl = process.argv[2];
const port = Number(process.argv[3]);
const pool = new Pool({ connectionString: databaseUrl, max: 20 });

async function main(): Promise<void> {
  await pool.query(
    'create table if not exists baseline_inbox (id bigserial primary key, received_at timestamptz not null default now(), body bytea not null)',
  );
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      pool
        .query('insert into baseline_inbox (body) values ($1) returning id', [Buffer.concat(chunks)])
        .then(() => {
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end('{}');
        })
        .catch(() => {
          response.writeHead(503);
          response.end();
        });
    });
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => server.close(() => void pool.end().then(() => process.exit(0))));
}

void main();
