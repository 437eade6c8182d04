import type { Observation, OperationOutcome, Patient, Resource, Subscription } from '@medplum/fhirtypes';
import { getQueueToken } from '@nestjs/bullmq';
import { type IngestJob, QUEUES } from '@fhir-trail/jobs';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { FhirSourceSimulator, type SimulatedShape } from './support/fhir-source-simulator';
import { eventually, TestStack } from './support/test-apps';
import { ensureWorkerBuild, WorkerProcess, workerEnvironment } from './support/worker-process';

// Its own Redis database: the flush test empties it, and nothing else lives there.
const REDIS_URL = 'redis://127.0.0.1:6379/9';
const TOKEN = 'resilience-sender-secret-0123456789';
const HEADERS = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/fhir+json' };
const SOURCES = ['crash', 'flush', 'storm'] as const;
type SourceId = (typeof SOURCES)[number];
/** Concurrent requests of the simulated sender. */
const IN_FLIGHT = 16;

/** Notifications to send and the resource versions they carry (`Type/id/versionId`, each once). */
interface Workload {
  readonly bodies: readonly string[];
  readonly versions: readonly string[];
}

interface Answer {
  readonly status: number;
  readonly inboxId?: string;
  readonly error?: string;
}

/** A sender streaming notifications with a fixed number of requests in flight. */
interface Sending {
  /** Answers received so far. */
  readonly answered: () => number;
  /** Every answer, in the order of the bodies. */
  readonly done: Promise<readonly Answer[]>;
}

/**
 * Acceptance of "Subscription intake that every real EHR can talk to": what was answered 200 is
 * processed exactly once, whatever happens to the worker process or to Redis. Real PostgreSQL,
 * Redis, HTTP and embedded chain; the bridge runs in-process, the worker as its own OS process
 * (`node dist/apps/worker/main.js`) so it can be SIGKILLed.
 */
