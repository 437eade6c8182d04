import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoggerService } from '@nestjs/common';
import { createProvider } from '@fhir-trail/ledger';
import { LEDGER, type LedgerConnection, LedgerAuditor, STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import type { JsonRpcProvider } from 'ethers';
import { createWorkerApp } from '../apps/worker/src/worker.app';
import { readJsonFixture } from './fixtures/fixture-files';
import { eventually, TestStack } from './support/test-apps';

const DEMO = { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' };
/** A Synthea transaction bundle (one patient's record, 238 resources): see fixtures/synthea/SOURCES.md. */
const SYNTHEA = 'synthea/Bob965_Keeling57_3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b.json';
/**
 * Strings shorter than this are not searched for: a 4-byte needle (8 hex digits) turns up by
 * chance in kilobytes of bytecode and hashes. Names, identifiers, ids, codes and dates are longer.
 */
const MIN_NEEDLE = 5;
/** Resources posted at once. */
const CONCURRENCY = 8;

interface Bundle {
  readonly entry: readonly { readonly fullUrl: string; readonly resource: Record<string, unknown> }[];
}

/** Every message the apps log (both apps share Nest's static logger once the worker starts), as JSON lines. */
class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  log(message: unknown, ...rest: unknown[]): void {
    this.capture('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.capture('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.capture('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.capture('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.capture('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.capture('fatal', message, rest);
  }
  private capture(level: string, message: unknown, rest: readonly unknown[]): void {
    const text = (value: unknown) =>
      value instanceof Error ? `${value.name}: ${value.message}\n${value.stack ?? ''}` : value;
    this.lines.push(JSON.stringify({ level, message: text(message), rest: rest.map(text) }));
  }
}

/**
 * The strings to look for: every string value of the resources (names, identifiers, ids, codes,
 * dates, references as sent and as rewritten), at least {@link MIN_NEEDLE} characters long, except
 * `resourceType` (a schema name, not data).
 */
function stringValues(value: unknown, into: Set<string>, key = ''): Set<string> {
  if (typeof value === 'string') {
    if (key !== 'resourceType' && value.length >= MIN_NEEDLE) into.add(value);
  } else if (Array.isArray(value)) {
    for (const item of value) stringValues(item, into, key);
  } else if (value && typeof value === 'object') {
    for (const [k, child] of Object.entries(value)) stringValues(child, into, k);
  }
  return into;
}

/** Where a needle could hide in chain data: its UTF-8 bytes, and for a UUID its 16 bytes. */
function hexForms(needle: string): string[] {
  const forms = [Buffer.from(needle, 'utf8').toString('hex')];
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(needle)) {
    forms.push(needle.replace(/-/g, '').toLowerCase());
  }
  return forms;
}

/** A byte-aligned occurrence of `hex` (lowercase, no 0x) in `haystack` (the same). */
function hasAligned(haystack: string, hex: string): boolean {
  for (let at = haystack.indexOf(hex); at >= 0; at = haystack.indexOf(hex, at + 1)) {
    if (at % 2 === 0) return true;
  }
  return false;
}

/** The needles found in chain data (hex blobs) or text, each with where. */
function findLeaks(
  needles: Iterable<string>,
  blobs: readonly { where: string; hex: string }[],
  texts: readonly { where: string; text: string }[],
): string[] {
  const decoded = blobs.map((b) => ({
    where: b.where,
    hex: b.hex,
    text: Buffer.from(b.hex, 'hex').toString('latin1'),
  }));
  const leaks: string[] = [];
  for (const needle of needles) {
    const forms = hexForms(needle);
    const latin1 = Buffer.from(needle, 'utf8').toString('latin1');
    for (const blob of decoded) {
      if (forms.some((form) => hasAligned(blob.hex, form)) || blob.text.includes(latin1)) {
        leaks.push(`${blob.where}: ${JSON.stringify(needle)}`);
      }
    }
    for (const text of texts) {
      if (text.text.includes(needle) || forms.some((form) => text.text.toLowerCase().includes(form))) {
        leaks.push(`${text.where}: ${JSON.stringify(needle)}`);
      }
    }
  }
  return leaks;
}

describe('no PHI on chain or in the logs: a Synthea record through the bridge, the worker and the dev chain', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  let provider: JsonRpcProvider;
  const logger = new CapturingLogger();
  const resources: Record<string, unknown>[] = [];

  beforeAll(async () => {
    stack = await TestStack.create('ledger-privacy', { LOG_LEVEL: 'verbose', LEDGER_BATCH_SIZE: '40' });
    base = await stack.startBridge();
    stack.worker = await createWorkerApp(stack.config, logger);
    store = stack.bridge!.get<Store>(STORE);
    provider = createProvider(stack.bridge!.get<LedgerConnection>(LEDGER).rpcUrl);

    // As a FHIR server stores a transaction: `urn:uuid:` references become `{Type}/{id}`.
    const bundle = readJsonFixture(SYNTHEA) as Bundle;
    const addresses = new Map(
      bundle.entry.map((e) => [e.fullUrl, `${String(e.resource.resourceType)}/${String(e.resource.id)}`]),
    );
    for (const entry of bundle.entry) {
      const text = JSON.stringify(entry.resource).replace(
        /urn:uuid:[0-9a-f-]{36}/g,
        (u) => addresses.get(u) ?? u,
      );
      resources.push(JSON.parse(text) as Record<string, unknown>);
    }
    for (let i = 0; i < resources.length; i += CONCURRENCY) {
      const responses = await Promise.all(
        resources
          .slice(i, i + CONCURRENCY)
          .map((resource) =>
            fetch(`${base}/hooks/demo`, { method: 'POST', headers: DEMO, body: JSON.stringify(resource) }),
          ),
      );
      expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200));
    }
    await eventually(
      async () => {
        const counts = await store.inbox.countByStatus();
        return counts.received === 0 ? counts : undefined;
      },
      180_000,
      'every notification ingested',
    );
    // Everything stored is anchored: the last batch closes on the interval.
    await eventually(
      async () => {
        const [events, checkpoint] = await Promise.all([
          store.db
            .selectFrom('ledger_events')
            .select((eb) => eb.fn.countAll<string>().as('n'))
            .executeTakeFirstOrThrow(),
          store.ledger.latestCheckpoint(),
        ]);
        return checkpoint && checkpoint.treeSize === Number(events.n) ? checkpoint : undefined;
      },
      60_000,
      'every ledger event anchored',
    );
  }, 300_000);

  afterAll(async () => {
    provider?.destroy();
    await stack?.close();
  });

  it('stores the record with pseudonymous leaves, anchors it, and leaves no string of it on chain or in the logs', async () => {
    const stored = await store.db
      .selectFrom('ledger_events')
      .select(['resource_type', 'record', 'key_scope'])
      .execute();
    // The record went through: the patient and most of their resources are stored and logged.
    expect(stored.length).toBeGreaterThan(resources.length / 2);
    expect(stored.filter((e) => e.resource_type === 'Patient')).toHaveLength(1);
    const patientId = String(resources.find((r) => r.resourceType === 'Patient')?.id);
    expect(stored.filter((e) => e.key_scope === `Patient/${patientId}`).length).toBeGreaterThan(
      stored.length / 2,
    );

    const needles = new Set<string>();
    for (const resource of resources) stringValues(resource, needles);
    for (const entry of (readJsonFixture(SYNTHEA) as Bundle).entry) stringValues(entry, needles);
    expect(needles.size).toBeGreaterThan(500);
    expect(needles).toContain('Bob965');
    expect(needles).toContain(patientId);

    // Every transaction's input and every log on the dev chain, from the genesis block on.
    const latest = await provider.getBlockNumber();
    const blobs: { where: string; hex: string }[] = [];
    let transactions = 0;
    for (let n = 0; n <= latest; n++) {
      const block = await provider.getBlock(n, true);
      for (const tx of block?.prefetchedTransactions ?? []) {
        blobs.push({ where: `tx ${tx.hash} input`, hex: tx.data.slice(2).toLowerCase() });
        transactions++;
      }
    }
    const logs = await provider.getLogs({ fromBlock: 0, toBlock: latest });
    for (const log of logs) {
      blobs.push({
        where: `log ${log.transactionHash}#${log.index} data`,
        hex: log.data.slice(2).toLowerCase(),
      });
      for (const topic of log.topics)
        blobs.push({
          where: `log ${log.transactionHash}#${log.index} topic`,
          hex: topic.slice(2).toLowerCase(),
        });
    }
    const checkpoints = await store.ledger.listCheckpoints(1_000);
    expect(checkpoints.length).toBeGreaterThan(1);
    // Deployment, role grants and one anchor per checkpoint; each anchor emitted its event.
    expect(transactions).toBeGreaterThanOrEqual(checkpoints.length + 1);
    expect(logs.length).toBeGreaterThanOrEqual(checkpoints.length);

    const texts = [
      { where: 'worker and bridge logs', text: logger.lines.join('\n') },
      { where: 'anvil log', text: await readFile(join(stack.config.dataDir, 'chain', 'anvil.log'), 'utf8') },
    ];
    // The apps did log (ingest, anchoring), so the scan had something to read.
    expect(logger.lines.length).toBeGreaterThan(10);
    expect(logger.lines.some((line) => line.includes('anchor'))).toBe(true);

    expect(findLeaks(needles, blobs, texts)).toEqual([]);
    // And the log these anchors commit to audits clean, across every checkpoint.
    const audit = await new LedgerAuditor(store).auditAll();
    expect(audit.mismatches).toEqual([]);
    expect(audit.statuses.verified).toBe(stored.length);
    const deadLetters = await store.deadLetters.count('demo');
    process.stdout.write(
      `privacy: ${resources.length} resources posted, ${stored.length} stored (${deadLetters} dead letters), ` +
        `${needles.size} strings searched in ${transactions} transactions, ${logs.length} logs, ` +
        `${logger.lines.length} log lines and the anvil log: none found\n`,
    );
  });

  it('the scan finds a planted value in every form it checks (so an empty result means something)', () => {
    const name = 'Keeling57';
    const uuid = '3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b';
    const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
    const blobs = [
      { where: 'utf8', hex: `00${hex(name)}00` },
      { where: 'bytes16', hex: `0000${uuid.replace(/-/g, '')}` },
      { where: 'misaligned', hex: `0${hex('Bob965')}0` },
    ];
    const texts = [{ where: 'log', text: `{"msg":"x","id":"${uuid}"}` }];
    expect(findLeaks([name, uuid, 'Bob965', 'absent-value'], blobs, texts)).toEqual([
      `utf8: "${name}"`,
      `bytes16: "${uuid}"`,
      `log: "${uuid}"`,
    ]);
  });
});
