import { createHmac, generateKeyPairSync } from 'node:crypto';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { loadConfig } from '@fhir-trail/config';
import { STORE } from '@fhir-trail/runtime';
import { Store } from '@fhir-trail/store';
import { Redis } from 'ioredis';
import { createBridgeApp } from '../apps/bridge/src/bridge.app';
import { registerAdminKey } from '../apps/bridge/src/admin/admin-keys.service';
import { readFixtureBytes } from './fixtures/fixture-files';
import { TestStack } from './support/test-apps';
import { createTestDatabase, type TestDatabase } from './support/test-database';

const ADMIN_KEY = 'e2e-admin-key-0123456789abcdef';
const ADMIN = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
const ATHENA_SECRET = 'SecretHashKeyForConsumer1';
const ATHENA_BODY = readFixtureBytes('subscriptions/athenahealth/send-patient-notification.json');
const ATHENA_SIGNATURE = 'sha256=74c46018cd75fc09c7176a6ed3c98606230f826d27ae770d34a9fe4031354da7';
const PRODUCTION = {
  NODE_ENV: 'production',
  LEDGER_MASTER_KEY: '11'.repeat(32),
  LEDGER_RPC_URL: 'http://127.0.0.1:9',
  LEDGER_PRIVATE_KEY: '22'.repeat(32),
};

interface SourceView {
  id: string;
  enabled: boolean;
  hookPath: string;
  senderAuth: { bearer?: { hasSecret: boolean }; signature?: { kind: string; hasSecret: boolean } };
  fhirAuth: Record<string, unknown>;
  senderProfile: Record<string, unknown>;
  rateLimitPerSecond?: number;
  disabledAt?: string;
}

const athenaRegistration = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  name: 'athenahealth practice 195900',
  organisation: { display: 'Example Practice' },
  fhirBaseUrl: 'https://api.preview.platform.athenahealth.com/fhir/r4',
  senderAuth: { signature: { kind: 'hub-signature', secret: ATHENA_SECRET } },
  senderProfile: { counter: 'per-bundle' },
  mappingProfile: 'athenahealth',
  ...extra,
});

