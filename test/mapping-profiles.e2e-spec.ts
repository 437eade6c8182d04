import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Observation, OperationOutcome, Provenance } from '@medplum/fhirtypes';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { registerMappingProfiles } from '../apps/bridge/src/mappings/mapping-profiles.loader';
import { eventually, TestStack } from './support/test-apps';

const ADMIN_KEY = 'e2e-admin-key-mapping-0123456789';
const ADMIN = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
const TOKEN = 'mapping-sender-secret-0123456789';
const LOCAL_LAB = 'urn:oid:1.2.840.114350.1.13.99999.1.7.2.768282';
const LOINC = 'http://loinc.org';

/** A lab profile: local codes to LOINC (unmapped codes make the resource invalid), UCUM units, a tag. */
const labProfile = (codes: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  id: 'st-mary-lab',
  name: 'St Mary lab codes to LOINC',
  steps: [
    {
      kind: 'conceptMap',
      elements: ['Observation.code'],
      conceptMap: {
        resourceType: 'ConceptMap',
        url: 'urn:fhir-trail:conceptmap:st-mary-lab',
        status: 'active',
        group: [
          {
            source: LOCAL_LAB,
            target: LOINC,
            element: Object.entries(codes).map(([code, loinc]) => ({
              code,
              target: [{ code: loinc, equivalence: 'equivalent' }],
            })),
          },
        ],
      },
      unmapped: { mode: 'fail' },
    },
    { kind: 'unitNormalisation' },
    { kind: 'metaStamp', tags: [{ system: 'urn:fhir-trail:tag', code: 'normalised' }] },
  ],
  ...extra,
});

const observation = (id: string, localCode: string): Observation => ({
  resourceType: 'Observation',
  id,
  meta: { versionId: '1' },
  status: 'final',
  code: { coding: [{ system: LOCAL_LAB, code: localCode }], text: 'lab' },
  subject: { reference: 'Patient/p1' },
  valueQuantity: { value: 4.1, unit: 'mmol/l' },
});

