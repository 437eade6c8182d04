import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppConfig } from '@fhir-trail/config';

const ROOT = join(__dirname, '..', '..');
/** The webpack bundle `nest build worker` writes. */
export const WORKER_MAIN = join(ROOT, 'dist', 'apps', 'worker', 'main.js');
const NEST_CLI = join(ROOT, 'node_modules', '@nestjs', 'cli', 'bin', 'nest.js');
/** What the worker bundle is built from: a change in any of these makes it stale. */
const BUILD_INPUTS = ['apps/worker/src', 'libs', 'nest-cli.json', 'tsconfig.json', 'tsconfig.build.json'];
/** How much of the child's stdout/stderr is kept for failure messages. */
const OUTPUT_TAIL_CHARS = 8_000;

/**
 * Builds the worker bundle unless `dist/apps/worker/main.js` is newer than every source it is built
 * from (spec files aside), and returns its path. A build takes 10–30 s on a small machine.
 */
export async function ensureWorkerBuild(): Promise<string> {
  const built = await mtimeOf(WORKER_MAIN);
  if (built !== undefined && (await newestSource()) < built) return WORKER_MAIN;
  const output = await run(process.execPath, [NEST_CLI, 'build', 'worker'], 180_000);
  if ((await mtimeOf(WORKER_MAIN)) === undefined) {
    throw new Error(`nest build worker wrote no ${WORKER_MAIN}:\n${output}`);
  }
  return WORKER_MAIN;
}

/**
 * The environment a worker process needs to join a TestStack: the same database, Redis database
 * and key prefix, data directory and embedded chain port (so it attaches to the stack's anvil),
 * the same timings. Only what is set here reaches the child (not the test runner's environment).
 */
export function workerEnvironment(
  config: AppConfig,
  overrides: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    TZ: 'UTC',
    NODE_ENV: config.env,
    DATABASE_URL: config.databaseUrl,
    REDIS_URL: config.redisUrl,
    QUEUE_PREFIX: config.queuePrefix,
    DATA_DIR: config.dataDir,
    LEDGER_EMBEDDED_PORT: String(config.ledger.embeddedPort),
    LEDGER_BATCH_SIZE: String(config.ledger.batchSize),
    LEDGER_BATCH_INTERVAL_MS: String(config.ledger.batchIntervalMs),
    INBOX_RELAY_INTERVAL_MS: String(config.inboxRelayIntervalMs),
    GAP_GRACE_MS: String(config.gapGraceMs),
    RECOVERY_SWEEP_INTERVAL_MS: String(config.recoverySweepIntervalMs),
    BRIDGE_ID: config.bridgeId,
    LOG_LEVEL: 'error',
  };
  if (config.ledger.rpcUrl) env.LEDGER_RPC_URL = config.ledger.rpcUrl;
  if (config.ledger.privateKey) env.LEDGER_PRIVATE_KEY = config.ledger.privateKey;
  if (config.ledger.contractAddress) env.LEDGER_CONTRACT_ADDRESS = config.ledger.contractAddress;
  if (!config.ledger.masterKeyIsDefault) env.LEDGER_MASTER_KEY = config.ledger.masterKey.toString('hex');
  return { ...env, ...overrides };
}

/** How a child process ended. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * `node dist/apps/worker/main.js` as a separate OS process, so a test can SIGKILL it. Its output
 * is kept (the tail) for failure messages; a process-exit hook kills it if the test runner dies
 * first, so no worker outlives the test file.
 */
export class WorkerProcess {
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ProcessExit>;
  private output = '';
  private exit?: ProcessExit;
  private readonly killOnExit = () => {
    if (this.running) this.child.kill('SIGKILL');
  };

  private constructor(private readonly child: ChildProcess) {
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        process.off('exit', this.killOnExit);
        resolve(this.exit);
      });
      child.once('error', (error) => {
        keep(Buffer.from(`spawn failed: ${String(error)}\n`));
        this.exit ??= { code: null, signal: null };
        process.off('exit', this.killOnExit);
        resolve(this.exit);
      });
    });
    process.on('exit', this.killOnExit);
  }

  /** Starts the built worker with exactly `env` (see {@link workerEnvironment}). */
  static start(main: string, env: Readonly<Record<string, string>>): WorkerProcess {
    return new WorkerProcess(
      spawn(process.execPath, [main], { cwd: ROOT, env: { ...env }, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True until the process has exited. */
  get running(): boolean {
    return this.exit === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last few KB of its stdout and stderr. */
  get outputTail(): string {
    return this.output;
  }

  /** Sends `signal` (SIGKILL by default: no shutdown hooks run) and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ProcessExit> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }

  /** A graceful stop (SIGTERM), then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 10_000): Promise<ProcessExit> {
    if (!this.running) return this.exited;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    const first = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    return first === 'late' ? this.kill('SIGKILL') : first;
  }
}

async function mtimeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The newest modification time among the build inputs (spec files aside). */
async function newestSource(): Promise<number> {
  let newest = 0;
  const visit = async (path: string): Promise<void> => {
    const info = await stat(path);
    if (info.isDirectory()) {
      for (const entry of await readdir(path)) {
        if (entry !== 'node_modules') await visit(join(path, entry));
      }
    } else if (!/\.(e2e-)?spec\.ts$/.test(path)) {
      newest = Math.max(newest, info.mtimeMs);
    }
  };
  for (const input of BUILD_INPUTS) await visit(join(ROOT, input));
  return newest;
}

/** Runs a command to completion; rejects with its output when it fails or takes too long. */
function run(command: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`${[command, ...args].join(' ')} failed (${code ?? signal}):\n${output}`));
    });
  });
}
