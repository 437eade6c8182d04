import type { Patient, Subscription } from '@medplum/fhirtypes';
import { readJsonFixture } from '../../../test/fixtures/fixture-files';
import {
  FhirSourceSimulator,
  generateKeyPair,
  type SimulatorKeyPair,
} from '../../../test/support/fhir-source-simulator';
import { isSourceFhirError, SourceFhirClient, SourceFhirError, type SmartBackendAuth } from './index';

/**
 * The client against the simulator over real HTTP: no mocked fetch. Each test gets fresh
 * simulators where counters matter; key pairs are made once (RSA generation is the slow part).
 */

const patient = (family: string): Patient => ({ resourceType: 'Patient', name: [{ family }] });

const keys: Record<'RS384' | 'ES384', SimulatorKeyPair> = {
  RS384: generateKeyPair('RS384'),
  ES384: generateKeyPair('ES384'),
};

function smartAuth(algorithm: 'RS384' | 'ES384', pair: SimulatorKeyPair = keys[algorithm]): SmartBackendAuth {
  return {
    type: 'smart-backend',
    clientId: 'fhir-trail-bridge',
    scope: 'system/Patient.rs system/Subscription.crus',
    privateKey: pair.privateJwk,
    keyId: pair.kid,
    algorithm,
  };
}

async function rejection(promise: Promise<unknown>): Promise<SourceFhirError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SourceFhirError) return error;
    throw error;
  }
  throw new Error('expected a SourceFhirError');
}

const simulators: FhirSourceSimulator[] = [];

/** A started simulator, stopped after the test file. */
async function startSimulator(
  options: ConstructorParameters<typeof FhirSourceSimulator>[0] = {},
): Promise<FhirSourceSimulator> {
  const simulator = new FhirSourceSimulator(options);
  simulators.push(simulator);
  await simulator.start();
  return simulator;
}

/** A simulator with SMART on and both keys registered for `fhir-trail-bridge`. */
async function securedSimulator(
  options: ConstructorParameters<typeof FhirSourceSimulator>[0] = {},
): Promise<FhirSourceSimulator> {
  const simulator = await startSimulator({ auth: {}, ...options });
  simulator.registerClient('fhir-trail-bridge', keys.RS384.publicJwk);
  simulator.registerClient('fhir-trail-bridge', keys.ES384.publicJwk);
  return simulator;
}

afterAll(async () => {
  await Promise.all(simulators.map((simulator) => simulator.stop()));
});

