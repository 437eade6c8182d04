import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Bundle, OperationOutcome, Provenance, Resource } from '@medplum/fhirtypes';
import { buildRecoveryBundle, isErrorIssue } from '@fhir-trail/fhir-mapping';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { fixturePath } from './fixtures/fixture-files';
import { eventually, TestStack } from './support/test-apps';

const TOKEN = 'corpus-mapping-secret-0123456789';
const POLICY = 'urn:fhir-trail:mapping-profile:corpus-normalise|1';
/** R4 examples travel in notifications of this many resources. */
const EXAMPLES_PER_NOTIFICATION = 25;

/**
 * The team's shared corpus when it is present (every Synthea bundle, every R4 example), else the
 * copies in test/fixtures (all R4 examples, a Synthea subset: one bundle of each style plus the
 * provider bundles). FHIR_CORPUS_DIR points elsewhere.
 */
const SHARED = process.env.FHIR_CORPUS_DIR ?? join(__dirname, '..', '..', 'shared', 'fhir-corpus');
const CORPUS =
  existsSync(join(SHARED, 'synthea')) && existsSync(join(SHARED, 'r4-examples')) ? SHARED : fixturePath('');

function jsonFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(at, entry.name));
      else if (entry.name.endsWith('.json')) found.push(join(at, entry.name));
    }
  };
  walk(dir);
  return found.sort();
}

const read = (file: string) => JSON.parse(readFileSync(file, 'utf8').replace(/^\uFEFF/, '')) as Resource;

/** One notification: a label and the resources it carries as full-resource events. */
const NOTIFICATIONS: { label: string; resources: Resource[] }[] = [
  ...jsonFiles(join(CORPUS, 'synthea')).map((file) => ({
    label: `synthea/${relative(join(CORPUS, 'synthea'), file)}`,
    resources: ((read(file) as Bundle).entry ?? []).flatMap((e) => (e.resource ? [e.resource] : [])),
  })),
  ...chunks(jsonFiles(join(CORPUS, 'r4-examples')), EXAMPLES_PER_NOTIFICATION).map((files, index) => ({
    label: `r4-examples part ${index + 1} (${files.length} files)`,
    resources: files.map(read),
  })),
];

/**
 * Done-when of mapping profiles: every Synthea bundle and every R4 example goes through the real
 * bridge and worker with a non-trivial profile (code rewrite, identifier system rewrites, unit
 * normalisation with a conversion, meta stamping): nothing crashes, and each resource ends stored
 * with a Provenance naming the profile version, or as a dead letter with a reason and its input.
 */
