import { randomUUID } from 'node:crypto';
import { patientPseudonym } from '@fhir-trail/fhir-mapping';
import {
  type LedgerEventRecord,
  accessEvent,
  appendLeaves,
  consentEvent,
  eventLeafEntry,
  leafHash,
  loadFrontier,
  sharingEvent,
  verifyInclusion,
} from '@fhir-trail/ledger';
import { Store } from '@fhir-trail/store';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database';
import { LedgerAuditor } from './ledger-audit';

const MASTER_KEY = Buffer.alloc(32, 5);
const BASE = { source: 'ehr', actor: 'bridge:test' };

describe('the ledger auditor on PostgreSQL, over disclosure and consent events', () => {
  let database: TestDatabase;
  let store: Store;
  const ids: Record<'sharing' | 'access' | 'consent', string> = {
    sharing: randomUUID(),
    access: randomUUID(),
    consent: randomUUID(),
  };

  beforeAll(async () => {
    database = await createTestDatabase('ledger_audit');
    store = await Store.open({ databaseUrl: database.url, masterKey: MASTER_KEY, migrate: true });
    const key = await store.patientKeys.getOrCreate('ehr', 'Patient/a');
    await store.patientKeys.getOrCreate('ehr', 'Patient/b');
    const patient = patientPseudonym(key, 'Patient/a');
    const recorded = new Date('2026-11-28T10:00:00.000Z');
    const events: [LedgerEventRecord, string][] = [
      [
        sharingEvent({
          ...BASE,
          eventId: ids.sharing,
          recorded,
          subject: 'Observation',
          recipient: 'org:clinic-b',
          purpose: 'TREAT',
          consentKey: 'registry:7',
          decision: 'delivered',
          patient,
        }),
        'obs-1',
      ],
      [
        accessEvent({
          ...BASE,
          eventId: ids.access,
          recorded,
          subject: 'Observation',
          recipient: 'org:clinic-c',
          purpose: 'HPAYMT',
          decision: 'denied',
          patient,
        }),
        'obs-1',
      ],
      [
        consentEvent({
          ...BASE,
          eventId: ids.consent,
          recorded,
          patient,
          consentKey: 'registry:7',
          decision: 'granted',
        }),
        'consent-1',
      ],
      // As a writer that knows no key scope logs it: checked except for its keyed fields.
      [
        consentEvent({
          ...BASE,
          eventId: randomUUID(),
          recorded,
          patient,
          consentKey: 'registry:8',
          decision: 'revoked',
          resourceDigest: `0x${'cd'.repeat(32)}`,
        }),
        'consent-2',
      ],
    ];
    await store
      .transaction(async (trx) => {
        for (const [record, resourceId] of events) {
          const entry = eventLeafEntry(record);
          await store.ledger.insertEvent(trx, {
            eventId: record.eventId,
            kind: record.kind,
            sourceId: 'ehr',
            resourceType: record.subject,
            resourceId,
            record: entry.toString('utf8'),
            leafHash: leafHash(entry),
            ...(resourceId === 'consent-2' ? {} : { keyScope: 'Patient/a', createdAt: recorded }),
          });
        }
        // Sequence them as the anchorer does, and record a checkpoint of the head.
        const head = await store.ledger.lockHead(trx);
        const pending = await store.ledger.unsequenced(trx, 100);
        const reader = {
          getNodes: (keys: Parameters<Store['ledger']['getNodes']>[0]) => store.ledger.getNodes(keys, trx),
        };
        const appended = appendLeaves(
          head.treeSize,
          await loadFrontier(reader, head.treeSize),
          pending.map((p) => p.leafHash),
        );
        await store.ledger.appendSequenced(
          trx,
          pending.map((p, i) => ({ id: p.id, leafIndex: head.treeSize + i })),
          appended.nodes,
          { treeSize: appended.treeSize, root: appended.root },
        );
        return appended;
      })
      .then((appended) =>
        store.ledger.insertCheckpoint({
          treeSize: appended.treeSize,
          root: appended.root,
          previousSize: 0,
          previousRoot: Buffer.alloc(32),
          manifestHash: Buffer.alloc(32, 1),
          chainId: '31337',
          contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
          txHash: `0x${'aa'.repeat(32)}`,
          blockNumber: 3,
          blockHash: `0x${'bb'.repeat(32)}`,
          logIndex: 0,
          gasUsed: 30_000,
        }),
      );
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  it('verifies every kind: record, leaf, pseudonym, nodes, head and checkpoint', async () => {
    const report = await new LedgerAuditor(store).auditAll();
    expect(report.mismatches).toEqual([]);
    expect(report).toMatchObject({ events: 4, treeSize: 4 });
    expect(report.statuses).toEqual({ verified: 4, tampered: 0, 'key-destroyed': 0, pending: 0 });
    const sharing = await new LedgerAuditor(store).verifyEvent(ids.sharing);
    expect(sharing).toMatchObject({ kind: 'sharing', status: 'verified', leafIndex: 0, mismatches: [] });
    expect(
      verifyInclusion(sharing!.leafHash, 0, 4, sharing!.inclusionPath ?? [], sharing!.checkpoint!.root),
    ).toBe(true);
  });

  /** Runs `sql` (with `$1` bound), returns nothing. */
  const run = (statement: string, ...parameters: unknown[]) =>
    sql
      .raw(statement.replace(/\$(\d)/g, (_m, i: string) => `'${String(parameters[Number(i) - 1])}'`))
      .execute(store.db);
  const rewriteDecision = (from: string, to: string) =>
    run(
      `update ledger_events set record = replace(record, '"${from}"', '"${to}"'),
         leaf_hash = sha256('\\x00'::bytea || convert_to(replace(record, '"${from}"', '"${to}"'), 'UTF8'))
       where event_id = $1`,
      ids.sharing,
    );

  it.each([
    [
      'a decision rewritten together with its leaf hash',
      () => rewriteDecision('delivered', 'denied'),
      () => rewriteDecision('denied', 'delivered'),
      { table: 'ledger_nodes', row: 'level=0,idx=0' },
    ],
    [
      'an event moved to another patient key',
      () => run(`update ledger_events set key_scope = 'Patient/b' where event_id = $1`, ids.access),
      () => run(`update ledger_events set key_scope = 'Patient/a' where event_id = $1`, ids.access),
      { table: 'ledger_events', problem: 'the patient pseudonym does not match key_scope' },
    ],
    [
      'a key destroyed without an erasure event',
      () =>
        run(
          `update patient_keys set patient_ref = 'Patient/b-', wrapped_key = null where patient_ref = 'Patient/b'`,
        ),
      () => run(`delete from patient_keys where patient_ref = 'Patient/b-'`),
      { table: 'patient_keys', problem: 'a patient key was destroyed without an erasure event in the log' },
    ],
  ])('reports %s, naming the record', async (_what, apply, restore, expected) => {
    await apply();
    try {
      const report = await new LedgerAuditor(store).auditAll();
      expect(report.mismatches).toEqual(expect.arrayContaining([expect.objectContaining(expected)]));
      expect(report.statuses.tampered).toBeLessThanOrEqual(1);
    } finally {
      await restore();
    }
    expect((await new LedgerAuditor(store).auditAll()).mismatches).toEqual([]);
  });
});