describe('admin API: sources', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;

  beforeAll(async () => {
    stack = await TestStack.create('admin_sources', { ADMIN_API_KEY: ADMIN_KEY });
    base = await stack.startBridge();
    store = stack.bridge!.get<Store>(STORE);
  });

  afterAll(async () => {
    await stack.close();
  });

  const admin = (method: string, path: string, body?: unknown, headers: Record<string, string> = ADMIN) =>
    fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  const hook = (id: string, body: Buffer, signature: string) =>
    fetch(`${base}/hooks/${id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'x-hub-signature': signature },
      body,
    });
  const outcomeOf = async (response: Response) => {
    expect(response.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    const outcome = (await response.json()) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    return outcome;
  };

  it.each([
    ['no Authorization header', { 'content-type': 'application/json' }],
    ['a wrong key', { ...ADMIN, authorization: 'Bearer not-the-admin-key-at-all' }],
    ['the development key while ADMIN_API_KEY is set', { ...ADMIN, authorization: 'Bearer dev-admin-key' }],
    ['a source token', { ...ADMIN, authorization: 'Bearer demo-token' }],
  ])('refuses %s with 401 on every route', async (_case, headers) => {
    for (const [method, path] of [
      ['GET', '/admin/sources'],
      ['GET', '/admin/sources/demo'],
      ['POST', '/admin/sources'],
      ['PUT', '/admin/sources/demo'],
      ['DELETE', '/admin/sources/demo'],
    ]) {
      const response = await admin(
        method,
        path,
        method === 'POST' || method === 'PUT' ? {} : undefined,
        headers,
      );
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      expect((await outcomeOf(response)).issue[0].code).toBe('security');
    }
    expect((await store.sources.findById('demo'))?.enabled).toBe(true);
  });

  it('keeps only the hash of the admin key', async () => {
    const rows = await store.db.selectFrom('admin_api_keys').selectAll().execute();
    expect(rows.map((r) => r.id)).toEqual(['ADMIN_API_KEY']);
    expect(rows[0].default_secret).toBe(false);
    expect(JSON.stringify(rows)).not.toContain(ADMIN_KEY);
  });

  it('registers a source (201, Location, no secret echoed) that can send at once', async () => {
    const response = await admin('POST', '/admin/sources', athenaRegistration('athena-195900'));
    expect(response.status).toBe(201);
    expect(response.headers.get('location')).toBe('/admin/sources/athena-195900');
    const text = await response.text();
    expect(text).not.toContain(ATHENA_SECRET);
    expect(JSON.parse(text)).toMatchObject({
      id: 'athena-195900',
      hookPath: '/hooks/athena-195900',
      enabled: true,
      defaultSecret: false,
      senderAuth: { signature: { kind: 'hub-signature', hasSecret: true } },
      fhirAuth: { kind: 'none' },
      senderProfile: { counter: 'per-bundle', deleteStyle: 'none', responseBudgetMs: 2000 },
      mappingProfile: 'athenahealth',
    });

    expect((await hook('athena-195900', ATHENA_BODY, ATHENA_SIGNATURE)).status).toBe(200);
    expect((await hook('athena-195900', ATHENA_BODY, `sha256=${'0'.repeat(64)}`)).status).toBe(401);
  });

  it('refuses an id already taken with 409', async () => {
    const response = await admin('POST', '/admin/sources', athenaRegistration('athena-195900'));
    expect(response.status).toBe(409);
    const outcome = await outcomeOf(response);
    expect(outcome.issue[0]).toMatchObject({ code: 'duplicate', expression: ['id'] });
  });

  it('refuses an invalid registration with one issue per bad field, never echoing a value', async () => {
    const misplacedSecret = 'this-secret-must-never-be-echoed';
    const response = await admin('POST', '/admin/sources', {
      id: 'has space',
      name: '',
      organisation: {},
      senderAuth: { signature: { kind: 'sha1', secret: misplacedSecret }, bearer: { token: 'short' } },
      fhirAuth: {
        kind: 'smart-backend',
        clientId: 'c',
        scope: 'system/Patient.rs',
        keyId: 'k',
        algorithm: 'ES384',
        privateKey: { kty: 'EC', d: misplacedSecret },
      },
      rateLimitPerSecond: 0,
      unexpected: misplacedSecret,
    });
    expect(response.status).toBe(400);
    const text = await response.text();
    expect(text).not.toContain(misplacedSecret);
    const outcome = JSON.parse(text) as OperationOutcome;
    const expressions = outcome.issue.map((issue) => issue.expression?.[0]);
    expect(expressions).toEqual(
      expect.arrayContaining([
        'id',
        'name',
        'organisation.display',
        'senderAuth.signature.kind',
        'senderAuth.bearer.token',
        'rateLimitPerSecond',
        'unexpected',
      ]),
    );
    expect(outcome.issue.every((issue) => issue.severity === 'error' && issue.details?.text)).toBe(true);

    // Fields pass one by one, but together they miss secrets, a usable key and a token URL.
    const crossField = await admin('POST', '/admin/sources', {
      id: 'incomplete',
      name: 'Incomplete',
      organisation: { display: 'Org' },
      senderAuth: { signature: { kind: 'medplum-signature' } },
      fhirAuth: {
        kind: 'smart-backend',
        clientId: 'c',
        scope: 'system/Patient.rs',
        keyId: 'k',
        algorithm: 'RS384',
        privateKey: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'jwk' }),
      },
    });
    expect(crossField.status).toBe(400);
    const crossOutcome = await outcomeOf(crossField);
    expect(crossOutcome.issue.map((issue) => [issue.code, issue.expression?.[0]])).toEqual([
      ['required', 'senderAuth.signature.secret'],
      ['value', 'fhirAuth.privateKey'],
      ['required', 'fhirAuth.tokenUrl'],
    ]);
    expect(await store.sources.findById('incomplete')).toBeUndefined();
  });

  it('refuses a body that is not JSON (400) or not application/json (415)', async () => {
    const broken = await admin('POST', '/admin/sources', '{"id": ');
    expect(broken.status).toBe(400);
    expect((await outcomeOf(broken)).issue[0].code).toBe('structure');
    const text = await admin('POST', '/admin/sources', 'id=x', { ...ADMIN, 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
  });

  it('stores SMART Backend Services credentials wrapped and never shows the private key', async () => {
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'jwk' });
    const response = await admin('POST', '/admin/sources', {
      id: 'smart-ehr',
      name: 'SMART EHR',
      organisation: { display: 'Example Hospital' },
      fhirBaseUrl: 'https://ehr.example/fhir',
      senderAuth: { bearer: { token: 'smart-ehr-bearer-secret' } },
      fhirAuth: {
        kind: 'smart-backend',
        clientId: 'fhir-trail',
        scope: 'system/Patient.rs system/Observation.rs',
        keyId: 'bridge-key-1',
        algorithm: 'ES384',
        privateKey: { ...jwk, kid: 'bridge-key-1' },
      },
    });
    expect(response.status).toBe(201);
    const text = await response.text();
    expect(text).not.toContain(jwk.d!);
    expect(text).not.toContain('smart-ehr-bearer-secret');
    expect((JSON.parse(text) as SourceView).fhirAuth).toEqual({
      kind: 'smart-backend',
      clientId: 'fhir-trail',
      scope: 'system/Patient.rs system/Observation.rs',
      keyId: 'bridge-key-1',
      algorithm: 'ES384',
      hasSecret: true,
    });
    const row = await store.db
      .selectFrom('sources')
      .selectAll()
      .where('id', '=', 'smart-ehr')
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(jwk.d!);
    expect(await store.sources.fhirCredentials('smart-ehr')).toMatchObject({
      kind: 'smart-backend',
      privateKey: { d: jwk.d, kid: 'bridge-key-1' },
    });
  });

  it('lists and reads sources, and answers 404 for an unknown one', async () => {
    const list = await admin('GET', '/admin/sources');
    expect(list.status).toBe(200);
    expect(list.headers.get('cache-control')).toBe('no-store');
    const { sources } = (await list.json()) as { sources: SourceView[] };
    expect(sources.map((s) => s.id)).toEqual(['athena-195900', 'demo', 'smart-ehr']);
    expect(sources.find((s) => s.id === 'demo')).toMatchObject({
      senderAuth: { bearer: { hasSecret: true } },
    });

    const one = await admin('GET', '/admin/sources/athena-195900');
    expect(one.status).toBe(200);
    expect(((await one.json()) as SourceView).id).toBe('athena-195900');
    for (const id of ['nobody', 'not%20an%20id']) {
      const missing = await admin('GET', `/admin/sources/${id}`);
      expect(missing.status).toBe(404);
      expect((await outcomeOf(missing)).issue[0].code).toBe('not-found');
    }
  });

  it('replaces a registration: a GET answer sent back keeps the secrets; a new secret takes effect at once', async () => {
    const current = (await (await admin('GET', '/admin/sources/athena-195900')).json()) as SourceView;
    const edited = await admin('PUT', '/admin/sources/athena-195900', {
      ...current,
      rateLimitPerSecond: 100,
    });
    expect(edited.status).toBe(200);
    expect(((await edited.json()) as SourceView).rateLimitPerSecond).toBe(100);
    expect((await hook('athena-195900', ATHENA_BODY, ATHENA_SIGNATURE)).status).toBe(200);

    const rotated = 'a-new-hub-secret-after-rotation';
    const put = await admin(
      'PUT',
      '/admin/sources/athena-195900',
      athenaRegistration('athena-195900', {
        senderAuth: { signature: { kind: 'hub-signature', secret: rotated } },
      }),
    );
    expect(put.status).toBe(200);
    expect(await put.text()).not.toContain(rotated);
    expect((await hook('athena-195900', ATHENA_BODY, ATHENA_SIGNATURE)).status).toBe(401);
    const signature = `sha256=${createHmac('sha256', rotated).update(ATHENA_BODY).digest('hex')}`;
    expect((await hook('athena-195900', ATHENA_BODY, signature)).status).toBe(200);
  });

  it('refuses a replacement that needs a secret it does not give, names another id, or targets no source', async () => {
    const noToken = await admin('PUT', '/admin/sources/athena-195900', {
      ...athenaRegistration('athena-195900'),
      senderAuth: { bearer: {}, signature: { kind: 'hub-signature' } },
    });
    expect(noToken.status).toBe(400);
    expect((await outcomeOf(noToken)).issue[0]).toMatchObject({
      code: 'required',
      expression: ['senderAuth.bearer.token'],
    });
    const otherId = await admin('PUT', '/admin/sources/athena-195900', athenaRegistration('someone-else'));
    expect(otherId.status).toBe(400);
    expect((await outcomeOf(otherId)).issue[0].expression).toEqual(['id']);
    const missing = await admin('PUT', '/admin/sources/nobody', athenaRegistration('nobody'));
    expect(missing.status).toBe(404);
  });

  it('deletes softly: hooks answer 404 like an unknown source, the id stays taken, PUT enables it again', async () => {
    const deleted = await admin('DELETE', '/admin/sources/smart-ehr');
    expect(deleted.status).toBe(200);
    const view = (await deleted.json()) as SourceView;
    expect(view.enabled).toBe(false);
    expect(Date.parse(view.disabledAt!)).not.toBeNaN();

    const send = () =>
      fetch(`${base}/hooks/smart-ehr`, {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json', authorization: 'Bearer smart-ehr-bearer-secret' },
        body: JSON.stringify({ resourceType: 'Patient', id: 'p1' }),
      });
    const refused = await send();
    expect(refused.status).toBe(404);
    const unknown = await fetch(`${base}/hooks/never-registered`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: '{}',
    });
    expect((await outcomeOf(refused)).issue[0]).toEqual({
      ...(await outcomeOf(unknown)).issue[0],
      details: { text: "unknown source 'smart-ehr'" },
    });

    expect(((await (await admin('GET', '/admin/sources/smart-ehr')).json()) as SourceView).enabled).toBe(
      false,
    );
    expect((await admin('POST', '/admin/sources', { ...athenaRegistration('smart-ehr') })).status).toBe(409);
    expect((await admin('DELETE', '/admin/sources/nobody')).status).toBe(404);

    const current = (await (await admin('GET', '/admin/sources/smart-ehr')).json()) as SourceView;
    const enabled = await admin('PUT', '/admin/sources/smart-ehr', current);
    expect(enabled.status).toBe(200);
    expect(((await enabled.json()) as SourceView).enabled).toBe(true);
    expect((await send()).status).toBe(200);
  });

  it('rate-limits a source with 429 and Retry-After, one bucket in Redis shared by every replica', async () => {
    const created = await admin(
      'POST',
      '/admin/sources',
      athenaRegistration('limited', { rateLimitPerSecond: 1 }),
    );
    expect(created.status).toBe(201);
    const first = await hook('limited', ATHENA_BODY, ATHENA_SIGNATURE);
    expect(first.status).toBe(200);
    const second = await hook('limited', ATHENA_BODY, ATHENA_SIGNATURE);
    expect(second.status).toBe(429);
    expect(Number(second.headers.get('retry-after'))).toBe(1);
    expect((await outcomeOf(second)).issue[0].code).toBe('throttled');

    // A forged request is refused before it can spend the sender's budget.
    expect((await hook('limited', ATHENA_BODY, `sha256=${'0'.repeat(64)}`)).status).toBe(401);

    const redis = new Redis(stack.config.redisUrl);
    let replica: NestFastifyApplication | undefined;
    try {
      expect(await redis.exists(`${stack.config.queuePrefix}:rate-limit:limited`)).toBe(1);
      // A second bridge on the same Redis draws on the same bucket.
      replica = await createBridgeApp(stack.config);
      await replica.listen({ port: 0, host: '127.0.0.1' });
      const replicaUrl = (await replica.getUrl()).replace('[::1]', '127.0.0.1');
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const sendVia = (url: string) =>
        fetch(`${url}/hooks/limited`, {
          method: 'POST',
          headers: { 'content-type': 'application/fhir+json', 'x-hub-signature': ATHENA_SIGNATURE },
          body: ATHENA_BODY,
        });
      expect((await sendVia(base)).status).toBe(200);
      expect((await sendVia(replicaUrl)).status).toBe(429);
    } finally {
      redis.disconnect();
      await replica?.close();
    }
    // Sources without a limit are never throttled.
    const unlimited = await Promise.all(
      Array.from({ length: 5 }, () =>
        hook(
          'athena-195900',
          ATHENA_BODY,
          `sha256=${createHmac('sha256', 'a-new-hub-secret-after-rotation').update(ATHENA_BODY).digest('hex')}`,
        ),
      ),
    );
    expect(unlimited.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
  });

  it('documents the admin API in OpenAPI', async () => {
    const openApi = (await (await fetch(`${base}/docs/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { requestBody?: unknown; security?: unknown }>>;
    };
    expect(Object.keys(openApi.paths)).toEqual(
      expect.arrayContaining(['/admin/sources', '/admin/sources/{id}', '/hooks/{sourceId}']),
    );
    expect(Object.keys(openApi.paths['/admin/sources'])).toEqual(expect.arrayContaining(['get', 'post']));
    expect(Object.keys(openApi.paths['/admin/sources/{id}'])).toEqual(
      expect.arrayContaining(['get', 'put', 'delete']),
    );
    expect(JSON.stringify(openApi.paths['/admin/sources'].post.requestBody)).toContain('senderAuth');
    expect(openApi.paths['/admin/sources'].post.security).toEqual([{ bearer: [] }]);
  });
});

