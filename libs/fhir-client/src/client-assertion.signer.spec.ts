import { generateKeyPairSync, verify } from 'node:crypto';
import {
  ASSERTION_LIFETIME_SECONDS,
  importAssertionKey,
  signClientAssertion,
} from './client-assertion.signer';
import { SourceFhirError } from './source-fhir-error';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });

function decode(segment: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('signClientAssertion', () => {
  it.each([
    ['RS384', rsa, 256],
    ['ES384', ec, 96], // JOSE r || s, 48 bytes each; DER would be longer and variable
  ] as const)('%s: SMART header and claims, verifiable signature', (algorithm, pair, signatureBytes) => {
    const key = importAssertionKey(pair.privateKey.export({ format: 'jwk' }), algorithm);
    const jwt = signClientAssertion({
      clientId: 'bridge-client',
      tokenUrl: 'https://ehr.example/auth/token',
      keyId: 'kid-1',
      algorithm,
      key,
      nowSeconds: 1_700_000_000,
    });
    const [header = '', claims = '', signature = ''] = jwt.split('.');
    expect(decode(header)).toEqual({ alg: algorithm, kid: 'kid-1', typ: 'JWT' });
    expect(decode(claims)).toEqual({
      iss: 'bridge-client',
      sub: 'bridge-client',
      aud: 'https://ehr.example/auth/token',
      iat: 1_700_000_000,
      exp: 1_700_000_000 + ASSERTION_LIFETIME_SECONDS,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/) as string,
    });
    const bytes = Buffer.from(signature, 'base64url');
    expect(bytes).toHaveLength(signatureBytes);
    const publicKey = pair.publicKey;
    const options =
      algorithm === 'ES384' ? { key: publicKey, dsaEncoding: 'ieee-p1363' as const } : publicKey;
    expect(verify('sha384', Buffer.from(`${header}.${claims}`), options, bytes)).toBe(true);
  });

  it('mints a fresh jti every time and never lets exp exceed 300 s', () => {
    const key = importAssertionKey(ec.privateKey.export({ format: 'jwk' }), 'ES384');
    const input = { clientId: 'c', tokenUrl: 'https://t', keyId: 'k', algorithm: 'ES384' as const, key };
    const jtis = new Set(
      Array.from({ length: 20 }, () => decode(signClientAssertion(input).split('.')[1] ?? '').jti),
    );
    expect(jtis.size).toBe(20);
    const long = decode(
      signClientAssertion({ ...input, nowSeconds: 0, lifetimeSeconds: 3600 }).split('.')[1] ?? '',
    );
    expect(long.exp).toBe(300);
  });

  it.each([
    ['an EC key for RS384', ec.privateKey, 'RS384'],
    ['an RSA key for ES384', rsa.privateKey, 'ES384'],
    ['a P-256 key for ES384', ec256.privateKey, 'ES384'],
    ['a public key', ec.publicKey, 'ES384'],
  ] as const)('refuses %s without echoing the key', (_name, keyObject, algorithm) => {
    const jwk = keyObject.export({ format: 'jwk' });
    let caught: unknown;
    try {
      importAssertionKey(jwk, algorithm);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SourceFhirError);
    expect((caught as SourceFhirError).code).toBe('INVALID_ARGUMENT');
    expect((caught as SourceFhirError).message).not.toContain(String(jwk.x ?? jwk.n ?? '').slice(0, 12));
  });
});