describe('SourceFhirClient with SMART Backend Services', () => {
  it.each(['RS384', 'ES384'] as const)(
    '%s: one token serves several reads within its lifetime',
    async (algorithm) => {
      const simulator = await securedSimulator();
      const stored = [simulator.put(patient('A')), simulator.put(patient('B')), simulator.put(patient('C'))];
      const client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth: smartAuth(algorithm) });
      for (const resource of stored) {
        expect(await client.read('Patient', resource.id as string)).toMatchObject({
          status: 'found',
          resource: { id: resource.id },
        });
      }
      expect(simulator.stats.tokenRequests).toBe(1);
      expect(simulator.stats.seenJtis).toHaveLength(1);
      // The token URL was discovered once from the SMART configuration.
      const discoveries = simulator.stats.requests.filter((r) =>
        r.path.endsWith('/.well-known/smart-configuration'),
      );
      expect(discoveries).toHaveLength(1);
    },
  );

  it('concurrent first requests share one token request', async () => {
    const simulator = await securedSimulator();
    const ids = Array.from({ length: 5 }, (_, index) => simulator.put(patient(`P${index}`)).id as string);
    const client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth: smartAuth('ES384') });
    const results = await Promise.all(ids.map((id) => client.read('Patient', id)));
    expect(results.every((result) => result.status === 'found')).toBe(true);
    expect(simulator.stats.tokenRequests).toBe(1);
  });

  it('a 401 drops the token, gets a new one (new jti) and retries once', async () => {
    const simulator = await securedSimulator();
    const id = simulator.put(patient('Revoked')).id as string;
    const client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth: smartAuth('RS384') });
    await client.read('Patient', id);
    simulator.revokeTokens();
    expect(await client.read('Patient', id)).toMatchObject({ status: 'found' });
    expect(simulator.stats.tokenRequests).toBe(2);
    expect(new Set(simulator.stats.seenJtis).size).toBe(2);
    const reads = simulator.stats.requests.filter((r) => r.path.endsWith(`/Patient/${id}`));
    expect(reads.map((r) => r.status)).toEqual([200, 401, 200]);
  });

  it('a second 401 is UNAUTHORIZED (one retry only)', async () => {
    const simulator = await securedSimulator();
    const id = simulator.put(patient('Refused')).id as string;
    simulator.injectFault({ path: `Patient/${id}`, status: 401, times: 2 });
    const client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth: smartAuth('ES384') });
    const error = await rejection(client.read('Patient', id));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', status: 401, retryable: false });
    expect(error.outcome?.resourceType).toBe('OperationOutcome');
    expect(simulator.stats.tokenRequests).toBe(2);
  });

  it('refreshes the token shortly before expires_in runs out', async () => {
    let now = Date.now();
    const clock = (): number => now;
    const simulator = await securedSimulator({ now: clock });
    const id = simulator.put(patient('Clock')).id as string;
    const client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth: smartAuth('ES384'), now: clock });
    await client.read('Patient', id);
    now += 260_000; // 260 s of a 300 s token: still used
    await client.read('Patient', id);
    expect(simulator.stats.tokenRequests).toBe(1);
    now += 15_000; // 275 s: inside the 30 s margin, so a new token before the old one expires
    await client.read('Patient', id);
    expect(simulator.stats.tokenRequests).toBe(2);
    expect(simulator.stats.requests.some((r) => r.status === 401)).toBe(false);
  });

  it('uses a configured tokenUrl without discovery', async () => {
    const simulator = await securedSimulator();
    const id = simulator.put(patient('Configured')).id as string;
    const auth = { ...smartAuth('RS384'), tokenUrl: simulator.tokenUrl };
    const client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth });
    expect(await client.read('Patient', id)).toMatchObject({ status: 'found' });
    expect(simulator.stats.requests.some((r) => r.path.includes('.well-known'))).toBe(false);
  });

  it('an assertion signed with an unregistered key is TOKEN_FAILED, not retryable', async () => {
    const simulator = await securedSimulator();
    const stranger = generateKeyPair('ES384');
    // Same kid as the registered key, different private key: a forged assertion.
    const forged = { ...smartAuth('ES384', stranger), keyId: keys.ES384.kid };
    const client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth: forged });
    const error = await rejection(client.read('Patient', 'any'));
    expect(error).toMatchObject({
      code: 'TOKEN_FAILED',
      retryable: false,
      status: 401,
      details: { oauthError: 'invalid_client' },
    });
    expect(simulator.stats.refusedAssertions).toEqual(['bad signature']);
    expect(error.message).not.toMatch(/eyJ/); // no assertion in the message
  });

  it('an expired assertion (our clock far behind) is TOKEN_FAILED', async () => {
    const simulator = await securedSimulator();
    const client = new SourceFhirClient({
      baseUrl: simulator.baseUrl,
      auth: smartAuth('RS384'),
      now: () => Date.now() - 10 * 60_000,
    });
    expect(await rejection(client.read('Patient', 'any'))).toMatchObject({ code: 'TOKEN_FAILED' });
    expect(simulator.stats.refusedAssertions).toEqual(['assertion expired']);
  });

  it('a token endpoint that is down is TOKEN_FAILED and retryable; the next call tries again', async () => {
    const simulator = await securedSimulator();
    const id = simulator.put(patient('Later')).id as string;
    simulator.injectFault({ path: '/auth/token', status: 503 });
    const client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth: smartAuth('ES384') });
    expect(await rejection(client.read('Patient', id))).toMatchObject({
      code: 'TOKEN_FAILED',
      retryable: true,
    });
    expect(await client.read('Patient', id)).toMatchObject({ status: 'found' });
  });

  it('a static bearer token gets no retry on 401', async () => {
    const simulator = await securedSimulator();
    const client = new SourceFhirClient({
      baseUrl: simulator.baseUrl,
      auth: { type: 'bearer', token: 'stale' },
    });
    expect(await rejection(client.read('Patient', 'x'))).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    expect(simulator.stats.requests).toHaveLength(1);
  });

  it('refuses a key that does not fit the algorithm', () => {
    expect(
      () =>
        new SourceFhirClient({ baseUrl: 'https://ehr.example/fhir', auth: smartAuth('RS384', keys.ES384) }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }) as Error);
  });
});

