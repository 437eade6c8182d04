import type { OperationOutcome } from '@medplum/fhirtypes';
import { DEV_ADMIN_API_KEY } from '@fhir-trail/config';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { eventually, TestStack } from './support/test-apps';

const DEMO = { authorization: 'Bearer demo-token', 'content-type': 'application/fhir+json' };
const ADMIN = { authorization: `Bearer ${DEV_ADMIN_API_KEY}`, 'content-type': 'application/fhir+json' };

interface DeadLetterView {
  readonly id: string;
  readonly replayable: boolean;
  readonly input: Record<string, unknown> | null;
  readonly inboxId: string | null;
}

/**
 * A dead letter keeps the resource as the source sent it, for a replay after a profile fix. When the
 * patient it is about is erased, that copy — and the raw notification it came in — must go too, and
 * it can no longer be replayed; dead letters about other patients keep theirs.
 */
describe('erasure reaches the inputs kept on dead letters', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;

  beforeAll(async () => {
    stack = await TestStack.create('erasure-dead-letters');
    base = await stack.startBridge();
    await stack.startWorker();
    store = stack.bridge!.get<Store>(STORE);
  });

  afterAll(async () => {
    await stack?.close();
  });

  const post = (resource: Record<string, unknown>) =>
    fetch(`${base}/hooks/demo`, { method: 'POST', headers: DEMO, body: JSON.stringify(resource) });

  /** An Observation that fails validation (`valueQuantity.value` is not a number). */
  const invalidObservation = (id: string, patient: string) => ({
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { text: 'heart rate' },
    subject: { reference: patient },
    valueQuantity: { value: 'sixty', unit: '/min' },
  });

  async function deadLetterFor(inboxId: string): Promise<DeadLetterView> {
    return eventually(async () => {
      const response = await fetch(`${base}/admin/dead-letters?source=demo`, { headers: ADMIN });
      expect(response.status).toBe(200);
      const { deadLetters } = (await response.json()) as { deadLetters: DeadLetterView[] };
      const letter = deadLetters.find((l) => l.inboxId === inboxId);
      if (!letter) return undefined;
      const detail = await fetch(`${base}/admin/dead-letters/${letter.id}`, { headers: ADMIN });
      expect(detail.status).toBe(200);
      return (await detail.json()) as DeadLetterView;
    }, 20_000);
  }

  it('drops the erased patient’s dead-letter input and notification body, and refuses its replay', async () => {
    for (const patient of ['ed-1', 'ed-2']) {
      expect((await post({ resourceType: 'Patient', id: patient, active: true })).status).toBe(200);
    }
    const accepted: string[] = [];
    for (const [id, patient] of [
      ['ed-obs-1', 'Patient/ed-1'],
      ['ed-obs-2', 'Patient/ed-2'],
    ] as const) {
      const response = await post(invalidObservation(id, patient));
      expect(response.status).toBe(200);
      accepted.push(((await response.json()) as OperationOutcome).id!);
    }
    const [theirs, others] = await Promise.all(accepted.map(deadLetterFor));
    expect(theirs.input).toMatchObject({ id: 'ed-obs-1', subject: { reference: 'Patient/ed-1' } });
    expect(theirs.replayable).toBe(true);
    expect(others.input).toMatchObject({ id: 'ed-obs-2' });
    // The patient's key exists once their Patient resource is stored.
    await eventually(async () =>
      (await store.db
        .selectFrom('resource_versions')
        .select('id')
        .where('resource_id', '=', 'ed-1')
        .executeTakeFirst())
        ? true
        : undefined,
    );

    const erase = await fetch(`${base}/admin/patients/$erase`, {
      method: 'POST',
      headers: ADMIN,
      body: JSON.stringify({ source: 'demo', patient: 'Patient/ed-1' }),
    });
    expect(erase.status).toBe(200);
    const outcome = (await erase.json()) as OperationOutcome;
    expect(outcome.issue?.[0].details?.text).toContain('the inputs of 1 dead letter(s) deleted');

    const after = (await (
      await fetch(`${base}/admin/dead-letters/${theirs.id}`, { headers: ADMIN })
    ).json()) as DeadLetterView;
    expect(after.input).toBeNull();
    expect(after.replayable).toBe(false);
    const body = await store.db
      .selectFrom('inbox')
      .select('body')
      .where('id', '=', accepted[0])
      .executeTakeFirstOrThrow();
    expect(body.body).toEqual(Buffer.alloc(0));

    const replay = await fetch(`${base}/admin/dead-letters/${theirs.id}/$replay`, {
      method: 'POST',
      headers: ADMIN,
    });
    expect(replay.status).toBe(409);
    expect(((await replay.json()) as OperationOutcome).issue?.[0].code).toBe('conflict');

    // The other patient's dead letter is untouched.
    const kept = (await (
      await fetch(`${base}/admin/dead-letters/${others.id}`, { headers: ADMIN })
    ).json()) as DeadLetterView;
    expect(kept.input).toMatchObject({ id: 'ed-obs-2', subject: { reference: 'Patient/ed-2' } });
    const otherBody = await store.db
      .selectFrom('inbox')
      .select('body')
      .where('id', '=', accepted[1])
      .executeTakeFirstOrThrow();
    expect(otherBody.body.length).toBeGreaterThan(0);
  });
});