describe('intake that survives a killed worker, a flushed Redis and duplicate storms', () => {
  let simulator: FhirSourceSimulator;
  let stack: TestStack;
  let store: Store;
  let ingestQueue: Queue<IngestJob>;
  let workerMain: string;
  let worker: WorkerProcess | undefined;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    workerMain = await ensureWorkerBuild();
    await flushRedis();
    simulator = new FhirSourceSimulator();
    await simulator.start();
    // Gap repair is another suite's subject: a gap seen while notifications race stays open here.
    stack = await TestStack.create('resilience', {
      REDIS_URL,
      GAP_GRACE_MS: '600000',
      RECOVERY_SWEEP_INTERVAL_MS: '600000',
    });
    // The bridge starts (and owns) the embedded chain; the worker processes attach to it.
    await stack.startBridge();
    store = stack.bridge!.get<Store>(STORE);
    ingestQueue = stack.bridge!.get<Queue<IngestJob>>(getQueueToken(QUEUES.ingest));
    for (const id of SOURCES) {
      await store.sources.upsert({
        id,
        name: `Resilience ${id}`,
        organisation: { display: `Resilience hospital ${id}` },
        token: TOKEN,
        senderProfile: { counter: 'subscription' },
      });
    }
    worker = await startWorker();
  }, 240_000);

  afterAll(async () => {
    // Killed, not stopped: nothing a test left behind may keep the file waiting.
    await Promise.allSettled(workers.map((w) => w.kill('SIGKILL')));
    await stack?.close();
    await simulator?.stop();
    // The killed workers' BullMQ keys: this database is the file's own.
    await flushRedis();
  });

  /** Starts a worker process and waits until it consumes the ingest queue. */
  async function startWorker(): Promise<WorkerProcess> {
    const started = WorkerProcess.start(workerMain, workerEnvironment(stack.config));
    workers.push(started);
    await eventually(
      async () => {
        if (!started.running) throw new Error(`the worker exited during start-up:\n${started.outputTail}`);
        return (await ingestQueue.getWorkersCount()) > 0 ? true : undefined;
      },
      30_000,
      'the worker process to consume the ingest queue',
    );
    return started;
  }

  /** The worker of the previous test, or a new one if it is gone (a failed test must not cascade). */
  async function liveWorker(): Promise<WorkerProcess> {
    if (!worker?.running) worker = await startWorker();
    return worker;
  }

  function send(sourceId: SourceId, bodies: readonly string[], inFlight = IN_FLIGHT): Sending {
    const answers: Answer[] = new Array<Answer>(bodies.length);
    let next = 0;
    let answered = 0;
    const lane = async (): Promise<void> => {
      while (next < bodies.length) {
        const index = next++;
        answers[index] = await post(sourceId, bodies[index]);
        answered++;
      }
    };
    const done = Promise.all(Array.from({ length: inFlight }, lane)).then(() => answers);
    return { answered: () => answered, done };
  }

  async function post(sourceId: SourceId, body: string): Promise<Answer> {
    try {
      const response = await fetch(`${stack.baseUrl}/hooks/${sourceId}`, {
        method: 'POST',
        headers: HEADERS,
        body,
      });
      const text = await response.text();
      if (response.status !== 200) return { status: response.status, error: text.slice(0, 300) };
      return { status: 200, inboxId: (JSON.parse(text) as OperationOutcome).id };
    } catch (error) {
      return { status: 0, error: String(error) };
    }
  }

  const failed = (answers: readonly Answer[]) => answers.filter((a) => a.status !== 200);

  async function inboxCounts(sourceId: SourceId): Promise<Record<string, number>> {
    const rows = await store.db
      .selectFrom('inbox')
      .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
      .where('source_id', '=', sourceId)
      .groupBy('status')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  const doneRows = async (sourceId: SourceId) => (await inboxCounts(sourceId)).done ?? 0;

  /** Waits until `total` inbox rows of the source are finished and none is left `received`. */
  async function allFinished(sourceId: SourceId, total: number, timeoutMs: number): Promise<void> {
    let counts: Record<string, number> = {};
    try {
      await eventually(
        async () => {
          counts = await inboxCounts(sourceId);
          const finished = (counts.done ?? 0) + (counts['dead-letter'] ?? 0);
          return finished === total && !counts.received ? true : undefined;
        },
        timeoutMs,
        `${total} inbox rows of ${sourceId} finished`,
      );
    } catch (error) {
      throw new Error(
        `${String(error)}; inbox ${JSON.stringify(counts)}; worker output:\n${worker?.outputTail ?? '(none)'}`,
      );
    }
  }

  /**
   * Exactly once: one stored version per resource version sent (no doubles, no losses), each with
   * one Provenance and one ledger event; no dead letter; no event applied twice.
   */
  async function expectExactlyOnce(sourceId: SourceId, sent: readonly string[]): Promise<void> {
    const rows = await store.db
      .selectFrom('resource_versions as v')
      .leftJoin('provenances as p', 'p.resource_version_id', 'v.id')
      .select(['v.resource_type', 'v.resource_id', 'v.source_version_id', 'p.id as provenance'])
      .select((eb) =>
        eb
          .selectFrom('ledger_events as l')
          .select((e) => e.fn.countAll<string>().as('n'))
          .whereRef('l.resource_version_id', '=', 'v.id')
          .as('ledger_events'),
      )
      .where('v.source_id', '=', sourceId)
      .execute();
    const stored = new Map<string, number>();
    for (const row of rows) {
      const key = `${row.resource_type}/${row.resource_id}/${row.source_version_id}`;
      stored.set(key, (stored.get(key) ?? 0) + 1);
    }
    const expected = new Set(sent);
    expect(expected.size).toBe(sent.length);
    expect({
      doubles: [...stored].filter(([, n]) => n > 1).map(([key]) => key),
      missing: sent.filter((key) => !stored.has(key)),
      unexpected: [...stored.keys()].filter((key) => !expected.has(key)),
    }).toEqual({ doubles: [], missing: [], unexpected: [] });
    expect(rows).toHaveLength(sent.length);
    expect(rows.filter((r) => r.provenance === null)).toEqual([]);
    expect(rows.filter((r) => Number(r.ledger_events) !== 1)).toEqual([]);
    expect(await store.deadLetters.list({ sourceId })).toEqual([]);
  }

  /** Every ledger event of the source gets a leaf and is covered by a head anchored on chain. */
  async function expectAnchored(sourceId: SourceId): Promise<void> {
    await eventually(
      async () => {
        const { rows } = await sql<{ pending: string; covered: boolean }>`
          select count(*) filter (where leaf_index is null) as pending,
                 coalesce(max(leaf_index) < (select max(tree_size) from checkpoints), false) as covered
          from ledger_events where source_id = ${sourceId}`.execute(store.db);
        return rows[0]?.pending === '0' && rows[0].covered ? true : undefined;
      },
      30_000,
      `every ledger event of ${sourceId} anchored`,
    );
  }

  /**
   * `count` distinct notifications for a source, half bare resources (Medplum style, with
   * `meta.versionId`: patients in versions 1 and 2), half Backport/R5 bundles with event numbers
   * over eight subscriptions (every tenth bundle carrying two events; every fifth event an update).
   */
  function workload(sourceId: SourceId, count: number): Workload {
    const bodies: string[] = [];
    const versions: string[] = [];
    const bare = Math.floor(count / 2);
    const patients = Math.ceil(bare / 2);
    for (let n = 0; n < bare; n++) {
      const index = n % patients;
      const versionId = String(Math.floor(n / patients) + 1);
      const patient: Patient = {
        resourceType: 'Patient',
        id: `${sourceId}-patient-${index}`,
        meta: {
          versionId,
          lastUpdated: new Date(Date.UTC(2026, 0, 1, 0, 0, Number(versionId))).toISOString(),
        },
        name: [{ family: `Resilient${index}`, given: [`Version${versionId}`] }],
        gender: index % 2 === 0 ? 'female' : 'male',
        birthDate: `19${String(50 + (index % 50)).padStart(2, '0')}-01-01`,
      };
      bodies.push(JSON.stringify(patient));
      versions.push(`Patient/${patient.id}/${versionId}`);
    }
    const subscriptions = Array.from({ length: 8 }, () => subscriptionFor(sourceId));
    let observations = 0;
    const nextObservation = (): Resource => {
      const updating = observations > 4 && observations % 5 === 0;
      const id = updating ? observations - 4 : observations;
      observations++;
      return simulator.put<Observation>({
        resourceType: 'Observation',
        id: `${sourceId}-obs-${id}`,
        status: updating ? 'amended' : 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
        subject: { reference: `Patient/${sourceId}-patient-${id % patients}` },
        valueQuantity: {
          value: 60 + (observations % 40),
          unit: 'beats/minute',
          system: 'http://unitsofmeasure.org',
          code: '/min',
        },
      });
    };
    for (let n = 0; n < count - bare; n++) {
      const subscriptionId = subscriptions[n % subscriptions.length];
      const shape: SimulatedShape = n % 4 === 3 ? 'r5' : 'backport';
      const events = Array.from({ length: n % 10 === 9 ? 2 : 1 }, () => {
        const resource = nextObservation();
        versions.push(`Observation/${resource.id}/${resource.meta?.versionId}`);
        return simulator.recordEvent(subscriptionId, resource);
      });
      bodies.push(
        JSON.stringify(
          simulator.notificationBundle({
            subscriptionId,
            shape,
            type: 'event-notification',
            content: 'full-resource',
            events,
          }),
        ),
      );
    }
    return { bodies: shuffle(bodies), versions };
  }

  function subscriptionFor(sourceId: SourceId): string {
    const subscription: Subscription = {
      resourceType: 'Subscription',
      status: 'requested',
      reason: `resilience ${sourceId}`,
      criteria: 'http://example.org/fhir/SubscriptionTopic/resilience',
      channel: {
        type: 'rest-hook',
        endpoint: `${stack.baseUrl}/hooks/${sourceId}`,
        payload: 'application/fhir+json',
      },
    };
    return simulator.addSubscription(subscription).id!;
  }

  it('processes 2,000 notifications exactly once although the worker is SIGKILLed a third of the way', async () => {
    const total = 2_000;
    const { bodies, versions } = workload('crash', total);
    expect(bodies).toHaveLength(total);
    const victim = await liveWorker();

    // The first half streams in; once a third of all is processed, the worker is killed with jobs
    // active in it (their transactions roll back, their jobs stay behind in BullMQ's active list).
    const firstHalf = send('crash', bodies.slice(0, total / 2));
    await eventually(
      async () =>
        (await doneRows('crash')) >= total / 3 && (await ingestQueue.getActiveCount()) > 0 ? true : undefined,
      90_000,
      'a third of the notifications processed',
    );
    const exit = await victim.kill('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    expect(await doneRows('crash')).toBeLessThan(total);
    const orphaned = (await ingestQueue.getActive()).map((job) => job.data.inboxId);
    expect(orphaned.length).toBeGreaterThan(0);

    // The second half is sent while no worker runs (the bridge needs none), then a new one starts.
    const secondHalf = send('crash', bodies.slice(total / 2));
    await eventually(
      async () => ((await ingestQueue.getWorkersCount()) === 0 ? true : undefined),
      10_000,
      'the killed worker gone from Redis',
    );
    worker = await startWorker();
    // The jobs the dead worker held keep their ids in BullMQ's active list (the relay cannot
    // re-enqueue them): they must be found stalled and done promptly, not after BullMQ's default
    // 30 s lock and 30 s stall checks.
    await eventually(
      async () => {
        const rows = await store.db
          .selectFrom('inbox')
          .select('id')
          .where('id', 'in', orphaned)
          .where('status', '=', 'received')
          .execute();
        return rows.length === 0 ? true : undefined;
      },
      25_000,
      `the ${orphaned.length} rows active in the killed worker processed`,
    );
    const answers = [...(await firstHalf.done), ...(await secondHalf.done)];
    expect(failed(answers)).toEqual([]);
    expect(new Set(answers.map((a) => a.inboxId)).size).toBe(total);

    await allFinished('crash', total, 90_000);
    expect(await inboxCounts('crash')).toEqual({ done: total });
    await expectExactlyOnce('crash', versions);
    // Nothing was applied twice: no event of the 2,000 was claimed more than once.
    expect(await store.processedEvents.duplicatesCount('crash')).toBe(0);
    await expectAnchored('crash');
  }, 180_000);

  it('loses nothing when its Redis database is flushed while notifications stream in', async () => {
    const total = 600;
    const { bodies, versions } = workload('flush', total);
    await liveWorker();

    const sending = send('flush', bodies);
    await eventually(
      async () => (sending.answered() >= total / 3 && (await doneRows('flush')) > 0 ? true : undefined),
      30_000,
      'a third of the notifications accepted',
    );
    const redis = new Redis(REDIS_URL);
    let pendingJobs: number;
    try {
      const counts = await ingestQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      pendingJobs = Object.values(counts).reduce((sum, n) => sum + n, 0);
      expect(await redis.flushdb()).toBe('OK');
    } finally {
      redis.disconnect();
    }
    const answers = await sending.done;
    expect(failed(answers)).toEqual([]);
    // Jobs were lost with the flush (else this test proved nothing), yet every accepted row ends done.
    expect(pendingJobs).toBeGreaterThan(0);

    await allFinished('flush', total, 90_000);
    expect(await inboxCounts('flush')).toEqual({ done: total });
    await expectExactlyOnce('flush', versions);
    expect(await store.processedEvents.duplicatesCount('flush')).toBe(0);
    await expectAnchored('flush');
  }, 150_000);

  it('processes a notification delivered five times at once only once, and counts the duplicates', async () => {
    await liveWorker();
    const copies = 5;
    const subscriptionId = subscriptionFor('storm');
    const notifications: { body: string; version: string }[] = [];
    for (let n = 0; n < 10; n++) {
      const resource = simulator.put<Patient>({
        resourceType: 'Patient',
        id: `storm-bundled-${n}`,
        name: [{ family: 'Storm', given: [`Bundled${n}`] }],
      });
      const event = simulator.recordEvent(subscriptionId, resource);
      notifications.push({
        body: JSON.stringify(
          simulator.notificationBundle({
            subscriptionId,
            shape: 'backport',
            type: 'event-notification',
            content: 'full-resource',
            events: [event],
          }),
        ),
        version: `Patient/${resource.id}/1`,
      });
      const bare: Patient = {
        resourceType: 'Patient',
        id: `storm-bare-${n}`,
        meta: { versionId: '1' },
        name: [{ family: 'Storm', given: [`Bare${n}`] }],
      };
      notifications.push({ body: JSON.stringify(bare), version: `Patient/${bare.id}/1` });
    }

    // Every copy of every notification at once: the worker meets them concurrently.
    const answers = await Promise.all(
      notifications.flatMap(({ body }) => Array.from({ length: copies }, () => post('storm', body))),
    );
    expect(failed(answers)).toEqual([]);
    const total = notifications.length * copies;
    expect(new Set(answers.map((a) => a.inboxId)).size).toBe(total);

    await allFinished('storm', total, 30_000);
    expect(await inboxCounts('storm')).toEqual({ done: total });
    await expectExactlyOnce(
      'storm',
      notifications.map((n) => n.version),
    );
    const claims = await store.db
      .selectFrom('processed_events')
      .select(['dedupe_key', 'duplicates'])
      .where('source_id', '=', 'storm')
      .execute();
    expect(claims).toHaveLength(notifications.length);
    expect(claims.filter((c) => c.duplicates !== copies - 1)).toEqual([]);
    const subscription = await store.subscriptions.find('storm', `Subscription/${subscriptionId}`);
    expect(subscription).toMatchObject({ duplicates: 10 * (copies - 1), notifications: 10 * copies });
  }, 60_000);
});

async function flushRedis(): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    await redis.flushdb();
  } finally {
    redis.disconnect();
  }
}

/** A deterministic shuffle (so a failure reproduces): bare and bundled notifications interleave. */
function shuffle<T>(items: readonly T[]): T[] {
  const copy = [...items];
  let seed = 0x2f6b_3a91;
  for (let i = copy.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    const j = seed % (i + 1);
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}
