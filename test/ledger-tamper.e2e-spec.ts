import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { OperationOutcome, Parameters } from '@medplum/fhirtypes';
import { DEV_ADMIN_API_KEY } from '@fhir-trail/config';
import { createProvider, inclusionProofKeys, nodeKeyId, verifyProofBundle } from '@fhir-trail/ledger';
import { LEDGER, type LedgerConnection, LedgerAuditor, STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import type { JsonRpcProvider } from 'ethers';
import { Client } from 'pg';
import { eventually, TestStack } from './support/test-apps';

const ROOT = join(__dirname, '..');
const DEMO = { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' };
const ADMIN = { authorization: `Bearer ${DEV_ADMIN_API_KEY}`, 'content-type': 'application/fhir+json' };
const PATIENTS = 4;
const OBSERVATIONS_PER_PATIENT = 8;
/** Patients, their Observations, two Organizations (no patient: the source's shared key) and two updates. */
const EVENTS = PATIENTS + PATIENTS * OBSERVATIONS_PER_PATIENT + 2 + 2;
/** Random single-field changes, each applied, audited, checked with $verify and restored. */
const CHANGES = 1_000;
/** The tables a change may hit. */
const TABLES = ['resource_versions', 'provenances', 'ledger_events', 'ledger_nodes'] as const;
type Table = (typeof TABLES)[number];
/** Primary keys (where a changed row is found again to restore it). */
const PRIMARY_KEYS: Readonly<Record<Table, readonly string[]>> = {
  resource_versions: ['id'],
  provenances: ['id'],
  ledger_events: ['id'],
  ledger_nodes: ['level', 'idx'],
};
/**
 * `ledger_events.id` is left out: a storage sequence that nothing refers to and that carries no
 * meaning once the event has its `leaf_index` (the log's order is the leaf order).
 */
const UNCOMMITTED = new Set(['ledger_events.id']);

interface Column {
  readonly table: Table;
  readonly name: string;
  readonly type: string;
}

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('tamper evidence and erasure, on PostgreSQL and the embedded chain', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  let ledger: LedgerConnection;
  let provider: JsonRpcProvider;
  let pg: Client;
  /** Provenance ids by patient (Patient/tp-N), and of the Organizations. */
  const byPatient = new Map<string, string[]>();
  let treeSize = 0;

  beforeAll(async () => {
    // One batch of exactly EVENTS leaves (closed by size); the interval is long, so a later event stays pending.
    stack = await TestStack.create('ledger-tamper', {
      LEDGER_BATCH_SIZE: String(EVENTS),
      LEDGER_BATCH_INTERVAL_MS: '3600000',
    });
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
    ledger = stack.bridge!.get<LedgerConnection>(LEDGER);
    provider = createProvider(ledger.rpcUrl);

    const resources: Record<string, unknown>[] = [];
    for (let p = 1; p <= PATIENTS; p++) {
      resources.push({
        resourceType: 'Patient',
        id: `tp-${p}`,
        meta: { versionId: '1', lastUpdated: `2026-01-0${p}T10:00:00.000Z` },
        name: [{ family: `Family${p}`, given: [`Given${p}`] }],
        birthDate: `19${50 + p}-02-1${p}`,
        active: true,
      });
      for (let o = 1; o <= OBSERVATIONS_PER_PATIENT; o++) {
        resources.push({
          resourceType: 'Observation',
          id: `to-${p}-${o}`,
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
          subject: { reference: `Patient/tp-${p}` },
          effectiveDateTime: `2026-02-0${o}T08:00:00Z`,
          valueQuantity: {
            value: 60 + p + o,
            unit: '/min',
            system: 'http://unitsofmeasure.org',
            code: '/min',
          },
        });
      }
    }
    resources.push({ resourceType: 'Organization', id: 'to-org-1', name: 'Clinic One', active: true });
    resources.push({ resourceType: 'Organization', id: 'to-org-2', name: 'Clinic Two', active: true });
    for (const response of await Promise.all(resources.map(post))) expect(response.status).toBe(200);
    // Second versions, once the first ones are stored.
    await eventually(async () => ((await countEvents()) >= EVENTS - 2 ? true : undefined), 30_000, 'ingest');
    for (const p of [1, 2]) {
      const response = await post({
        resourceType: 'Patient',
        id: `tp-${p}`,
        meta: { versionId: '2', lastUpdated: `2026-03-0${p}T10:00:00.000Z` },
        name: [{ family: `Family${p}`, given: [`Renamed${p}`] }],
        active: true,
      });
      expect(response.status).toBe(200);
    }
    const checkpoint = await eventually(
      async () => {
        const latest = await store.ledger.latestCheckpoint();
        return latest && latest.treeSize >= EVENTS ? latest : undefined;
      },
      60_000,
      `a checkpoint of ${EVENTS} leaves`,
    );
    treeSize = checkpoint.treeSize;
    const rows = await store.db
      .selectFrom('ledger_events')
      .select(['event_id', 'key_scope'])
      .where('kind', '=', 'provenance')
      .execute();
    for (const row of rows) {
      const scope = row.key_scope ?? '';
      byPatient.set(scope, [...(byPatient.get(scope) ?? []), row.event_id]);
    }
    // Nothing else writes while rows are changed under the log.
    await stack.stopWorker();
    pg = new Client({ connectionString: stack.config.databaseUrl });
    await pg.connect();
  }, 180_000);

  afterAll(async () => {
    await pg?.end();
    provider?.destroy();
    await stack?.close();
  });

  const post = (resource: Record<string, unknown>) =>
    fetch(`${base}/hooks/demo`, { method: 'POST', headers: DEMO, body: JSON.stringify(resource) });

  async function countEvents(): Promise<number> {
    const row = await store.db
      .selectFrom('ledger_events')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async function verify(id: string): Promise<{ status: string; outcome: OperationOutcome; proof?: unknown }> {
    const response = await fetch(`${base}/fhir/R4/Provenance/${id}/$verify`, { method: 'POST' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    const parameters = (await response.json()) as Parameters;
    expect(parameters.resourceType).toBe('Parameters');
    const get = (name: string) => parameters.parameter?.find((p) => p.name === name);
    const data = get('proof')?.valueAttachment?.data;
    return {
      status: get('status')?.valueCode ?? '',
      outcome: get('outcome')?.resource as OperationOutcome,
      proof: data ? (JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as unknown) : undefined,
    };
  }

  it('verifies every Provenance of an untouched log, with a proof bundle that checks on chain alone', async () => {
    const report = await new LedgerAuditor(store).auditAll();
    expect(report.mismatches).toEqual([]);
    expect(report).toMatchObject({ events: EVENTS, treeSize: EVENTS });
    expect(report.statuses).toEqual({ verified: EVENTS, tampered: 0, 'key-destroyed': 0, pending: 0 });
    const ids = [...byPatient.values()].flat();
    expect(ids).toHaveLength(EVENTS);
    for (const id of ids.slice(0, 5)) {
      const answer = await verify(id);
      expect(answer.status).toBe('verified');
      expect(answer.outcome.issue?.[0]).toMatchObject({ severity: 'information' });
      await expect(verifyProofBundle(answer.proof, provider)).resolves.toMatchObject({ verified: true });
    }
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'scripts/audit.ts'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: stack.config.databaseUrl, NODE_ENV: 'test' },
    });
    expect(stdout).toContain(`ledger audit: ${EVENTS} events, ${EVENTS} leaves`);
    expect(stdout).toContain('every stored record matches the log');
    const help = await promisify(execFile)('npx', ['tsx', 'scripts/audit.ts', '--help'], { cwd: ROOT });
    expect(help.stdout).toMatch(/^Usage: npm run audit -- \[--json\]/);
  }, 60_000);

  it('documents $verify and $erase in the OpenAPI document', async () => {
    const openApi = (await (await fetch(`${base}/docs/openapi.json`)).json()) as { paths: object };
    expect(Object.keys(openApi.paths)).toEqual(
      expect.arrayContaining(['/fhir/R4/Provenance/{id}/$verify', '/admin/patients/$erase']),
    );
  });

  it('answers 404 with an OperationOutcome for an unknown Provenance', async () => {
    for (const id of [randomUUID(), 'not-a-uuid']) {
      const response = await fetch(`${base}/fhir/R4/Provenance/${id}/$verify`, { method: 'POST' });
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'not-found' }],
      });
    }
  });

  it(`detects each of ${CHANGES} random single-field changes, in the audit and in $verify`, async () => {
    const seed = Number(process.env.TAMPER_SEED ?? Date.now() % 2 ** 31);
    const random = prng(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
    const columns = await columnsOf();
    // A DBA's change: foreign keys and triggers off (session_replication_role), only unique indexes hold.
    await pg.query('set session_replication_role = replica');
    const namedExactly: Record<Table, number> = {
      resource_versions: 0,
      provenances: 0,
      ledger_events: 0,
      ledger_nodes: 0,
    };
    let refused = 0;
    let applied = 0;
    let verifiedWith$verify = 0;
    while (applied < CHANGES) {
      const table = pick(TABLES);
      const column = pick(columns.filter((c) => c.table === table));
      const keys = PRIMARY_KEYS[table];
      const { rows } = await pg.query<Record<string, unknown>>(
        `select ${keys.join(', ')}, to_jsonb(t) as row from ${table} t order by ${keys.join(', ')}`,
      );
      const target = pick(rows);
      const original = (target.row as Record<string, unknown>)[column.name];
      const changed = mutate(column, original, random);
      const where = keys.map((k, i) => `${k} = $${i + 2}`).join(' and ');
      let result;
      try {
        result = await pg.query(
          `update ${table} set ${column.name} = $1::${column.type} where ${where} and ${column.name} is distinct from $1::${column.type}`,
          [changed, ...keys.map((k) => target[k])],
        );
      } catch {
        refused++; // a unique index refused it (e.g. two nodes at one position): the database held
        continue;
      }
      if (result.rowCount !== 1) continue; // the same value again: not a change
      applied++;
      const rowKey = (k: string) => (k === column.name ? toKeyValue(changed) : String(target[k]));
      const describe = `${table}.${column.name} (seed ${seed}, change ${applied})`;

      try {
        const report = await new LedgerAuditor(store).auditAll();
        expect({ change: describe, detected: report.mismatches.length > 0 }).toEqual({
          change: describe,
          detected: true,
        });
        expect({ change: describe, tables: report.mismatches.map((m) => m.table) }).toEqual({
          change: describe,
          tables: expect.arrayContaining([table]) as unknown,
        });
        const exact = keys.map((k) => `${k === 'idx' ? 'idx' : k}=${rowKey(k)}`).join(',');
        const originalKey = keys.map((k) => `${k}=${String(target[k])}`).join(',');
        if (report.mismatches.some((m) => m.table === table && [exact, originalKey].includes(m.row))) {
          namedExactly[table]++;
        }

        const provenanceId = await affectedProvenance(table, target, column.name);
        if (provenanceId !== undefined) {
          const answer = await verify(provenanceId);
          expect({ change: describe, status: answer.status }).toEqual({
            change: describe,
            status: 'tampered',
          });
          expect(answer.outcome.issue?.length).toBeGreaterThan(1);
          verifiedWith$verify++;
        }
      } finally {
        await pg.query(
          `update ${table} set ${column.name} = $1::${column.type} where ${keys
            .map((k, i) => `${k} = $${i + 2}`)
            .join(' and ')}`,
          [toParameter(column, original), ...keys.map((k) => (k === column.name ? changed : target[k]))],
        );
      }
      if (applied % 250 === 0) {
        expect((await new LedgerAuditor(store).auditAll()).mismatches).toEqual([]);
      }
    }
    await pg.query('set session_replication_role = origin');
    expect((await new LedgerAuditor(store).auditAll()).mismatches).toEqual([]);
    expect(applied).toBe(CHANGES);
    // Most changes have a Provenance whose $verify must see them (a node that no proof uses has none).
    expect(verifiedWith$verify).toBeGreaterThan(CHANGES / 2);
    process.stdout.write(
      `tamper: seed ${seed}; ${applied} changes detected by the audit, ${verifiedWith$verify} also by $verify; ` +
        `${refused} refused by a unique index; row named exactly: ${JSON.stringify(namedExactly)}\n`,
    );
  }, 600_000);

  it('erases a patient: key destroyed, content gone, "key destroyed" for them and verified for everyone else', async () => {
    const erased = 'Patient/tp-2';
    const theirs = byPatient.get(erased) ?? [];
    expect(theirs).toHaveLength(OBSERVATIONS_PER_PATIENT + 2);
    const others = [...byPatient.entries()].filter(([scope]) => scope !== erased).flatMap(([, ids]) => ids);

    const response = await fetch(`${base}/admin/patients/$erase`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({
        resourceType: 'Parameters',
        parameter: [
          { name: 'source', valueString: 'demo' },
          { name: 'patient', valueReference: { reference: erased } },
        ],
      }),
    });
    expect(response.status).toBe(200);
    const outcome = (await response.json()) as OperationOutcome;
    expect(outcome.issue?.[0]).toMatchObject({ severity: 'information', code: 'informational' });
    expect(outcome.issue?.[0].details?.text).toContain(`content of ${theirs.length} resource version(s)`);

    const key = await store.db
      .selectFrom('patient_keys')
      .selectAll()
      .where('source_id', '=', 'demo')
      .where('patient_ref', '=', erased)
      .executeTakeFirstOrThrow();
    expect(key.wrapped_key).toBeNull();
    expect(key.destroyed_at).toBeInstanceOf(Date);
    const erasure = await store.db
      .selectFrom('ledger_events')
      .selectAll()
      .where('event_id', '=', key.erasure_event_id ?? randomUUID())
      .executeTakeFirstOrThrow();
    expect(erasure.kind).toBe('erasure');
    const record = JSON.parse(erasure.record) as Record<string, unknown>;
    expect(Object.keys(record).sort()).toEqual(
      ['actor', 'eventId', 'kind', 'patient', 'recorded', 'source', 'subject', 'v'].sort(),
    );
    expect(erasure.record).not.toContain('tp-2');
    const leftovers = await store.db
      .selectFrom('resource_versions as v')
      .innerJoin('provenances as p', 'p.resource_version_id', 'v.id')
      .select(['v.content as version', 'p.content as provenance'])
      .where('p.id', 'in', theirs)
      .execute();
    expect(leftovers).toHaveLength(theirs.length);
    expect(leftovers.every((r) => r.version === null && r.provenance === null)).toBe(true);
    // The raw notifications they came in are gone too (rows kept); other patients' are not.
    const inbox = await store.db
      .selectFrom('inbox as i')
      .innerJoin('resource_versions as v', 'v.inbox_id', 'i.id')
      .innerJoin('provenances as p', 'p.resource_version_id', 'v.id')
      .select(['p.id as provenance', 'i.body'])
      .execute();
    const emptied = new Set(inbox.filter((r) => r.body.length === 0).map((r) => r.provenance));
    expect(theirs.every((id) => emptied.has(id))).toBe(true);
    expect(others.some((id) => emptied.has(id))).toBe(false);

    for (const id of theirs) expect((await verify(id)).status).toBe('key-destroyed');
    for (const id of others) expect((await verify(id)).status).toBe('verified');
    const report = await new LedgerAuditor(store).auditAll();
    expect(report.mismatches).toEqual([]);
    // The erasure leaf waits for the next batch (pending); the patient's events are "key destroyed".
    expect(report.statuses).toEqual({
      verified: EVENTS - theirs.length,
      tampered: 0,
      'key-destroyed': theirs.length,
      pending: 1,
    });

    // Erasing again is harmless; changing an erased patient's tombstone is still detected.
    const again = await fetch(`${base}/admin/patients/$erase`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({ source: 'demo', patient: erased }),
    });
    expect(again.status).toBe(200);
    expect(((await again.json()) as OperationOutcome).issue?.[0].details?.text).toMatch(/^already erased/);
    await pg.query(
      `update resource_versions set content = '{"resourceType":"Observation"}' where id = (select resource_version_id from provenances where id = $1)`,
      [theirs[0]],
    );
    expect((await verify(theirs[0])).status).toBe('tampered');
    // The audit command says which record, and exits 1.
    const audit = await promisify(execFile)('npx', ['tsx', 'scripts/audit.ts'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: stack.config.databaseUrl, NODE_ENV: 'test' },
    }).then(
      () => ({ code: 0, stdout: '' }),
      (error: { code: number; stdout: string }) => error,
    );
    expect(audit.code).toBe(1);
    expect(audit.stdout).toMatch(/resource_versions id=\d+: holds content although the patient was erased/);
    await pg.query(
      `update resource_versions set content = null where id = (select resource_version_id from provenances where id = $1)`,
      [theirs[0]],
    );
    expect((await verify(theirs[0])).status).toBe('key-destroyed');
  }, 120_000);

  it('refuses a bad erasure request with an OperationOutcome naming the element', async () => {
    const cases: [Record<string, string>, unknown, number, string | undefined][] = [
      [
        { ...ADMIN, authorization: 'Bearer wrong' },
        { source: 'demo', patient: 'Patient/tp-1' },
        401,
        undefined,
      ],
      [ADMIN, { source: 'demo', patient: 'Observation/x' }, 400, 'patient'],
      [ADMIN, { patient: 'Patient/tp-1' }, 400, 'source'],
      [
        ADMIN,
        {
          resourceType: 'Parameters',
          parameter: [{ name: 'source', valueString: 'demo' }, { name: 'patient' }],
        },
        400,
        'Parameters.parameter[1].value',
      ],
      [ADMIN, { source: 'demo', patient: 'Patient/nobody' }, 404, undefined],
    ];
    for (const [headers, body, status, expression] of cases) {
      const response = await fetch(`${base}/admin/patients/$erase`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(status);
      const outcome = (await response.json()) as OperationOutcome;
      expect(outcome.resourceType).toBe('OperationOutcome');
      if (expression) expect(outcome.issue?.[0].expression).toEqual([expression]);
    }
    // The untouched patient still verifies.
    const id = byPatient.get('Patient/tp-1')?.[0] ?? '';
    expect((await verify(id)).status).toBe('verified');
  });

  it('answers pending for a Provenance not yet in an anchored checkpoint', async () => {
    await stack.startWorker();
    // The anchor schedule may run once as the worker starts (it anchors the erasure leaf); after
    // that, nothing closes a batch for an hour, and one leaf is far from the batch size.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const response = await post({
      resourceType: 'Observation',
      id: 'to-late',
      status: 'final',
      code: { text: 'late' },
      subject: { reference: 'Patient/tp-3' },
    });
    expect(response.status).toBe(200);
    const id = await eventually(async () => {
      const row = await store.db
        .selectFrom('ledger_events')
        .select('event_id')
        .where('resource_id', '=', 'to-late')
        .executeTakeFirst();
      return row?.event_id;
    }, 20_000);
    const answer = await verify(id);
    expect(answer.status).toBe('pending');
    expect(answer.proof).toMatchObject({ status: 'pending', leafIndex: null });
    expect(treeSize).toBe(EVENTS);

    // Nothing more is stored about an erased patient: a new resource about them is a dead letter.
    const before = await store.deadLetters.count('demo');
    const late = await post({
      resourceType: 'Observation',
      id: 'to-after-erasure',
      status: 'final',
      code: { text: 'after erasure' },
      subject: { reference: 'Patient/tp-2' },
    });
    expect(late.status).toBe(200);
    await eventually(
      async () => ((await store.deadLetters.count('demo')) > before ? true : undefined),
      20_000,
    );
    const letter = await store.db
      .selectFrom('dead_letters')
      .selectAll()
      .orderBy('id', 'desc')
      .executeTakeFirstOrThrow();
    expect(letter.reason_code).toBe('patient-erased');
    expect(letter.raw).toBeNull();
    const notification = await store.db
      .selectFrom('inbox')
      .select(['body', 'status'])
      .where('id', '=', letter.inbox_id ?? '0')
      .executeTakeFirstOrThrow();
    expect(notification).toEqual({ body: Buffer.alloc(0), status: 'dead-letter' });
    const stored = await store.db
      .selectFrom('resource_versions')
      .select('id')
      .where('resource_id', '=', 'to-after-erasure')
      .execute();
    expect(stored).toEqual([]);
  }, 60_000);

  /** The columns of the four tables, with the SQL type to cast a changed value to. */
  async function columnsOf(): Promise<Column[]> {
    const { rows } = await pg.query<{ table_name: Table; column_name: string; data_type: string }>(
      `select table_name, column_name, data_type from information_schema.columns
       where table_schema = 'public' and table_name = any($1) order by table_name, ordinal_position`,
      [TABLES],
    );
    const types: Record<string, string> = {
      bigint: 'bigint',
      integer: 'integer',
      smallint: 'smallint',
      text: 'text',
      uuid: 'uuid',
      boolean: 'boolean',
      bytea: 'bytea',
      jsonb: 'jsonb',
      'timestamp with time zone': 'timestamptz',
    };
    return rows
      .filter((r) => !UNCOMMITTED.has(`${r.table_name}.${r.column_name}`))
      .map((r) => {
        const type = types[r.data_type];
        if (!type) throw new Error(`no change defined for ${r.data_type} (${r.table_name}.${r.column_name})`);
        return { table: r.table_name, name: r.column_name, type };
      });
  }

  /**
   * The Provenance whose $verify must see a change to this row: the one of the version, the
   * Provenance itself, the event's, or for a node, one whose leaf or inclusion proof uses it.
   */
  async function affectedProvenance(
    table: Table,
    row: Record<string, unknown>,
    column: string,
  ): Promise<string | undefined> {
    const original = row.row as Record<string, unknown>;
    switch (table) {
      case 'resource_versions': {
        const found = await pg.query<{ id: string }>(
          'select id from provenances where resource_version_id = $1',
          [original.id],
        );
        return found.rows[0]?.id;
      }
      case 'provenances':
        return String(original.id);
      case 'ledger_events':
        return original.kind === 'provenance' ? String(original.event_id) : undefined;
      case 'ledger_nodes': {
        const key = { level: Number(original.level), index: Number(original.idx) };
        const users: number[] = [];
        for (let leaf = 0; leaf < treeSize; leaf++) {
          const uses =
            (key.level === 0 && key.index === leaf) ||
            inclusionProofKeys(leaf, treeSize).some((k) => nodeKeyId(k) === nodeKeyId(key));
          if (uses) users.push(leaf);
        }
        void column;
        if (users.length === 0) return undefined; // the root of a power-of-two tree: only the audit sees it
        const found = await pg.query<{ event_id: string }>(
          `select event_id from ledger_events where leaf_index = $1 and kind = 'provenance'`,
          [users[0]],
        );
        return found.rows[0]?.event_id;
      }
    }
  }
});