describe('admin API key in production', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('admin_keys_prod');
  });

  afterAll(async () => {
    await database.drop();
  });

  const keys = async () => {
    const store = await Store.open({
      databaseUrl: database.url,
      masterKey: Buffer.alloc(32),
      migrate: false,
    });
    try {
      return await store.db.selectFrom('admin_api_keys').select(['id', 'default_secret']).execute();
    } finally {
      await store.close();
    }
  };

  it('refuses to start while the development key is registered, and closes the admin API without ADMIN_API_KEY', async () => {
    await registerAdminKey(loadConfig({ DATABASE_URL: database.url }));
    expect(await keys()).toEqual([{ id: 'ADMIN_API_KEY', default_secret: true }]);
    await expect(registerAdminKey(loadConfig({ ...PRODUCTION, DATABASE_URL: database.url }))).rejects.toThrow(
      /refusing to start in production: the admin API key \(ADMIN_API_KEY\) is still the development default/,
    );

    await registerAdminKey(
      loadConfig({ ...PRODUCTION, DATABASE_URL: database.url, ADMIN_API_KEY: ADMIN_KEY }),
    );
    expect(await keys()).toEqual([{ id: 'ADMIN_API_KEY', default_secret: false }]);

    await registerAdminKey(loadConfig({ ...PRODUCTION, DATABASE_URL: database.url }));
    expect(await keys()).toEqual([]);
  });
});