describe('SourceFhirClient reads', () => {
  let simulator: FhirSourceSimulator;
  let client: SourceFhirClient;

  beforeAll(async () => {
    simulator = await startSimulator();
    client = new SourceFhirClient({
      baseUrl: `${simulator.baseUrl}/`,
      auth: { type: 'none' },
      timeoutMs: 2_000,
    });
  });

  it('reads the current version and vreads older ones', async () => {
    const first = simulator.put(patient('Reader'));
    simulator.put({ ...first, active: true });
    const id = first.id as string;
    expect(await client.read<Patient>('Patient', id)).toMatchObject({
      status: 'found',
      resource: { active: true, meta: { versionId: '2' } },
    });
    const old = await client.vread<Patient>('Patient', id, '1');
    expect(old.status === 'found' && old.resource.active).toBeUndefined();
  });

  it('404 and 410 both mean deleted', async () => {
    const id = simulator.put(patient('Gone')).id as string;
    expect(await client.read('Patient', 'never-there')).toEqual({ status: 'deleted', httpStatus: 404 });
    simulator.delete('Patient', id);
    expect(await client.read('Patient', id)).toEqual({ status: 'deleted', httpStatus: 410 });
  });

  it('10 concurrent reads of one resource make 1 request; callers get separate copies', async () => {
    const id = simulator.put(patient('Popular')).id as string;
    simulator.injectFault({ path: `Patient/${id}`, delayMs: 50 }); // keep the first request in flight
    const results = await Promise.all(Array.from({ length: 10 }, () => client.read<Patient>('Patient', id)));
    expect(simulator.readCount('Patient', id)).toBe(1);
    const [first, second] = results;
    if (first?.status !== 'found' || second?.status !== 'found') throw new Error('not found');
    first.resource.active = false;
    expect(second.resource.active).toBeUndefined();
    // Once settled, the next read is a new request; shareInFlight: false never joins.
    await client.read('Patient', id);
    await Promise.all([client.read('Patient', id), client.read('Patient', id, { shareInFlight: false })]);
    expect(simulator.readCount('Patient', id)).toBe(4);
  });

  it('resolves references against the base URL, and refuses other bases (SSRF guard)', async () => {
    const stored = simulator.put(patient('Referenced'));
    const id = stored.id as string;
    expect(await client.readReference(`Patient/${id}`)).toMatchObject({ status: 'found' });
    expect(await client.readReference(`${simulator.baseUrl}/Patient/${id}`)).toMatchObject({
      status: 'found',
    });
    expect(await client.readReference(`Patient/${id}/_history/1`)).toMatchObject({
      status: 'found',
      resource: { meta: { versionId: '1' } },
    });

    const before = simulator.stats.requests.length;
    const origin = new URL(simulator.baseUrl).origin;
    for (const reference of [
      `http://169.254.169.254/fhir/Patient/${id}`,
      `${origin}/admin/Patient/${id}`,
      `${origin}/fhir-other/Patient/${id}`,
      `${simulator.baseUrl.replace('http:', 'https:')}/Patient/${id}`,
      `http://user:pw@${new URL(origin).host}/fhir/Patient/${id}`,
    ]) {
      const error = await rejection(client.readReference(reference));
      expect(error.code).toBe('REFERENCE_REFUSED');
      expect(error.message).not.toContain(id);
    }
    for (const reference of ['Patient/..', '#contained', 'urn:uuid:1234', 'Patient?name=x', 'x/Patient/1']) {
      await expect(client.readReference(reference)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(() => client.resolveReference('Patient/../../admin')).toThrow(SourceFhirError);
    expect(simulator.stats.requests.length).toBe(before);
  });

  it.each([
    [500, 'SERVER_ERROR', true],
    [503, 'SERVER_ERROR', true],
    [429, 'RATE_LIMITED', true],
    [403, 'FORBIDDEN', false],
    [400, 'REQUEST_REJECTED', false],
  ] as const)(
    'HTTP %i is %s (retryable %s), OperationOutcome kept, no id in the message',
    async (status, code, retryable) => {
      const id = simulator.put(patient('Failing')).id as string;
      const outcome = {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'exception', diagnostics: 'Patient Jane Doe is locked' }],
      };
      simulator.injectFault({ path: `Patient/${id}`, status, body: outcome });
      const error = await rejection(client.read('Patient', id));
      expect(error).toMatchObject({ code, retryable, status, outcome });
      expect(isSourceFhirError(error, code)).toBe(true);
      expect(error.message).toBe(`read Patient: the source answered HTTP ${status}`);
    },
  );

  it('a redirect is not followed', async () => {
    const id = simulator.put(patient('Moved')).id as string;
    simulator.injectFault({
      path: `Patient/${id}`,
      status: 302,
      headers: { location: 'http://127.0.0.1:1/x' },
    });
    expect(await rejection(client.read('Patient', id))).toMatchObject({ code: 'BAD_RESPONSE', status: 302 });
  });

  it('non-FHIR answers are BAD_RESPONSE', async () => {
    const id = simulator.put(patient('Garbled')).id as string;
    simulator.injectFault({ path: `Patient/${id}`, status: 200, body: '<html>proxy</html>' });
    expect(await rejection(client.read('Patient', id))).toMatchObject({
      code: 'BAD_RESPONSE',
      retryable: false,
    });
    simulator.injectFault({
      path: `Patient/${id}`,
      status: 200,
      body: { resourceType: 'Patient', id: 'other' },
    });
    expect(await rejection(client.read('Patient', id))).toMatchObject({ code: 'BAD_RESPONSE' });
  });

  it('an answer over maxResponseBytes is BAD_RESPONSE; a byte-order mark is tolerated', async () => {
    const id = simulator.put(patient('Large')).id as string;
    const small = new SourceFhirClient({
      baseUrl: simulator.baseUrl,
      auth: { type: 'none' },
      maxResponseBytes: 64,
    });
    simulator.injectFault({
      path: `Patient/${id}`,
      status: 200,
      body: { resourceType: 'Patient', id, text: 'x'.repeat(100) },
    });
    expect(await rejection(small.read('Patient', id))).toMatchObject({ code: 'BAD_RESPONSE', status: 200 });
    simulator.injectFault({
      path: `Patient/${id}`,
      status: 200,
      body: `\uFEFF${JSON.stringify({ resourceType: 'Patient', id })}`,
    });
    expect(await client.read('Patient', id)).toMatchObject({ status: 'found' });
  });

  it('a slow answer is TIMEOUT; a closed port is UNREACHABLE (both retryable)', async () => {
    const id = simulator.put(patient('Slow')).id as string;
    simulator.injectFault({ path: `Patient/${id}`, delayMs: 1_000 });
    const hurried = new SourceFhirClient({
      baseUrl: simulator.baseUrl,
      auth: { type: 'none' },
      timeoutMs: 100,
    });
    expect(await rejection(hurried.read('Patient', id))).toMatchObject({ code: 'TIMEOUT', retryable: true });

    const closed = await startSimulator();
    const base = closed.baseUrl;
    await closed.stop();
    const nowhere = new SourceFhirClient({ baseUrl: base, auth: { type: 'none' } });
    const error = await rejection(nowhere.read('Patient', id));
    expect(error).toMatchObject({ code: 'UNREACHABLE', retryable: true });
    expect(error.cause).toBeDefined();
  });
});

