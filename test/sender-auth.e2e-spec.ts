import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import { readFixtureBytes } from './fixtures/fixture-files';
import { TestStack } from './support/test-apps';

/** test/fixtures/subscriptions/athenahealth/SOURCES.md: the repository's local test secret and vectors. */
const ATHENA_SECRET = 'SecretHashKeyForConsumer1';
const ATHENA_VECTORS = [
  [
    'send-patient-notification.json',
    'sha256=74c46018cd75fc09c7176a6ed3c98606230f826d27ae770d34a9fe4031354da7',
  ],
  ['send-order-notification.json', 'sha256=f528cc71a3e0032482465fc4b55cda0f63d230e2072cbfdceb8c2feaf6a91838'],
  [
    'send-appointment-notification.json',
    'sha256=a7cd1196b24559701f2fb699a364845c16d3a920455abf047042eb650e2c3563',
  ],
] as const;
const MEDPLUM_SECRET = 'medplum-subscription-secret-e2e';
const COMBO_TOKEN = 'combo-bearer-secret-for-e2e';
const COMBO_SECRET = 'combo-hmac-secret-for-e2e-01';

const FHIR_JSON = { 'content-type': 'application/fhir+json' };
const athena = (file: string) => readFixtureBytes(`subscriptions/athenahealth/${file}`);
const hmacHex = (secret: string, body: Buffer) => createHmac('sha256', secret).update(body).digest('hex');

/**
 * An athenahealth notification with the first character of its Bundle id changed: still valid JSON
 * and still a notification, so only a check over the body bytes can tell.
 */
function oneByteChanged(body: Buffer): Buffer {
  const changed = Buffer.from(body);
  const at = changed.indexOf('"id": "') + '"id": "'.length;
  expect(at).toBeGreaterThan('"id": "'.length);
  changed[at] = changed[at] === 0x78 ? 0x79 : 0x78; // 'x', or 'y' if it was 'x'
  return changed;
}

