import { createHash, createHmac } from 'node:crypto';
import { FhirRequestError } from '@fhir-trail/fhir-mapping';
import type { SenderCredentials } from '@fhir-trail/store';
import { readFixtureBytes } from '../../../../test/fixtures/fixture-files';
import { authenticateSender, signatureMatches } from './sender-authentication';

/** test/fixtures/subscriptions/athenahealth/SOURCES.md: the repository's local test secret and vectors. */
const ATHENA_SECRET = Buffer.from('SecretHashKeyForConsumer1');
const ATHENA_VECTORS: readonly (readonly [string, string])[] = [
  [
    'send-patient-notification.json',
    'sha256=74c46018cd75fc09c7176a6ed3c98606230f826d27ae770d34a9fe4031354da7',
  ],
  ['send-order-notification.json', 'sha256=f528cc71a3e0032482465fc4b55cda0f63d230e2072cbfdceb8c2feaf6a91838'],
  [
    'send-appointment-notification.json',
    'sha256=a7cd1196b24559701f2fb699a364845c16d3a920455abf047042eb650e2c3563',
  ],
];

const athena = (file: string) => readFixtureBytes(`subscriptions/athenahealth/${file}`);

/** The body with the byte at `index` changed (one bit flipped, so it stays the same length). */
function oneByteChanged(body: Buffer, index: number): Buffer {
  const changed = Buffer.from(body);
  changed[index] ^= 0x01;
  return changed;
}

describe('X-Hub-Signature (athenahealth) over the raw body bytes', () => {
  it.each(ATHENA_VECTORS)('verifies the published vector for %s', (file, header) => {
    expect(signatureMatches('hub-signature', ATHENA_SECRET, header, athena(file))).toBe(true);
  });

  const changes = ATHENA_VECTORS.flatMap(([file, header]) => {
    const length = athena(file).length;
    return [
      [file, 'first', 0, header],
      [file, 'middle', Math.floor(length / 2), header],
      [file, 'last', length - 1, header],
    ] as const;
  });
  it.each(changes)('refuses %s with its %s byte changed', (file, _where, index, header) => {
    expect(
      signatureMatches('hub-signature', ATHENA_SECRET, header, oneByteChanged(athena(file), index)),
    ).toBe(false);
  });

  it.each(ATHENA_VECTORS)('refuses %s with one byte added or re-serialised', (file, header) => {
    const body = athena(file);
    expect(
      signatureMatches('hub-signature', ATHENA_SECRET, header, Buffer.concat([body, Buffer.from('\n')])),
    ).toBe(false);
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(body.toString('utf8'))));
    expect(signatureMatches('hub-signature', ATHENA_SECRET, header, reserialised)).toBe(false);
  });

  it.each(ATHENA_VECTORS)('refuses %s under another secret', (file, header) => {
    expect(
      signatureMatches('hub-signature', Buffer.from('SecretHashKeyForConsumer2'), header, athena(file)),
    ).toBe(false);
  });

  const [file, header] = ATHENA_VECTORS[0];
  const body = athena(file);
  const hex = header.slice('sha256='.length);
  const sha1 = createHmac('sha1', ATHENA_SECRET).update(body).digest('hex');
  it.each([
    ['the published form', header, true],
    ['an upper-case digest', `sha256=${hex.toUpperCase()}`, true],
    ['surrounding blanks', ` ${header} `, true],
    ['a correct HMAC-SHA1 (unknown method sha1=)', `sha1=${sha1}`, false],
    ['the SHA-256 digest under an unknown method', `sha512=${hex}`, false],
    ['no method', hex, false],
    ['a truncated digest', header.slice(0, -2), false],
    ['extra digits', `${header}00`, false],
    ['two signatures joined', `${header}, ${header}`, false],
    ['an empty value', '', false],
    ['no header', undefined, false],
  ])('with %s', (_case, value, expected) => {
    expect(signatureMatches('hub-signature', ATHENA_SECRET, value, body)).toBe(expected);
  });
});

describe('X-Signature (Medplum): bare hex HMAC-SHA256 of the raw body', () => {
  const secret = Buffer.from('medplum-subscription-secret-0001');
  const body = readFixtureBytes('r4-examples/Patient-example.json');
  const hex = createHmac('sha256', secret).update(body).digest('hex');

  it.each([
    ['the HMAC of the body', hex, body, true],
    ['the body with one byte changed', hex, oneByteChanged(body, 10), false],
    ['a hub-style method prefix', `sha256=${hex}`, body, false],
    [
      'the HMAC of an empty body, for a body',
      createHmac('sha256', secret).update('').digest('hex'),
      body,
      false,
    ],
    ['no header', undefined, body, false],
  ])('%s', (_case, value, payload, expected) => {
    expect(signatureMatches('medplum-signature', secret, value, payload)).toBe(expected);
  });
});

describe('authenticateSender: every configured check must pass', () => {
  const token = 'bearer-secret-for-tests-0001';
  const body = athena('send-patient-notification.json');
  const credentials: SenderCredentials = {
    tokenSha256: createHash('sha256').update(token).digest(),
    signature: { kind: 'hub-signature', secret: ATHENA_SECRET },
  };
  const good = { authorization: `Bearer ${token}`, 'x-hub-signature': ATHENA_VECTORS[0][1] };

  const failures = (
    headers: Record<string, string | string[] | undefined>,
    kinds = ['bearer', 'hub-signature'],
  ) => {
    try {
      authenticateSender(kinds as ('bearer' | 'hub-signature')[], credentials, { headers, body });
      return [];
    } catch (error) {
      expect(error).toBeInstanceOf(FhirRequestError);
      const outcome = (error as FhirRequestError).outcome;
      expect((error as FhirRequestError).status).toBe(401);
      expect(outcome.issue.every((issue) => issue.code === 'security')).toBe(true);
      return outcome.issue.map((issue) => issue.details?.text ?? '');
    }
  };

  it('passes with a good bearer token and a good signature', () => {
    expect(failures(good)).toEqual([]);
  });

  it('names each failing header, with the same text whether it is missing or wrong', () => {
    const [badBearer] = failures({ ...good, authorization: 'Bearer wrong-token-wrong-token' });
    const [noBearer] = failures({ 'x-hub-signature': good['x-hub-signature'] });
    expect(badBearer).toMatch(/Authorization/);
    expect(noBearer).toBe(badBearer);
    const [badSignature] = failures({ ...good, 'x-hub-signature': `sha256=${'0'.repeat(64)}` });
    const [noSignature] = failures({ authorization: good.authorization });
    const [sha1Signature] = failures({ ...good, 'x-hub-signature': `sha1=${'0'.repeat(40)}` });
    expect(badSignature).toMatch(/X-Hub-Signature/);
    expect(noSignature).toBe(badSignature);
    expect(sha1Signature).toBe(badSignature);
    expect(failures({})).toEqual([noBearer, noSignature]);
  });

  it('refuses a repeated signature header, and a source with no check configured', () => {
    expect(
      failures({ ...good, 'x-hub-signature': [good['x-hub-signature'], good['x-hub-signature']] }),
    ).toHaveLength(1);
    expect(failures(good, [])).toHaveLength(1);
  });

  it('refuses a signature kind the stored secret is not for', () => {
    expect(failures({ 'x-signature': ATHENA_VECTORS[0][1].slice(7) }, ['medplum-signature'])).toHaveLength(1);
  });
});
