import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { RecipientJwtVerifier } from './recipient-jwt';

const ISSUER = 'https://auth.example';
const AUDIENCE = 'https://bridge.example/fhir/R4';
const SECRET = 'a-shared-secret-of-at-least-32-characters';
const NOW = Date.parse('2026-01-01T00:00:00Z');
const CLAIMS = { iss: ISSUER, aud: AUDIENCE, sub: 'dest-a', exp: NOW / 1000 + 300 };

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function hs256(payload: object, secret = SECRET): string {
  const input = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function asymmetric(alg: 'RS256' | 'ES256', key: KeyObject, payload: object, kid?: string): string {
  const input = `${encode({ alg, typ: 'JWT', ...(kid ? { kid } : {}) })}.${encode(payload)}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

describe('RecipientJwtVerifier', () => {
  const hsVerifier = new RecipientJwtVerifier({ hs256Secret: SECRET, issuer: ISSUER, audience: AUDIENCE });

  it.each([
    ['a valid token', hs256(CLAIMS), { ok: true, subject: 'dest-a' }],
    ['an audience list naming the bridge', hs256({ ...CLAIMS, aud: ['other', AUDIENCE] }), { ok: true }],
    ['exp within the clock skew', hs256({ ...CLAIMS, exp: NOW / 1000 - 30 }), { ok: true }],
    [
      'an expired token',
      hs256({ ...CLAIMS, exp: NOW / 1000 - 120 }),
      { ok: false, reason: 'expired or without exp' },
    ],
    ['no exp', hs256({ ...CLAIMS, exp: undefined }), { ok: false, reason: 'expired or without exp' }],
    [
      'nbf in the future',
      hs256({ ...CLAIMS, nbf: NOW / 1000 + 600 }),
      { ok: false, reason: 'not yet valid' },
    ],
    [
      'another issuer',
      hs256({ ...CLAIMS, iss: 'https://evil.example' }),
      { ok: false, reason: 'wrong issuer' },
    ],
    ['another audience', hs256({ ...CLAIMS, aud: 'elsewhere' }), { ok: false, reason: 'wrong audience' }],
    ['no subject', hs256({ ...CLAIMS, sub: '' }), { ok: false, reason: 'no subject' }],
    [
      'another secret',
      hs256(CLAIMS, 'another-secret-of-at-least-32-characters'),
      { ok: false, reason: 'bad signature' },
    ],
    ['alg none', `${encode({ alg: 'none' })}.${encode(CLAIMS)}.`, { ok: false, reason: 'bad signature' }],
    ['not a JWS', 'abc.def', { ok: false, reason: 'not a compact JWS' }],
    [
      'a payload that is not JSON',
      `${encode({ alg: 'HS256' })}.bm90LWpzb24.x`,
      { ok: false, reason: 'malformed token' },
    ],
  ])('HS256: %s', (_name, token, expected) => {
    expect(hsVerifier.verify(token, NOW)).toMatchObject(expected);
  });

  it('ES256 against a JWKS, choosing the key by kid', () => {
    const first = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const second = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwks = JSON.stringify({
      keys: [
        { ...first.publicKey.export({ format: 'jwk' }), kid: 'k1' },
        { ...second.publicKey.export({ format: 'jwk' }), kid: 'k2' },
      ],
    });
    const verifier = new RecipientJwtVerifier({ publicKeys: jwks, issuer: ISSUER, audience: AUDIENCE });
    expect(verifier.verify(asymmetric('ES256', second.privateKey, CLAIMS, 'k2'), NOW)).toEqual({
      ok: true,
      subject: 'dest-a',
    });
    // Signed by the second key but naming the first: refused.
    expect(verifier.verify(asymmetric('ES256', second.privateKey, CLAIMS, 'k1'), NOW)).toMatchObject({
      ok: false,
    });
    // Without a secret configured, HS256 tokens are refused.
    expect(verifier.verify(hs256(CLAIMS), NOW)).toMatchObject({ ok: false, reason: 'bad signature' });
  });

  it('RS256 against a PEM public key; an EC signature claiming RS256 is refused', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = rsa.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const verifier = new RecipientJwtVerifier({ publicKeys: pem, issuer: ISSUER, audience: AUDIENCE });
    expect(verifier.verify(asymmetric('RS256', rsa.privateKey, CLAIMS), NOW)).toMatchObject({ ok: true });
    const tampered = asymmetric('RS256', rsa.privateKey, CLAIMS).replace(
      /\.[^.]+\./,
      `.${encode({ ...CLAIMS, sub: 'dest-b' })}.`,
    );
    expect(verifier.verify(tampered, NOW)).toMatchObject({ ok: false, reason: 'bad signature' });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(verifier.verify(asymmetric('ES256', ec.privateKey, CLAIMS), NOW)).toMatchObject({ ok: false });
  });
});