describe('sender authentication over real HTTP: bearer, X-Hub-Signature, X-Signature, and both', () => {
  let stack: TestStack;
  let base: string;
  let store: Store;
  const dir = mkdtempSync(join(tmpdir(), 'sender-auth-'));

  beforeAll(async () => {
    const sourcesFile = join(dir, 'sources.json');
    writeFileSync(
      sourcesFile,
      JSON.stringify([
        {
          id: 'athena',
          name: 'athenahealth',
          organisation: { display: 'Example Practice' },
          senderAuth: { signature: { kind: 'hub-signature', secret: ATHENA_SECRET } },
          senderProfile: { counter: 'per-bundle' },
        },
        {
          id: 'medplum',
          name: 'Medplum',
          organisation: { display: 'Example Clinic' },
          senderAuth: { signature: { kind: 'medplum-signature', secret: MEDPLUM_SECRET } },
          senderProfile: { counter: 'none', deleteStyle: 'medplum' },
        },
        {
          id: 'combo',
          name: 'Bearer and signature',
          organisation: { display: 'Example Hospital' },
          senderAuth: {
            bearer: { token: COMBO_TOKEN },
            signature: { kind: 'hub-signature', secret: COMBO_SECRET },
          },
        },
      ]),
    );
    stack = await TestStack.create('sender_auth', { SOURCES_FILE: sourcesFile });
    base = await stack.startBridge();
    store = stack.bridge!.get<Store>(STORE);
  });

  afterAll(async () => {
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (source: string, body: Buffer, headers: Record<string, string>) =>
    fetch(`${base}/hooks/${source}`, { method: 'POST', headers: { ...FHIR_JSON, ...headers }, body });

  async function refusal(response: Response): Promise<string[]> {
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    const outcome = (await response.json()) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue.every((issue) => issue.severity === 'error' && issue.code === 'security')).toBe(
      true,
    );
    return outcome.issue.map((issue) => issue.details?.text ?? '');
  }

  describe.each(ATHENA_VECTORS)('athenahealth vector %s', (file, signature) => {
    it('is accepted with its published X-Hub-Signature, and stored byte for byte', async () => {
      const response = await post('athena', athena(file), { 'x-hub-signature': signature });
      expect(response.status).toBe(200);
      const inboxId = ((await response.json()) as OperationOutcome).id!;
      const row = await store.db
        .selectFrom('inbox')
        .select(['body', 'headers'])
        .where('id', '=', inboxId)
        .executeTakeFirstOrThrow();
      expect(row.body.equals(athena(file))).toBe(true);
      expect(row.headers['x-hub-signature']).toBe(signature);
    });

    it('is refused with one byte of the body changed', async () => {
      const body = athena(file);
      const changed = Buffer.from(body);
      changed[Math.floor(body.length / 2)] ^= 0x01;
      const [text] = await refusal(await post('athena', changed, { 'x-hub-signature': signature }));
      expect(text).toMatch(/X-Hub-Signature/);
    });
  });

  interface AuthKindCase {
    readonly kind: string;
    readonly source: string;
    readonly good: (body: Buffer) => Record<string, string>;
    readonly wrong: Record<string, string>;
    readonly header: RegExp;
    readonly bindsBody: boolean;
  }
  const authKinds: readonly AuthKindCase[] = [
    {
      kind: 'bearer',
      source: 'demo',
      good: () => ({ authorization: 'Bearer demo-token' }),
      wrong: { authorization: 'Bearer not-the-demo-token' },
      header: /Authorization/,
      bindsBody: false,
    },
    {
      kind: 'hub-signature',
      source: 'athena',
      good: (body) => ({ 'x-hub-signature': `sha256=${hmacHex(ATHENA_SECRET, body)}` }),
      wrong: { 'x-hub-signature': `sha256=${'0'.repeat(64)}` },
      header: /X-Hub-Signature/,
      bindsBody: true,
    },
    {
      kind: 'medplum-signature',
      source: 'medplum',
      good: (body) => ({ 'x-signature': hmacHex(MEDPLUM_SECRET, body) }),
      wrong: { 'x-signature': hmacHex('some-other-secret-entirely', athena(ATHENA_VECTORS[0][0])) },
      header: /X-Signature/,
      bindsBody: true,
    },
  ];
  describe.each(authKinds)('$kind', ({ source, good, wrong, header, bindsBody }) => {
    const body = athena(ATHENA_VECTORS[0][0]);

    it('accepts a good request', async () => {
      expect((await post(source, body, good(body))).status).toBe(200);
    });

    it('refuses a missing and a wrong credential with the same message, naming the header', async () => {
      const [missing] = await refusal(await post(source, body, {}));
      const [wrongText] = await refusal(await post(source, body, wrong));
      expect(missing).toMatch(header);
      expect(wrongText).toBe(missing);
    });

    it(
      bindsBody
        ? 'refuses the credential of the original body on a body changed by one byte'
        : 'does not bind the body (a bearer token is the same for every body)',
      async () => {
        const response = await post(source, oneByteChanged(body), good(body));
        if (bindsBody) expect(await refusal(response)).toEqual([expect.stringMatching(header)]);
        else expect(response.status).toBe(200);
      },
    );
  });

  it('refuses an unknown signature method such as sha1=, even with a correct HMAC-SHA1', async () => {
    const body = athena(ATHENA_VECTORS[0][0]);
    const sha1 = createHmac('sha1', ATHENA_SECRET).update(body).digest('hex');
    await refusal(await post('athena', body, { 'x-hub-signature': `sha1=${sha1}` }));
    await refusal(await post('athena', body, { 'x-hub-signature': hmacHex(ATHENA_SECRET, body) }));
  });

  it('verifies a Medplum delete ({} body with X-Medplum-Deleted-Resource) over the bytes sent', async () => {
    const body = Buffer.from('{}');
    const response = await post('medplum', body, {
      'x-signature': hmacHex(MEDPLUM_SECRET, body),
      'x-medplum-interaction': 'delete',
      'x-medplum-deleted-resource': 'Patient/p1',
    });
    expect(response.status).toBe(200);
  });

  describe('a source with a bearer token and a signature', () => {
    const body = athena(ATHENA_VECTORS[1][0]);
    const bearer = { authorization: `Bearer ${COMBO_TOKEN}` };
    const signed = { 'x-hub-signature': `sha256=${hmacHex(COMBO_SECRET, body)}` };

    it('accepts only when both pass', async () => {
      expect((await post('combo', body, { ...bearer, ...signed })).status).toBe(200);
    });

    it('names each failing header in its own issue', async () => {
      expect(await refusal(await post('combo', body, bearer))).toEqual([
        expect.stringMatching(/X-Hub-Signature/),
      ]);
      expect(await refusal(await post('combo', body, signed))).toEqual([
        expect.stringMatching(/Authorization/),
      ]);
      expect(await refusal(await post('combo', oneByteChanged(body), { ...bearer, ...signed }))).toEqual([
        expect.stringMatching(/X-Hub-Signature/),
      ]);
      expect(await refusal(await post('combo', body, {}))).toEqual([
        expect.stringMatching(/Authorization/),
        expect.stringMatching(/X-Hub-Signature/),
      ]);
    });
  });

  it('keeps the secrets from SOURCES_FILE only hashed or wrapped, and shows them to the admin API as hasSecret', async () => {
    const rows = await store.db.selectFrom('sources').selectAll().execute();
    const stored = JSON.stringify(rows);
    for (const secret of [ATHENA_SECRET, MEDPLUM_SECRET, COMBO_TOKEN, COMBO_SECRET]) {
      expect(stored).not.toContain(secret);
      expect(rows.some((row) => row.signature_secret?.includes(Buffer.from(secret)))).toBe(false);
    }
    // No ADMIN_API_KEY in this stack: the development key is the admin key.
    const response = await fetch(`${base}/admin/sources`, {
      headers: { authorization: 'Bearer dev-admin-key' },
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    for (const secret of [ATHENA_SECRET, MEDPLUM_SECRET, COMBO_TOKEN, COMBO_SECRET, 'demo-token']) {
      expect(text).not.toContain(secret);
    }
    const { sources } = JSON.parse(text) as { sources: { id: string; senderAuth: unknown }[] };
    expect(sources.find((s) => s.id === 'combo')?.senderAuth).toEqual({
      bearer: { hasSecret: true },
      signature: { kind: 'hub-signature', hasSecret: true },
    });
  });
});