describe('SourceFhirClient search', () => {
  let simulator: FhirSourceSimulator;
  let client: SourceFhirClient;
  let stored: Patient[];

  beforeAll(async () => {
    simulator = await startSimulator({ pageSize: 10 });
    stored = Array.from({ length: 25 }, (_, index) => simulator.put(patient(`S${index}`)));
    simulator.put({ resourceType: 'Observation', status: 'final', code: { text: 'x' } });
    client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth: { type: 'none' }, maxSearchPages: 5 });
  });

  it('follows next links across pages', async () => {
    const result = await client.search<Patient>('Patient');
    expect(result).toMatchObject({ pages: 3, total: 25, truncated: false });
    expect(result.resources.map((resource) => resource.id)).toEqual(stored.map((resource) => resource.id));
  });

  it('stops at the page cap with truncated set', async () => {
    const result = await client.search('Patient', { _count: '5' }, { maxPages: 2 });
    expect(result).toMatchObject({ pages: 2, truncated: true });
    expect(result.resources).toHaveLength(10);
  });

  it('searchSince asks _lastUpdated=gt (default) or _since', async () => {
    const since = new Date(stored[19]?.meta?.lastUpdated ?? '');
    const changed = await client.searchSince<Patient>('Patient', since);
    expect(changed.resources.map((resource) => resource.id)).toEqual(stored.slice(20).map((r) => r.id));
    const query = simulator.stats.requests.at(-1)?.query ?? '';
    expect(new URLSearchParams(query).get('_lastUpdated')).toBe(`gt${since.toISOString()}`);

    const inclusive = await client.searchSince('Patient', since, {}, { using: '_since' });
    expect(inclusive.resources).toHaveLength(6);
  });

  it('refuses a next link that leaves the base URL', async () => {
    simulator.injectFault({
      path: 'Patient',
      status: 200,
      body: {
        resourceType: 'Bundle',
        type: 'searchset',
        link: [{ relation: 'next', url: 'http://169.254.169.254/latest/meta-data' }],
        entry: [],
      },
    });
    const before = simulator.stats.requests.length;
    expect(await rejection(client.search('Patient'))).toMatchObject({ code: 'REFERENCE_REFUSED' });
    expect(simulator.stats.requests.length).toBe(before + 1);
  });
});

