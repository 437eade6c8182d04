import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EMBEDDED_CHAIN_ID, jsonRpcCall, readChainId } from './chain-provider';
import { LedgerError, systemErrorCode } from './ledger-error';

/** Where and how to run the embedded dev chain. */
export interface EmbeddedChainOptions {
  /** The app's data directory; the chain keeps its files in `<dataDir>/chain`. */
  readonly dataDir: string;
  readonly port: number;
  readonly host?: string;
  /** How long to wait for anvil to answer (or for another process's start to finish). */
  readonly startTimeoutMs?: number;
}

/** What `<dataDir>/chain/anvil.json` remembers about the running anvil. */
interface AnvilRecord {
  readonly pid: number;
  readonly host: string;
  readonly port: number;
  readonly rpcUrl: string;
  readonly startedAt: string;
}

/**
 * Anvil dumps its state to disk this often (seconds, the smallest value it accepts), so a hard
 * kill loses at most about a second of blocks; a SIGTERM stop dumps everything.
 */
const STATE_INTERVAL_SECONDS = 1;
const DEFAULT_START_TIMEOUT_MS = 15_000;
/** How long a graceful stop may take (anvil writes its state file on SIGTERM) before SIGKILL. */
const STOP_GRACE_MS = 10_000;
const POLL_MS = 50;
/** A lock file with no pid in it yet is stale after this long (its writer died mid-create). */
const EMPTY_LOCK_STALE_MS = 2_000;

/**
 * The embedded EVM dev chain: anvil from npm, chain id 31337, automine, with its state kept in
 * `<dataDir>/chain/anvil-state.json` so contracts, blocks and receipts survive restarts.
 *
 * Processes sharing a data dir share one anvil: `start` takes a lock file, and when a live anvil
 * recorded in `<dataDir>/chain/anvil.json` already answers, it attaches to it (`owned: false`)
 * instead of starting a second one. anvil's output goes to `<dataDir>/chain/anvil.log`.
 */
export class EmbeddedChain {
  private stopping: Promise<void> | undefined;

  private constructor(
    /** HTTP JSON-RPC URL of the chain. */
    readonly rpcUrl: string,
    /** Process id of anvil. */
    readonly pid: number,
    /** False when this handle attached to an anvil another process started; `stop()` then leaves it running. */
    readonly owned: boolean,
    private readonly child: ChildProcess | undefined,
    private readonly exited: Promise<void>,
    private readonly recordFile: string,
  ) {}

  /**
   * Starts anvil for `dataDir` (or attaches to the one already serving it) and resolves once its
   * JSON-RPC endpoint answers. Throws `ANVIL_NOT_INSTALLED` or `EMBEDDED_CHAIN_FAILED`.
   */
  static async start(options: EmbeddedChainOptions): Promise<EmbeddedChain> {
    const host = options.host ?? '127.0.0.1';
    const timeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const chainDir = resolve(options.dataDir, 'chain');
    const files = {
      lock: join(chainDir, 'anvil.lock'),
      record: join(chainDir, 'anvil.json'),
      state: join(chainDir, 'anvil-state.json'),
      log: join(chainDir, 'anvil.log'),
    };
    await mkdir(chainDir, { recursive: true });
    const release = await acquireLock(files.lock, timeoutMs);
    try {
      const running = await findRunningAnvil(files.record, files.state);
      if (running !== undefined) {
        return new EmbeddedChain(
          running.rpcUrl,
          running.pid,
          false,
          undefined,
          Promise.resolve(),
          files.record,
        );
      }
      return await EmbeddedChain.launch(host, options.port, timeoutMs, files);
    } finally {
      await release();
    }
  }

