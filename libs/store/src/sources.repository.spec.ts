import { generateKeyPairSync } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database';
import { keyMatchesAny } from './admin-keys.repository';
import { unwrapKey } from './patient-keys.repository';
import { SourceExistsError, SourceSecretRequiredError, tokenMatches } from './sources.repository';
import { Store } from './store';

const MASTER_KEY = Buffer.alloc(32, 9);
const HMAC_SECRET = 'SecretHashKeyForConsumer1';
const organisation = { display: 'Org' };

describe('SourcesRepository: sender authentication and call-back secrets', () => {
  let database: TestDatabase;
  let store: Store;

  beforeAll(async () => {
    database = await createTestDatabase('sources_repo');
    store = await Store.open({ databaseUrl: database.url, masterKey: MASTER_KEY, migrate: true });
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  const rawRow = (id: string) =>
    store.db.selectFrom('sources').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  it('keeps an HMAC secret only wrapped, bound to its source, and unwraps it for the intake', async () => {
    const created = await store.sources.create({
      id: 'athena',
      name: 'athenahealth',
      organisation,
      senderAuth: { signature: { kind: 'hub-signature', secret: HMAC_SECRET } },
      senderProfile: { counter: 'per-bundle' },
    });
    expect(created).toMatchObject({
      senderAuth: ['hub-signature'],
      enabled: true,
      defaultSecret: false,
      senderProfile: { counter: 'per-bundle', deleteStyle: 'none', responseBudgetMs: 2000 },
      fhirAuth: { kind: 'none' },
    });
    expect(created.tokenSha256).toBeUndefined();

    const row = await rawRow('athena');
    expect(JSON.stringify(row)).not.toContain(HMAC_SECRET);
    expect(row.signature_secret?.includes(Buffer.from(HMAC_SECRET))).toBe(false);
    expect(unwrapKey(MASTER_KEY, row.signature_secret!, 'source-secret|athena').toString()).toBe(HMAC_SECRET);
    expect(() => unwrapKey(MASTER_KEY, row.signature_secret!, 'source-secret|other')).toThrow();

    const intake = await store.sources.findForIntake('athena');
    expect(intake?.credentials.signature).toEqual({
      kind: 'hub-signature',
      secret: Buffer.from(HMAC_SECRET),
    });
    expect(intake?.credentials.tokenSha256).toBeUndefined();
  });

  it('refuses a second source with the same id', async () => {
    await expect(
      store.sources.create({ id: 'athena', name: 'again', organisation, token: 'another-secret-0001' }),
    ).rejects.toBeInstanceOf(SourceExistsError);
  });

  it('keeps stored secrets a replacement leaves out, and needs one for a kind not configured before', async () => {
    const replaced = await store.sources.replace({
      id: 'athena',
      name: 'athenahealth (renamed)',
      organisation,
      senderAuth: { signature: { kind: 'hub-signature' } },
      rateLimitPerSecond: 5,
    });
    expect(replaced).toMatchObject({ name: 'athenahealth (renamed)', rateLimitPerSecond: 5 });
    expect((await store.sources.findForIntake('athena'))?.credentials.signature?.secret.toString()).toBe(
      HMAC_SECRET,
    );

    const error = await store.sources
      .replace({ id: 'athena', name: 'x', organisation, senderAuth: { bearer: {} } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceSecretRequiredError);
    expect((error as SourceSecretRequiredError).field).toBe('senderAuth.bearer.token');

    const bearerOnly = await store.sources.replace({
      id: 'athena',
      name: 'x',
      organisation,
      senderAuth: { bearer: { token: 'a-bearer-secret-0001' } },
    });
    expect(bearerOnly?.senderAuth).toEqual(['bearer']);
    // A check no longer configured leaves no secret behind.
    expect((await rawRow('athena')).signature_secret).toBeNull();
    expect(
      await store.sources.replace({ id: 'nobody', name: 'x', organisation, token: 'x'.repeat(16) }),
    ).toBe(undefined);
  });

  it('keeps a default secret flagged while a replacement keeps the default token', async () => {
    await store.sources.upsert({
      id: 'demo',
      name: 'Demo',
      organisation,
      token: 'demo-token',
      defaultSecret: true,
    });
    await store.sources.replace({ id: 'demo', name: 'Demo 2', organisation, senderAuth: { bearer: {} } });
    expect(await store.sources.withDefaultSecret()).toContain('demo');
    await store.sources.replace({
      id: 'demo',
      name: 'Demo 3',
      organisation,
      senderAuth: { bearer: { token: 'a-real-secret-0001' } },
    });
    expect(await store.sources.withDefaultSecret()).not.toContain('demo');
    const intake = await store.sources.findForIntake('demo');
    expect(tokenMatches('a-real-secret-0001', intake!.credentials.tokenSha256!)).toBe(true);
  });

  it('wraps SMART Backend Services keys and hands them only to fhirCredentials', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const jwk = privateKey.export({ format: 'jwk' });
    const settings = {
      kind: 'smart-backend' as const,
      clientId: 'bridge-client',
      scope: 'system/Patient.rs',
      tokenUrl: 'https://ehr.example/token',
      keyId: 'key-1',
      algorithm: 'ES384' as const,
    };
    const created = await store.sources.create({
      id: 'smart',
      name: 'SMART source',
      organisation,
      token: 'smart-bearer-secret-01',
      fhirBaseUrl: 'https://ehr.example/fhir',
      fhirAuth: { ...settings, privateKey: jwk },
    });
    expect(created.fhirAuth).toEqual(settings);
    expect(JSON.stringify(await rawRow('smart'))).not.toContain(jwk.d);
    expect(await store.sources.fhirCredentials('smart')).toEqual({ ...settings, privateKey: jwk });

    await store.sources.replace({
      id: 'smart',
      name: 'SMART source',
      organisation,
      senderAuth: { bearer: {} },
      fhirAuth: { ...settings, scope: 'system/*.rs' },
    });
    expect(await store.sources.fhirCredentials('smart')).toMatchObject({
      scope: 'system/*.rs',
      privateKey: jwk,
    });

    await store.sources.replace({
      id: 'smart',
      name: 'SMART source',
      organisation,
      senderAuth: { bearer: {} },
      fhirAuth: { kind: 'bearer', token: 'call-back-token-0001' },
    });
    expect(await store.sources.fhirCredentials('smart')).toEqual({
      kind: 'bearer',
      token: 'call-back-token-0001',
    });
    expect(await store.sources.fhirCredentials('nobody')).toBeUndefined();
  });

  it('disables softly: the source stays readable; configuration does not enable it again, a replacement does', async () => {
    await store.sources.upsert({ id: 'soft', name: 'Soft', organisation, token: 'soft-secret-000001' });
    expect((await store.sources.disable('soft'))?.enabled).toBe(false);
    await store.sources.upsert({ id: 'soft', name: 'Soft', organisation, token: 'soft-secret-000001' });
    const found = await store.sources.findById('soft');
    expect(found?.enabled).toBe(false);
    expect(found?.disabledAt).toBeInstanceOf(Date);
    expect((await store.sources.list()).map((s) => s.id)).toContain('soft');
    const again = await store.sources.replace({
      id: 'soft',
      name: 'Soft',
      organisation,
      senderAuth: { bearer: {} },
    });
    expect(again?.enabled).toBe(true);
    expect(await store.sources.disable('nobody')).toBeUndefined();
  });

  it('refuses, in the database itself, a source without any sender authentication', async () => {
    await expect(
      store.db
        .insertInto('sources')
        .values({
          id: 'open',
          name: 'Open',
          organisation: JSON.stringify(organisation),
          default_secret: false,
        })
        .execute(),
    ).rejects.toThrow(/sources_sender_auth/);
  });
});

describe('AdminKeysRepository', () => {
  let database: TestDatabase;
  let store: Store;

  beforeAll(async () => {
    database = await createTestDatabase('admin_keys');
    store = await Store.open({ databaseUrl: database.url, masterKey: MASTER_KEY, migrate: true });
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  it('stores only hashes, replaces a key under the same id, and matches in constant time', async () => {
    await store.adminKeys.register('ADMIN_API_KEY', 'dev-admin-key', true);
    expect(await store.adminKeys.withDefaultSecret()).toEqual(['ADMIN_API_KEY']);
    await store.adminKeys.register('ADMIN_API_KEY', 'a-long-admin-key-0001', false);
    expect(await store.adminKeys.withDefaultSecret()).toEqual([]);
    const rows = await store.db.selectFrom('admin_api_keys').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain('a-long-admin-key-0001');

    const hashes = await store.adminKeys.hashes();
    expect(keyMatchesAny('a-long-admin-key-0001', hashes)).toBe(true);
    expect(keyMatchesAny('dev-admin-key', hashes)).toBe(false);
    expect(keyMatchesAny('a-long-admin-key-0001', [])).toBe(false);

    await store.adminKeys.remove('ADMIN_API_KEY');
    expect(await store.adminKeys.hashes()).toEqual([]);
  });
});