describe('SourceFhirClient subscriptions', () => {
  let simulator: FhirSourceSimulator;
  let client: SourceFhirClient;
  const asked: Subscription = readJsonFixture(
    'subscriptions/r4-backport__Subscription__inferno-spec.json',
  ) as Subscription;

  beforeAll(async () => {
    simulator = await securedSimulator({
      subscriptionGrant: { content: 'id-only', heartbeatPeriodSeconds: 3600 },
    });
    client = new SourceFhirClient({ baseUrl: simulator.baseUrl, auth: smartAuth('ES384') });
  });

  it('createSubscription reads back what the source granted', async () => {
    const { subscription, granted } = await client.createSubscription(asked, {
      headers: { 'x-hub-secret': 's3cret' },
    });
    expect(granted).toEqual({
      id: subscription.id,
      status: 'active',
      criteria: asked.criteria,
      endpoint: asked.channel.endpoint,
      content: 'id-only', // asked full-resource
      heartbeatPeriodSeconds: 3600, // asked 86400
      end: asked.end,
    });
    expect(subscription.id).not.toBe(asked.id);

    const updated = await client.updateSubscription({ ...subscription, status: 'requested' });
    expect(updated.granted).toMatchObject({ id: subscription.id, status: 'active' });
    expect(updated.subscription.meta?.versionId).toBe('2');
  });

  it('subscriptionStatus parses the $status searchset', async () => {
    const { subscription } = await client.createSubscription(asked);
    const id = subscription.id;
    for (let index = 0; index < 3; index += 1) simulator.recordEvent(id, simulator.put(patient(`E${index}`)));
    expect(await client.subscriptionStatus(id)).toMatchObject({
      subscriptionId: id,
      reference: `${simulator.baseUrl}/Subscription/${id}`,
      status: 'active',
      type: 'query-status',
      topic: asked.criteria,
      eventsSinceSubscriptionStart: '3',
      events: [],
    });
    expect(await rejection(client.subscriptionStatus('unknown'))).toMatchObject({
      code: 'NOT_FOUND',
      status: 404,
    });
  });

  it.each([
    ['subscriptions/r4-backport__status-operation-response__inferno.json', '123', 'active', '2', undefined],
    [
      'subscriptions/draft-0.1.0__query-status__error__argonaut-backport.json',
      'admission',
      'error',
      '10',
      ['unreachable'],
    ],
  ])('subscriptionStatus parses %s', async (fixture, id, status, count, error) => {
    simulator.injectFault({
      path: `Subscription/${id}/$status`,
      status: 200,
      body: readJsonFixture(fixture) as object,
    });
    const report = await client.subscriptionStatus(id);
    expect(report).toMatchObject({ subscriptionId: id, status, eventsSinceSubscriptionStart: count });
    expect(report.error).toEqual(error);
  });

  it('subscriptionEvents recovers a gap, event numbers as decimal strings', async () => {
    const { subscription } = await client.createSubscription(asked);
    const id = subscription.id;
    const first = simulator.put(patient('Gap1'));
    const lost = simulator.put(patient('Gap2'));
    simulator.recordEvent(id, first);
    simulator.recordEvent(id, lost); // never delivered
    simulator.recordEvent(id, simulator.put(patient('Gap3')));
    const events = await client.subscriptionEvents(id, '2', 2n);
    expect(events.notificationType).toBe('query-event');
    expect(events.subscription?.eventsSinceSubscriptionStart).toBe('3');
    expect(events.events).toHaveLength(1);
    expect(events.events[0]).toMatchObject({
      eventNumber: '2',
      content: 'full-resource',
      focus: { resourceType: 'Patient', id: lost.id },
      resource: { id: lost.id },
    });
    const query = new URLSearchParams(simulator.stats.requests.at(-1)?.query ?? '');
    expect(Object.fromEntries(query)).toEqual({
      eventsSinceNumber: '2',
      eventsUntilNumber: '2',
      content: 'full-resource',
    });
    const idOnly = await client.subscriptionEvents(id, 1, 3, { content: 'id-only' });
    expect(idOnly.events.map((event) => [event.eventNumber, event.content])).toEqual([
      ['1', 'id-only'],
      ['2', 'id-only'],
      ['3', 'id-only'],
    ]);
    await expect(client.subscriptionEvents(id, 3, 1)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(client.subscriptionEvents(id, '-1', 1)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