describe(`the Synthea and R4 example corpus through a mapping profile (${CORPUS === SHARED ? 'shared corpus' : 'fixtures'})`, () => {
  let stack: TestStack;
  let store: Store;
  const totals = { sent: 0, stored: 0, deadLetters: 0 };
  /** Why resources were dead-lettered (issue texts name paths, never values). */
  const reasons = new Map<string, number>();

  beforeAll(async () => {
    stack = await TestStack.create('mapping_corpus', { MAPPING_PROFILES_DIR: fixturePath('mapping') });
    await stack.startBridge();
    store = stack.bridge!.get<Store>(STORE);
    await store.sources.upsert({
      id: 'corpus',
      name: 'Corpus sender',
      organisation: { display: 'Corpus sender' },
      token: TOKEN,
      senderProfile: { counter: 'none' },
      mappingProfile: 'corpus-normalise',
    });
    await stack.startWorker();
  });

  afterAll(async () => {
    process.stdout.write(
      `mapping corpus: ${totals.sent} resources sent, ${totals.stored} stored with Provenance, ${totals.deadLetters} dead letters\n` +
        [...reasons].map(([reason, n]) => `  ${n} × ${reason}\n`).join(''),
    );
    await stack.close();
  });

  it('covers the corpus', () => {
    expect(NOTIFICATIONS.filter((n) => n.label.startsWith('synthea/')).length).toBeGreaterThanOrEqual(4);
    expect(NOTIFICATIONS.filter((n) => n.label.startsWith('r4-examples')).length).toBeGreaterThanOrEqual(
      Math.ceil(273 / EXAMPLES_PER_NOTIFICATION),
    );
  });

  it.each(NOTIFICATIONS.map((n) => [n.label, n] as const))('%s', async (_label, { resources }) => {
    const body = JSON.stringify(
      buildRecoveryBundle(
        'Subscription/corpus',
        resources.map((resource) => ({ resource })),
      ),
    );
    const response = await fetch(`${stack.baseUrl}/hooks/corpus`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/fhir+json' },
      body,
    });
    expect(response.status).toBe(200);
    const inboxId = ((await response.json()) as OperationOutcome).id!;
    await eventually(
      async () => {
        const found = await store.inbox.findStatus(inboxId);
        return found && found.status !== 'received' ? found.status : undefined;
      },
      60_000,
      'the worker to finish the notification',
    );

    const [versions, letters] = await Promise.all([
      store.db
        .selectFrom('resource_versions as v')
        .leftJoin('provenances as p', 'p.resource_version_id', 'v.id')
        .select(['v.resource_type', 'v.resource_id', 'v.content', 'p.content as provenance'])
        .where('v.inbox_id', '=', inboxId)
        .execute(),
      store.deadLetters.list({ inboxId }, 10_000),
    ]);
    // A Consent the bridge cannot interpret is stored as a version but has no effect, and is also
    // dead-lettered saying why (README "Consent"): those letters belong to stored versions.
    const consentLetters = letters.filter((l) => l.reasonCode === 'consent-not-interpreted');
    const resourceLetters = letters.filter((l) => l.reasonCode !== 'consent-not-interpreted');
    expect(consentLetters.length).toBeLessThanOrEqual(
      versions.filter((v) => v.resource_type === 'Consent').length,
    );
    for (const letter of consentLetters) {
      expect((letter.outcome as unknown as OperationOutcome).issue.some(isErrorIssue)).toBe(true);
    }
    // Every resource accounted for, once: stored or dead-lettered.
    expect(versions.length + resourceLetters.length).toBe(resources.length);
    const sent = new Set(resources.map((r) => `${r.resourceType}/${r.id}`));
    expect(new Set(versions.map((v) => `${v.resource_type}/${v.resource_id}`)).size).toBe(versions.length);
    for (const version of versions) {
      expect(sent.has(`${version.resource_type}/${version.resource_id}`)).toBe(true);
      expect((version.provenance as unknown as Provenance | null)?.policy).toEqual([POLICY]);
      // The profile's meta stamping is on everything it stored (a Bundle's resources are its entries').
      const content = version.content as unknown as Resource;
      const target =
        content.resourceType === 'Bundle' ? content.entry?.find((e) => e.resource)?.resource : content;
      if (!target) continue;
      const meta = target.meta;
      expect(meta?.source).toBe('urn:fhir-trail:source:corpus');
      expect(meta?.tag).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'normalised' })]));
    }
    for (const letter of resourceLetters) {
      expect(letter.reasonCode).toMatch(/^(invalid-resource|mapping-failed)$/);
      expect((letter.outcome as unknown as OperationOutcome).issue.some(isErrorIssue)).toBe(true);
      expect(letter.replayable).toBe(true);
      expect(letter.mappingProfile).toBe('corpus-normalise|1');
      const first = (letter.outcome as unknown as OperationOutcome).issue.find(isErrorIssue);
      const reason = `${letter.reasonCode}: ${first?.details?.text ?? first?.code ?? ''} (${first?.expression?.join(', ') ?? ''})`;
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    totals.sent += resources.length;
    totals.stored += versions.length;
    totals.deadLetters += resourceLetters.length;
  });

  it('applied every kind of rewrite the profile asks for', async () => {
    expect(totals.stored + totals.deadLetters).toBe(totals.sent);
    expect(totals.stored).toBeGreaterThan(0);
    const contents = await store.db
      .selectFrom('resource_versions')
      .select(['resource_type', 'content'])
      .where('source_id', '=', 'corpus')
      .where('resource_type', 'in', ['Observation', 'Patient'])
      .execute();
    const json = contents.map((c) => JSON.stringify(c.content));
    // Code rewrite: body weight 29463-7 -> 3141-9; no 29463-7 left in what was stored.
    expect(json.some((c) => c.includes('"code":"3141-9"'))).toBe(true);
    expect(json.some((c) => c.includes('"code":"29463-7"'))).toBe(false);
    // Identifier system rewrite: Synthea's identifier system is gone from what was stored.
    expect(json.some((c) => c.includes('urn:fhir-trail:id:synthea'))).toBe(true);
    expect(json.some((c) => c.includes('"system":"https://github.com/synthetichealth/synthea"'))).toBe(false);
    // Unit normalisation with a conversion: body height (8302-2) in metres, UCUM.
    const height = contents
      .map(
        (c) =>
          c.content as {
            code?: { coding?: { code?: string }[] };
            valueQuantity?: { code?: string; system?: string };
          },
      )
      .find((c) => c.code?.coding?.some((coding) => coding.code === '8302-2') && c.valueQuantity);
    expect(height?.valueQuantity).toMatchObject({ code: 'm', system: 'http://unitsofmeasure.org' });
  });
});

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