/** A different value of the same type: one character, bit, number, instant or JSON leaf changed. */
function mutate(column: Column, value: unknown, random: () => number): unknown {
  /** What to_jsonb gives for every column type but jsonb: a scalar. */
  const scalar = value as string | number | boolean | null;
  const int = (max: number) => 1 + Math.floor(random() * max);
  switch (column.type) {
    case 'bigint':
    case 'integer':
    case 'smallint':
      if (value === null) return int(5);
      return Number(value) + (random() < 0.5 ? -int(3) : int(3));
    case 'boolean':
      return value === null ? true : !value;
    case 'timestamptz': {
      const shift = (random() < 0.5 ? -1 : 1) * int(10_000_000) * 1000;
      return new Date((scalar === null ? Date.now() : Date.parse(String(scalar))) + shift).toISOString();
    }
    case 'bytea': {
      const bytes = Buffer.from(String(scalar ?? '\\x00').replace(/^\\x/, ''), 'hex');
      const bit = Math.floor(random() * bytes.length * 8);
      bytes[bit >> 3] ^= 1 << (bit & 7);
      return `\\x${bytes.toString('hex')}`;
    }
    case 'uuid': {
      const text = String(scalar ?? randomUUID());
      const positions = [...text].flatMap((c, i) => (c === '-' ? [] : [i]));
      const at = positions[Math.floor(random() * positions.length)];
      const next = ((parseInt(text[at], 16) + int(15)) % 16).toString(16);
      return text.slice(0, at) + next + text.slice(at + 1);
    }
    case 'text':
      return changeText(scalar === null ? '' : String(scalar), random);
    case 'jsonb':
      return JSON.stringify(changeJson(value, random));
    default:
      throw new Error(`no change for ${column.type}`);
  }
}

