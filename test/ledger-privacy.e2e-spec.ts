import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import type { LoggerService } from '@nestjs/common';
import { createProvider } from '@fhir-trail/ledger';
import { LEDGER, type LedgerConnection, LedgerAuditor, STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import type { JsonRpcProvider } from 'ethers';
import { createWorkerApp } from '../apps/worker/src/worker.app';
import { fixturePath, listJsonFixtures } from './fixtures/fixture-files';
import { eventually, TestStack } from './support/test-apps';

const DEMO = { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' };
/**
 * The Synthea corpus: every bundle committed under fixtures/synthea (always; one patient's
 * record, 238 resources), plus every bundle of the full corpus at ../shared/fhir-corpus/synthea
 * beside the repository when that folder is present (CI has it: 13 bundles, 11 patients and
 * Synthea's hospital and practitioner bundles, 2,674 resources). Without it the committed
 * bundle alone runs. A bundle found in both (byte-identical) is ingested once. The run prints
 * which bundles it ingested. See fixtures/synthea/SOURCES.md.
 */
const COMMITTED = 'synthea';
const CORPUS_DIR = resolve(__dirname, '..', '..', 'shared', 'fhir-corpus', 'synthea');
/**
 * Strings shorter than this are not searched for: a 4-byte needle (8 hex digits) turns up by
 * chance in kilobytes of bytecode and hashes. Names, identifiers, ids, codes and dates are longer.
 */
const MIN_NEEDLE = 5;
/**
 * A match of a needle made only of hex digits (a numeric code, a postal code, an NPI) that lies
 * inside a run of at least this many hex digits in a log text (a hash, an address, a key) is
 * chance, not a leak: with the full corpus, postal codes such as "02420" and "01890" turned up
 * inside transaction hashes in the logs in some runs (five digits in ~400 KB of hex-rich text).
 * The check is on text only, where hashes are written out in hex. Such matches are counted and
 * printed, never dropped silently; every other match (any match in chain data, a needle with a
 * non-hex character, a match outside a long hex run, and every hex-encoded form) is a leak.
 */
const HEX_RUN = 40;
/**
 * Resources posted at once. Measured on a shared 2-core machine (load 4-6), the full corpus was
 * ingested and anchored in 28-54 s at 32, 38-74 s at 16 (the worker processes 8 at a time).
 */
const CONCURRENCY = 32;

interface Bundle {
  readonly entry: readonly { readonly fullUrl: string; readonly resource: Record<string, unknown> }[];
}

/** One bundle to ingest, with where it came from. */
interface CorpusBundle {
  readonly name: string;
  readonly from: 'committed' | 'corpus';
  readonly bundle: Bundle;
}

/** Every `.json` file under a folder, recursively, as absolute paths, sorted. */
function jsonFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.json'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** The committed bundles, then every other bundle of the full corpus when it is present. */
function corpusBundles(): CorpusBundle[] {
  const seen = new Set<string>();
  const bundles: CorpusBundle[] = [];
  const add = (path: string, name: string, from: CorpusBundle['from']): void => {
    const bytes = readFileSync(path);
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (seen.has(digest)) return;
    seen.add(digest);
    const bundle = JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, '')) as Bundle;
    bundles.push({ name, from, bundle });
  };
  for (const fixture of listJsonFixtures(COMMITTED)) add(fixturePath(fixture), fixture, 'committed');
  if (existsSync(CORPUS_DIR)) {
    for (const path of jsonFilesUnder(CORPUS_DIR)) add(path, relative(CORPUS_DIR, path), 'corpus');
  }
  return bundles;
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

/**
 * Every occurrence of many patterns (each at least {@link MIN_NEEDLE} characters) in one pass:
 * patterns are indexed by their first {@link MIN_NEEDLE} characters, and each position of the
 * haystack is looked up once, so the cost is the haystack's length, not patterns x length. Exact:
 * every occurrence of a pattern starts with its own prefix.
 */
class PatternIndex<T> {
  private readonly byPrefix = new Map<string, { pattern: string; tag: T }[]>();
  add(pattern: string, tag: T): void {
    const prefix = pattern.slice(0, MIN_NEEDLE);
    const list = this.byPrefix.get(prefix);
    if (list) list.push({ pattern, tag });
    else this.byPrefix.set(prefix, [{ pattern, tag }]);
  }
  forEachMatch(haystack: string, found: (tag: T, at: number, length: number) => void): void {
    for (let at = 0; at + MIN_NEEDLE <= haystack.length; at++) {
      const candidates = this.byPrefix.get(haystack.slice(at, at + MIN_NEEDLE));
      if (!candidates) continue;
      for (const { pattern, tag } of candidates) {
        if (haystack.startsWith(pattern, at)) found(tag, at, pattern.length);
      }
    }
  }
}

/** Whether `text[at, at + length)` lies inside a run of at least {@link HEX_RUN} hex digits. */
function insideHexRun(text: string, at: number, length: number): boolean {
  const hex = (i: number) => i >= 0 && i < text.length && /[0-9a-fA-F]/.test(text[i]);
  let from = at;
  while (hex(from - 1)) from--;
  let to = at + length;
  while (hex(to)) to++;
  return to - from >= HEX_RUN;
}

/** What a scan found: leaks, and the chance matches of {@link HEX_RUN} (for the record). */
interface ScanResult {
  readonly leaks: string[];
  readonly chance: string[];
}

/** The needles found in chain data (hex blobs) or text, each with where. */
function findLeaks(
  needles: Iterable<string>,
  blobs: readonly { where: string; hex: string }[],
  texts: readonly { where: string; text: string }[],
): ScanResult {
  const raw = new PatternIndex<string>();
  const encoded = new PatternIndex<string>();
  const list = [...needles];
  for (const needle of list) {
    raw.add(needle, needle);
    for (const form of hexForms(needle)) encoded.add(form, needle);
  }
  const bytes = new PatternIndex<string>();
  for (const needle of list) bytes.add(Buffer.from(needle, 'utf8').toString('latin1'), needle);
  const leaks = new Set<string>();
  const chance = new Set<string>();
  for (const blob of blobs) {
    const at = (needle: string) => leaks.add(`${blob.where}: ${JSON.stringify(needle)}`);
    // Hex forms at byte boundaries only; the bytes as Latin-1 text for the UTF-8 needle itself.
    encoded.forEachMatch(blob.hex, (needle, index) => {
      if (index % 2 === 0) at(needle);
    });
    bytes.forEachMatch(Buffer.from(blob.hex, 'hex').toString('latin1'), at);
  }
  for (const text of texts) {
    const at = (needle: string) => leaks.add(`${text.where}: ${JSON.stringify(needle)}`);
    raw.forEachMatch(text.text, (needle, index, length) => {
      if (/^[0-9a-fA-F]+$/.test(needle) && insideHexRun(text.text, index, length)) {
        chance.add(`${text.where}: ${JSON.stringify(needle)}`);
      } else at(needle);
    });
    encoded.forEachMatch(text.text.toLowerCase(), at);
  }
  return { leaks: [...leaks], chance: [...chance] };
}

describe('no PHI on chain or in the logs: the Synthea corpus through the bridge, the worker and the dev chain', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  let provider: JsonRpcProvider;
  const logger = new CapturingLogger();
  const bundles = corpusBundles();
  const resources: Record<string, unknown>[] = [];
  const started = performance.now();
  let ingestMs = 0;

  beforeAll(async () => {
    stack = await TestStack.create('ledger-privacy', { LOG_LEVEL: 'verbose', LEDGER_BATCH_SIZE: '100' });
    base = await stack.startBridge();
    stack.worker = await createWorkerApp(stack.config, logger);
    store = stack.bridge!.get<Store>(STORE);
    provider = createProvider(stack.bridge!.get<LedgerConnection>(LEDGER).rpcUrl);

    // As a FHIR server stores a transaction: `urn:uuid:` references become `{Type}/{id}`.
    for (const { bundle } of bundles) {
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
    }
    // CONCURRENCY posts in flight at any time, in corpus order.
    const statuses: number[] = [];
    let next = 0;
    const post = async (): Promise<void> => {
      while (next < resources.length) {
        const resource = resources[next++];
        const response = await fetch(`${base}/hooks/demo`, {
          method: 'POST',
          headers: DEMO,
          body: JSON.stringify(resource),
        });
        await response.arrayBuffer();
        statuses.push(response.status);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, post));
    expect(statuses).toEqual(resources.map(() => 200));
    await eventually(
      async () => {
        const counts = await store.inbox.countByStatus();
        return counts.received === 0 ? counts : undefined;
      },
      240_000,
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
    ingestMs = performance.now() - started;
  }, 420_000);

  afterAll(async () => {
    provider?.destroy();
    await stack?.close();
  });

  it('stores every resource of the corpus with pseudonymous leaves, anchors it, and leaves no string of it on chain or in the logs', async () => {
    const stored = await store.db
      .selectFrom('ledger_events')
      .select(['resource_type', 'record', 'key_scope'])
      .execute();
    // Every resource posted was stored (one version each, no dead letter) and, above, anchored.
    expect(await store.deadLetters.count('demo')).toBe(0);
    expect(stored).toHaveLength(resources.length);
    const patients = resources.filter((r) => r.resourceType === 'Patient').map((r) => String(r.id));
    expect(patients.length).toBe(
      bundles.filter((b) => b.bundle.entry.some((e) => e.resource.resourceType === 'Patient')).length,
    );
    expect(stored.filter((e) => e.resource_type === 'Patient')).toHaveLength(patients.length);
    // Each patient's record is under that patient's own key; most resources are in a compartment.
    for (const id of patients) {
      expect(stored.filter((e) => e.key_scope === `Patient/${id}`).length).toBeGreaterThan(1);
    }
    expect(stored.filter((e) => (e.key_scope ?? '').startsWith('Patient/')).length).toBeGreaterThan(
      stored.length / 2,
    );

    const needles = new Set<string>();
    for (const resource of resources) stringValues(resource, needles);
    for (const { bundle } of bundles) for (const entry of bundle.entry) stringValues(entry, needles);
    // Roughly 4.6 distinct strings per resource: thousands for the full corpus, 1,103 for the fixture.
    expect(needles.size).toBeGreaterThan(resources.length * 3);
    expect(needles).toContain('Bob965');
    for (const id of patients) expect(needles).toContain(id);

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

    const scanStarted = performance.now();
    const scan = findLeaks(needles, blobs, texts);
    const scanMs = performance.now() - scanStarted;
    expect(scan.leaks).toEqual([]);
    // And the log these anchors commit to audits clean, across every checkpoint.
    const audit = await new LedgerAuditor(store).auditAll();
    expect(audit.mismatches).toEqual([]);
    expect(audit.statuses.verified).toBe(stored.length);
    const fromCorpus = bundles.filter((b) => b.from === 'corpus').length;
    process.stdout.write(
      `privacy: ${bundles.length} bundles (${bundles.length - fromCorpus} committed, ` +
        (existsSync(CORPUS_DIR)
          ? `${fromCorpus} more from ${CORPUS_DIR})`
          : `${CORPUS_DIR} absent: committed fixture only)`) +
        `: ${bundles.map((b) => b.name).join(', ')}\n` +
        `privacy: ${resources.length} resources posted, ${stored.length} stored and anchored in ` +
        `${checkpoints.length} checkpoints (${Math.round(ingestMs / 1000)} s from start); ` +
        `${needles.size} strings searched in ${transactions} transactions, ${logs.length} logs, ` +
        `${logger.lines.length} log lines (${texts[0].text.length} chars) and the anvil log ` +
        `(${texts[1].text.length} chars) in ${Math.round(scanMs)} ms: none found; ` +
        `${scan.chance.length} chance matches of numeric codes inside hashes${
          scan.chance.length ? `: ${scan.chance.slice(0, 5).join('; ')}` : ''
        }\n`,
    );
  }, 120_000);

  it('the scan finds a planted value in every form it checks (so an empty result means something)', () => {
    const name = 'Keeling57';
    const uuid = '3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b';
    const code = '2093346';
    const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
    const hash = `0x${'ab'.repeat(10)}${code}${'cd'.repeat(15)}1`;
    const blobs = [
      { where: 'utf8', hex: `00${hex(name)}00` },
      { where: 'bytes16', hex: `0000${uuid.replace(/-/g, '')}` },
      { where: 'misaligned', hex: `0${hex('Bob965')}0` },
      // In chain data even a numeric code inside other bytes is a leak.
      { where: 'code bytes', hex: `ab${hex(code)}cd` },
    ];
    const texts = [
      { where: 'log', text: `{"msg":"x","id":"${uuid}","root":"${hash}"}` },
      { where: 'log with code', text: `{"code":"${code}","short":"ab${code}cd"}` },
      { where: 'log with hex', text: `{"data":"0x${hex(name)}"}` },
    ];
    expect(findLeaks([name, uuid, 'Bob965', code, 'absent-value'], blobs, texts)).toEqual({
      leaks: [
        `utf8: "${name}"`,
        `bytes16: "${uuid}"`,
        `code bytes: "${code}"`,
        `log: "${uuid}"`,
        `log with code: "${code}"`,
        `log with hex: "${name}"`,
      ],
      // A numeric code inside a 64-digit hash is chance, recorded as such; outside one, a leak.
      chance: [`log: "${code}"`],
    });
  });
});