describe('mapping profiles: admin API, worker, dead letters and replay', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  let profilesDir: string;

  beforeAll(async () => {
    profilesDir = await mkdtemp(join(tmpdir(), 'fhir-trail-profiles-'));
    await writeFile(join(profilesDir, 'st-mary-lab.json'), JSON.stringify(labProfile({ GLU: '2345-7' })));
    stack = await TestStack.create('mapping_profiles', {
      ADMIN_API_KEY: ADMIN_KEY,
      MAPPING_PROFILES_DIR: profilesDir,
    });
    base = await stack.startBridge();
    store = stack.bridge!.get<Store>(STORE);
    await stack.startWorker();
    for (const [id, mappingProfile] of [
      ['st-mary', 'st-mary-lab'],
      ['plain', undefined],
      ['awaiting', 'not-yet-written'],
      ['rewriting', 'prefix-ids'],
    ] as const) {
      await store.sources.upsert({
        id,
        name: id,
        organisation: { display: id },
        token: TOKEN,
        senderProfile: { counter: 'none', deleteStyle: 'hapi' },
        mappingProfile,
      });
    }
  });

  afterAll(async () => {
    await stack.close();
    await rm(profilesDir, { recursive: true, force: true });
  });

  const admin = (method: string, path: string, body?: unknown) =>
    fetch(`${base}${path}`, {
      method,
      headers: ADMIN,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const send = async (sourceId: string, resource: unknown) => {
    const response = await fetch(`${base}/hooks/${sourceId}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(resource),
    });
    expect(response.status).toBe(200);
    const inboxId = ((await response.json()) as OperationOutcome).id!;
    await eventually(async () => {
      const found = await store.inbox.findStatus(inboxId);
      return found && found.status !== 'received' ? found.status : undefined;
    });
    return inboxId;
  };
  const provenancesOf = (sourceId: string, resourceId: string) =>
    store.db
      .selectFrom('resource_versions as v')
      .innerJoin('provenances as p', 'p.resource_version_id', 'v.id')
      .select(['v.version', 'v.content', 'p.content as provenance'])
      .where('v.source_id', '=', sourceId)
      .where('v.resource_id', '=', resourceId)
      .orderBy('v.version')
      .execute();

  it('loads the profile file at first start as version 1, active', async () => {
    const response = await admin('GET', '/admin/mappings');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      profiles: [
        expect.objectContaining({
          id: 'st-mary-lab',
          name: 'St Mary lab codes to LOINC',
          activeVersion: 1,
          latestVersion: 1,
          versions: 1,
        }),
      ],
    });
    const one = (await (await admin('GET', '/admin/mappings/st-mary-lab')).json()) as {
      versions: { origin: string }[];
      active: { version: number; document: { steps: unknown[] } };
    };
    expect(one.versions[0].origin).toBe('file:st-mary-lab.json');
    expect(one.active.version).toBe(1);
    expect(one.active.document.steps).toHaveLength(3);
  });

  it('refuses a bad profile with 400 naming the element, a stale version with 409, and a missing key with 401', async () => {
    const bad = await admin('POST', '/admin/mappings', { id: 'broken', steps: [{ kind: 'teleport' }] });
    expect(bad.status).toBe(400);
    const outcome = (await bad.json()) as OperationOutcome;
    expect(outcome.issue[0].expression?.[0]).toMatch(/steps\[0\]/);

    const stale = await admin('POST', '/admin/mappings', { ...labProfile({ GLU: '2345-7' }), version: 1 });
    expect(stale.status).toBe(409);
    expect(((await stale.json()) as OperationOutcome).issue[0].details?.text).toMatch(/next version .* 2/);

    const reserved = await admin('POST', '/admin/mappings', { id: 'identity', steps: [] });
    expect(reserved.status).toBe(400);

    const anonymous = await fetch(`${base}/admin/mappings`);
    expect(anonymous.status).toBe(401);
    expect(await admin('GET', '/admin/mappings/nope')).toHaveProperty('status', 404);
  });

  it('stores what the active profile maps, its Provenance naming the profile version', async () => {
    await send('st-mary', observation('glucose-1', 'GLU'));
    const [stored] = await provenancesOf('st-mary', 'glucose-1');
    const content = stored.content as unknown as Observation;
    expect(content.code.coding).toEqual([expect.objectContaining({ system: LOINC, code: '2345-7' })]);
    expect(content.valueQuantity).toMatchObject({ system: 'http://unitsofmeasure.org', code: 'mmol/L' });
    expect(content.meta?.tag).toEqual([expect.objectContaining({ code: 'normalised' })]);
    expect((stored.provenance as unknown as Provenance).policy).toEqual([
      'urn:fhir-trail:mapping-profile:st-mary-lab|1',
    ]);
  });

  it('keeps sources without a profile as they were, under the identity profile', async () => {
    await send('plain', observation('plain-1', 'GLU'));
    const [stored] = await provenancesOf('plain', 'plain-1');
    expect((stored.content as unknown as Observation).code.coding?.[0].system).toBe(LOCAL_LAB);
    expect((stored.provenance as unknown as Provenance).policy).toEqual([
      'urn:fhir-trail:mapping-profile:identity|0',
    ]);
  });

  it('dry-runs a version on a Bundle: output, readable diff, outcome, summary', async () => {
    const response = await fetch(`${base}/admin/mappings/st-mary-lab/$transform`, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ resource: observation('a', 'GLU') }, { resource: observation('b', 'K') }],
      }),
    });
    expect(response.status).toBe(200);
    const run = (await response.json()) as {
      profile: { id: string; version: number; active: boolean };
      summary: Record<string, number>;
      results: {
        location: string;
        status: string;
        diff: string[];
        output?: Observation;
        outcome: OperationOutcome;
      }[];
    };
    expect(run.profile).toEqual({ id: 'st-mary-lab', version: 1, active: true });
    expect(run.summary).toEqual({ resources: 2, transformed: 1, unchanged: 0, invalid: 1 });
    expect(run.results[0].location).toBe('Bundle.entry[0].resource');
    expect(run.results[0].diff).toContain(`~ Observation.code.coding[0].system: "${LOCAL_LAB}" → "${LOINC}"`);
    expect(run.results[1].status).toBe('invalid');
    expect(run.results[1].outcome.issue).toEqual(
      expect.arrayContaining([expect.objectContaining({ severity: 'error', code: 'code-invalid' })]),
    );
    // Nothing stored by a dry run.
    expect(await provenancesOf('dry-run', 'a')).toEqual([]);

    const notJson = await fetch(`${base}/admin/mappings/st-mary-lab/$transform`, {
      method: 'POST',
      headers: ADMIN,
      body: '{"resourceType": ',
    });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as OperationOutcome).issue[0].details?.text).toMatch(/not valid JSON/);
  });

  it('dead-letters what the profile refuses, shows it, and replays it after a profile fix', async () => {
    const since = new Date(Date.now() - 1_000).toISOString();
    const inboxId = await send('st-mary', observation('potassium-1', 'K'));
    expect(await provenancesOf('st-mary', 'potassium-1')).toEqual([]);
    expect((await store.inbox.findStatus(inboxId))?.status).toBe('dead-letter');
    expect(await store.deadLetters.count('st-mary')).toBe(1);

    const list = await admin(
      'GET',
      `/admin/dead-letters?source=st-mary&reason=invalid-resource&issueCode=code-invalid&since=${encodeURIComponent(since)}`,
    );
    expect(list.status).toBe(200);
    const { deadLetters } = (await list.json()) as {
      deadLetters: {
        id: string;
        inboxId: string;
        mappingProfile: string;
        replayable: boolean;
        status: string;
      }[];
    };
    expect(deadLetters).toEqual([
      expect.objectContaining({ inboxId, mappingProfile: 'st-mary-lab|1', replayable: true, status: 'open' }),
    ]);
    const id = deadLetters[0].id;
    // The filters really filter.
    const none = (await (await admin('GET', '/admin/dead-letters?source=plain')).json()) as {
      deadLetters: [];
    };
    expect(none.deadLetters).toEqual([]);
    const later = (await (
      await admin(
        'GET',
        `/admin/dead-letters?source=st-mary&since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`,
      )
    ).json()) as { deadLetters: [] };
    expect(later.deadLetters).toEqual([]);
    expect((await admin('GET', '/admin/dead-letters?since=yesterday')).status).toBe(400);

    const detail = (await (await admin('GET', `/admin/dead-letters/${id}`)).json()) as {
      input: Observation;
      raw: { text: string };
      outcome: OperationOutcome;
    };
    expect(detail.input.code.coding?.[0]).toEqual({ system: LOCAL_LAB, code: 'K' });
    expect(JSON.parse(detail.raw.text)).toMatchObject({ id: 'potassium-1' });
    expect(detail.outcome.issue[0]).toMatchObject({ severity: 'error', code: 'code-invalid' });

    // A replay before the fix fails again: still open, with this attempt's outcome.
    expect((await admin('POST', `/admin/dead-letters/${id}/$replay`)).status).toBe(202);
    await eventually(async () => {
      const letter = await store.deadLetters.find(id);
      return letter && letter.replayCount === 1 ? letter : undefined;
    });
    expect((await store.deadLetters.find(id))?.status).toBe('open');

    // The fix: version 2 knows K; activate it, replay everything open for the source.
    const created = await admin('POST', '/admin/mappings', labProfile({ GLU: '2345-7', K: '2823-3' }));
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/admin/mappings/st-mary-lab/versions/2');
    expect(await created.json()).toMatchObject({ id: 'st-mary-lab', version: 2, active: false });
    const activated = await admin('POST', '/admin/mappings/st-mary-lab/$activate', { version: 2 });
    expect(activated.status).toBe(200);
    expect(await activated.json()).toMatchObject({ version: 2, active: true });

    const replay = await admin('POST', '/admin/dead-letters/$replay?source=st-mary&reason=invalid-resource');
    expect(replay.status).toBe(202);
    expect(await replay.json()).toEqual({ queued: 1, deadLetterIds: [id] });
    const replayed = await eventually(async () => {
      const letter = await store.deadLetters.find(id);
      return letter?.status === 'replayed' ? letter : undefined;
    });
    expect(replayed.mappingProfile).toBe('st-mary-lab|2');
    expect(await store.deadLetters.count('st-mary')).toBe(0);
    // The notification had nothing else: it is done now.
    expect((await store.inbox.findStatus(inboxId))?.status).toBe('done');
    const [stored] = await provenancesOf('st-mary', 'potassium-1');
    expect((stored.content as unknown as Observation).code.coding?.[0]).toMatchObject({
      system: LOINC,
      code: '2823-3',
    });
    expect((stored.provenance as unknown as Provenance).policy).toEqual([
      'urn:fhir-trail:mapping-profile:st-mary-lab|2',
    ]);
    const ledger = await store.db
      .selectFrom('ledger_events')
      .select('event_id')
      .where('event_id', '=', (stored.provenance as unknown as Provenance).id!)
      .execute();
    expect(ledger).toHaveLength(1);

    // Replayed once only.
    expect((await admin('POST', `/admin/dead-letters/${id}/$replay`)).status).toBe(409);
    expect(await (await admin('POST', '/admin/dead-letters/$replay?source=st-mary')).json()).toEqual({
      queued: 0,
      deadLetterIds: [],
    });
  });

  it('dead-letters resources of a source whose profile has no active version, and replays them once it has', async () => {
    await send('awaiting', observation('awaiting-1', 'GLU'));
    const [letter] = (
      (await (await admin('GET', '/admin/dead-letters?source=awaiting')).json()) as {
        deadLetters: { id: string; reasonCode: string; outcome: OperationOutcome }[];
      }
    ).deadLetters;
    expect(letter.reasonCode).toBe('mapping-profile-unavailable');
    expect(letter.outcome.issue[0].details?.text).toMatch(/no active version/);

    const created = await admin('POST', '/admin/mappings?activate=true', {
      ...labProfile({ GLU: '2345-7' }),
      id: 'not-yet-written',
    });
    expect(created.status).toBe(201);
    expect((await admin('POST', `/admin/dead-letters/${letter.id}/$replay`)).status).toBe(202);
    await eventually(async () =>
      (await store.deadLetters.find(letter.id))?.status === 'replayed' ? true : undefined,
    );
    const [stored] = await provenancesOf('awaiting', 'awaiting-1');
    expect((stored.provenance as unknown as Provenance).policy).toEqual([
      'urn:fhir-trail:mapping-profile:not-yet-written|1',
    ]);
  });

  it('stores under the rewritten id, and a delete reaches the same rewritten id', async () => {
    expect(
      (
        await admin('POST', '/admin/mappings?activate=true', {
          id: 'prefix-ids',
          steps: [{ kind: 'referenceRewrite' }],
        })
      ).status,
    ).toBe(201);
    const hook = (method: string, body?: unknown) =>
      fetch(`${base}/hooks/rewriting/Observation/r1`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/fhir+json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    for (const [method, body] of [
      ['PUT', observation('r1', 'GLU')],
      ['DELETE', undefined],
    ] as const) {
      const response = await hook(method, body);
      expect(response.status).toBe(200);
      const inboxId = ((await response.json()) as OperationOutcome).id!;
      await eventually(async () => {
        const found = await store.inbox.findStatus(inboxId);
        return found && found.status !== 'received' ? found.status : undefined;
      });
    }
    const versions = await provenancesOf('rewriting', 'rewriting-r1');
    expect(versions.map((v) => [v.version, v.content === null])).toEqual([
      [1, false],
      [2, true],
    ]);
    expect((versions[1].provenance as unknown as Provenance).policy).toEqual([
      'urn:fhir-trail:mapping-profile:prefix-ids|1',
    ]);
    expect(await provenancesOf('rewriting', 'r1')).toEqual([]);
  });

  it('adds a changed profile file as a new version on the next start without activating it', async () => {
    expect(await registerMappingProfiles(stack.config)).toEqual([
      { file: 'st-mary-lab.json', profile: 'st-mary-lab', version: 1, outcome: 'unchanged' },
    ]);
    await writeFile(join(profilesDir, 'st-mary-lab.json'), JSON.stringify(labProfile({ GLU: '2339-0' })));
    expect(await registerMappingProfiles(stack.config)).toEqual([
      { file: 'st-mary-lab.json', profile: 'st-mary-lab', version: 3, outcome: 'created' },
    ]);
    expect(await store.mappingProfiles.activeVersion('st-mary-lab')).toBe(2);
  });

  it('documents the routes in OpenAPI', async () => {
    const paths = (
      (await (await fetch(`${base}/docs/openapi.json`)).json()) as { paths: Record<string, unknown> }
    ).paths;
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining([
        '/admin/mappings',
        '/admin/mappings/{id}',
        '/admin/mappings/{id}/versions/{version}',
        '/admin/mappings/{id}/$activate',
        '/admin/mappings/{id}/$transform',
        '/admin/dead-letters',
        '/admin/dead-letters/{id}',
        '/admin/dead-letters/$replay',
        '/admin/dead-letters/{id}/$replay',
      ]),
    );
  });

  it('refuses to replay a dead letter that holds no resource', async () => {
    const refused = await fetch(`${base}/hooks/plain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/fhir+json' },
      body: '{"resourceType":"Bundle","type":"searchset"}',
    });
    expect(refused.status).toBe(400);
    const { deadLetters } = (await (await admin('GET', '/admin/dead-letters?source=plain')).json()) as {
      deadLetters: { id: string; replayable: boolean }[];
    };
    expect(deadLetters).toEqual([expect.objectContaining({ replayable: false })]);
    const replay = await admin('POST', `/admin/dead-letters/${deadLetters[0].id}/$replay`);
    expect(replay.status).toBe(409);
    expect(((await replay.json()) as OperationOutcome).issue[0].details?.text).toMatch(
      /no resource to replay/,
    );
    expect((await admin('GET', '/admin/dead-letters/999999')).status).toBe(404);
  });
});