  private static async launch(
    host: string,
    port: number,
    timeoutMs: number,
    files: { readonly record: string; readonly state: string; readonly log: string },
  ): Promise<EmbeddedChain> {
    const binary = anvilBinaryPath();
    const args = [
      ...['--host', host, '--port', String(port), '--chain-id', String(EMBEDDED_CHAIN_ID)],
      ...['--state', files.state, '--state-interval', String(STATE_INTERVAL_SECONDS), '--color', 'never'],
    ];
    const logFd = openSync(files.log, 'w');
    let child: ChildProcess;
    try {
      child = spawn(binary, args, { stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    let spawnError: Error | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        resolve();
      });
      child.once('error', (error) => {
        spawnError = error;
        resolve();
      });
    });
    const rpcUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (spawnError !== undefined || child.exitCode !== null || child.signalCode !== null) {
        throw new LedgerError(
          'EMBEDDED_CHAIN_FAILED',
          `anvil exited during start-up: ${await logTail(files.log)}`,
          {
            cause: spawnError,
            details: { port },
          },
        );
      }
      // Our anvil is ready once it logged that it listens *and* the port answers; an answer alone
      // could come from another process holding the port (then our anvil exits with an error).
      if ((await hasLogged(files.log, `Listening on ${host}:${port}`)) && (await answers(rpcUrl))) {
        break;
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        await exited;
        throw new LedgerError(
          'EMBEDDED_CHAIN_FAILED',
          `anvil did not answer on port ${port} within ${timeoutMs} ms`,
          {
            details: { port },
          },
        );
      }
      await sleep(POLL_MS);
    }
    const pid = child.pid as number;
    const record: AnvilRecord = { pid, host, port, rpcUrl, startedAt: new Date().toISOString() };
    await writeFileAtomically(files.record, `${JSON.stringify(record, null, 2)}\n`);
    return new EmbeddedChain(rpcUrl, pid, true, child, exited, files.record);
  }

  /**
   * Stops anvil with SIGTERM and waits for it to exit, so it writes its state file (SIGKILL after
   * a grace period). A no-op for an attached handle. Safe to call more than once.
   */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) {
      return;
    }
    this.stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        if (!(await settlesWithin(this.exited, STOP_GRACE_MS))) {
          child.kill('SIGKILL');
          await this.exited;
        }
      }
      const record = await readRecord(this.recordFile);
      if (record?.pid === this.pid) {
        await rm(this.recordFile, { force: true });
      }
    })();
    return this.stopping;
  }
}

/**
 * Path of the anvil binary from the platform package `@foundry-rs/anvil-<platform>-<arch>` (an
 * optional dependency of `@foundry-rs/anvil`). Throws `ANVIL_NOT_INSTALLED` when it is missing.
 */
export function anvilBinaryPath(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const platformPackage = `@foundry-rs/anvil-${process.platform}-${arch}`;
  const binaryName = process.platform === 'win32' ? 'anvil.exe' : 'anvil';
  // createRequire rather than require.resolve: bundlers leave it alone. Resolve from this file
  // first, then from the working directory (a bundled app may live outside node_modules' tree).
  for (const base of [__filename, join(process.cwd(), 'package.json')]) {
    try {
      const binary = join(
        dirname(createRequire(base).resolve(`${platformPackage}/package.json`)),
        'bin',
        binaryName,
      );
      if (existsSync(binary)) {
        return binary;
      }
    } catch {
      // not resolvable from this base; try the next
    }
  }
  throw new LedgerError(
    'ANVIL_NOT_INSTALLED',
    `the embedded chain needs ${platformPackage} (installed with @foundry-rs/anvil as an optional dependency); ` +
      'run npm install without --omit=optional, or configure an external JSON-RPC URL',
  );
}

/** A TCP port that was free a moment ago on `host` (the OS picks it). */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') {
          resolve(address.port);
        } else {
          reject(new Error('no port assigned'));
        }
      });
    });
  });
}