function changeText(text: string, random: () => number): string {
  if (text.length === 0) return 'x';
  const at = Math.floor(random() * text.length);
  const roll = random();
  if (roll < 0.2) return text.slice(0, at) + text.slice(at + 1); // drop a character
  if (roll < 0.4) return text.slice(0, at) + 'z' + text.slice(at); // insert one
  const code = text.charCodeAt(at);
  const replaced = String.fromCharCode(code === 0x7e ? 0x21 : code < 0x20 ? 0x41 : code + 1);
  return text.slice(0, at) + replaced + text.slice(at + 1);
}

/** Changes one leaf (string, number, boolean) of a JSON document, or replaces a null document. */
function changeJson(value: unknown, random: () => number): unknown {
  if (value === null || typeof value !== 'object') return { resourceType: 'Basic' };
  const copy = structuredClone(value) as Record<string, unknown>;
  const leaves: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node))
      node.forEach((child, i) => (isLeaf(child) ? leaves.push([node, i]) : walk(child)));
    else if (node && typeof node === 'object') {
      for (const [k, child] of Object.entries(node)) {
        if (isLeaf(child)) leaves.push([node as Record<string, unknown>, k]);
        else walk(child);
      }
    }
  };
  walk(copy);
  if (leaves.length === 0) return { ...copy, tampered: true };
  const [parent, key] = leaves[Math.floor(random() * leaves.length)];
  const current = (parent as Record<string | number, unknown>)[key];
  (parent as Record<string | number, unknown>)[key] =
    typeof current === 'string'
      ? changeText(current, random)
      : typeof current === 'number'
        ? current + 1
        : current === null
          ? 'x'
          : !current;
  return copy;
}

function isLeaf(value: unknown): boolean {
  return value === null || typeof value !== 'object';
}

function toKeyValue(value: unknown): string {
  return String(value);
}

/** The original value as a parameter for its column (to_jsonb gave JSON; bytea as \x-hex). */
function toParameter(column: Column, value: unknown): unknown {
  if (value === null) return null;
  if (column.type === 'jsonb') return JSON.stringify(value);
  return value;
}