async function findRunningAnvil(recordFile: string, stateFile: string): Promise<AnvilRecord | undefined> {
  const record = await readRecord(recordFile);
  if (record === undefined || !isOurAnvil(record.pid, stateFile)) {
    return undefined;
  }
  if (await answers(record.rpcUrl)) {
    return record;
  }
  // Alive but silent: starting a second anvil on the same state file would corrupt it.
  throw new LedgerError(
    'EMBEDDED_CHAIN_FAILED',
    `anvil (pid ${record.pid}) for this data dir is running but does not answer on port ${record.port}; stop it first`,
    { details: { pid: record.pid, port: record.port } },
  );
}

/** True when an anvil with the embedded chain id answers at `rpcUrl`. */
async function answers(rpcUrl: string): Promise<boolean> {
  try {
    const [chainId, client] = await Promise.all([
      readChainId(rpcUrl, 1_000),
      jsonRpcCall(rpcUrl, 'web3_clientVersion', [], 1_000),
    ]);
    return chainId === BigInt(EMBEDDED_CHAIN_ID) && typeof client === 'string' && client.startsWith('anvil/');
  } catch {
    return false;
  }
}

async function readRecord(recordFile: string): Promise<AnvilRecord | undefined> {
  try {
    const value: unknown = JSON.parse(await readFile(recordFile, 'utf8'));
    if (
      typeof value === 'object' &&
      value !== null &&
      'pid' in value &&
      Number.isSafeInteger(value.pid) &&
      'rpcUrl' in value &&
      typeof value.rpcUrl === 'string'
    ) {
      return value as AnvilRecord;
    }
    return undefined;
  } catch {
    return undefined;
  }
}

/**
 * Creates `lockFile` exclusively (O_EXCL) with our pid; waits while a live process holds it and
 * removes it when its holder is gone. Returns the release function.
 */
async function acquireLock(lockFile: string, timeoutMs: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(lockFile, 'wx');
      try {
        await handle.writeFile(String(process.pid));
      } finally {
        await handle.close();
      }
      return () => rm(lockFile, { force: true });
    } catch (error) {
      if (!isErrno(error, 'EEXIST')) {
        throw new LedgerError('EMBEDDED_CHAIN_FAILED', 'cannot create the embedded chain lock file', {
          cause: error,
        });
      }
    }
    if (await isStaleLock(lockFile)) {
      await rm(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new LedgerError(
        'EMBEDDED_CHAIN_FAILED',
        `another process kept ${lockFile} locked for ${timeoutMs} ms`,
      );
    }
    await sleep(POLL_MS);
  }
}

async function isStaleLock(lockFile: string): Promise<boolean> {
  try {
    const holder = Number((await readFile(lockFile, 'utf8')).trim());
    if (Number.isSafeInteger(holder) && holder > 0) {
      return !isAlive(holder);
    }
    return Date.now() - (await stat(lockFile)).mtimeMs > EMPTY_LOCK_STALE_MS;
  } catch (error) {
    return isErrno(error, 'ENOENT'); // released meanwhile: try again at once
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return isErrno(error, 'EPERM');
  }
}

/**
 * A live anvil serving `stateFile`. Where /proc exists its command line is checked, so a pid reused
 * by another process (after a reboot, say) does not count; elsewhere a live pid has to do.
 */
function isOurAnvil(pid: number, stateFile: string): boolean {
  if (!isAlive(pid)) {
    return false;
  }
  if (!existsSync('/proc/self/cmdline')) {
    return true;
  }
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return (args[0] ?? '').includes('anvil') && args.includes(stateFile);
  } catch {
    return false;
  }
}

async function hasLogged(logFile: string, text: string): Promise<boolean> {
  try {
    return (await readFile(logFile, 'utf8')).includes(text);
  } catch {
    return false;
  }
}

async function logTail(logFile: string): Promise<string> {
  try {
    const lines = (await readFile(logFile, 'utf8')).trim().split('\n');
    return lines.slice(-5).join(' | ') || '(no output)';
  } catch {
    return '(no log)';
  }
}

async function writeFileAtomically(file: string, content: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, content);
  await rename(temporary, file);
}

async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      resolve(false);
    }, ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function isErrno(error: unknown, code: string): boolean {
  return systemErrorCode(error) === code;
}
