import { createPrivateKey, randomUUID, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { SourceFhirError } from './source-fhir-error';

/** The two algorithms SMART Backend Services clients SHALL support. */
export type ClientAssertionAlgorithm = 'RS384' | 'ES384';

/**
 * Longest assertion lifetime we mint, in seconds. SMART allows at most 300 s; staying at 240 s
 * leaves a minute for the token server's clock to run behind ours without refusing `exp`.
 */
export const ASSERTION_LIFETIME_SECONDS = 240;

/** What {@link signClientAssertion} needs. */
export interface ClientAssertionInput {
  clientId: string;
  /** The token endpoint URL: the assertion's `aud`. */
  tokenUrl: string;
  keyId: string;
  algorithm: ClientAssertionAlgorithm;
  /** From {@link importAssertionKey}. */
  key: KeyObject;
  /** Seconds since the epoch; defaults to the system clock. */
  nowSeconds?: number;
  /** Defaults to {@link ASSERTION_LIFETIME_SECONDS}; capped at 300. */
  lifetimeSeconds?: number;
}

/**
 * Imports a private JWK for signing assertions, checking that it fits the algorithm: RS384 needs an
 * RSA key (2048 bits or more), ES384 an EC key on P-384. Errors never echo key material.
 *
 * @throws SourceFhirError `INVALID_ARGUMENT`
 */
export function importAssertionKey(privateJwk: JsonWebKey, algorithm: ClientAssertionAlgorithm): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privateJwk, format: 'jwk' });
  } catch (error) {
    throw new SourceFhirError('INVALID_ARGUMENT', 'privateKey is not a usable private JWK', { cause: error });
  }
  const details = key.asymmetricKeyDetails;
  if (algorithm === 'RS384') {
    if (key.asymmetricKeyType !== 'rsa' || (details?.modulusLength ?? 0) < 2048) {
      throw new SourceFhirError('INVALID_ARGUMENT', 'RS384 needs an RSA private key of at least 2048 bits');
    }
  } else if (key.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'secp384r1') {
    throw new SourceFhirError('INVALID_ARGUMENT', 'ES384 needs an EC private key on curve P-384');
  }
  return key;
}

/**
 * Signs a SMART Backend Services client assertion (RFC 7523 `private_key_jwt`): header
 * `{alg, kid, typ: "JWT"}`, claims `iss = sub = clientId`, `aud = tokenUrl`, `iat`, `exp` (at most
 * 300 s ahead) and a fresh random `jti` on every call, so the token server can refuse replays.
 *
 * RS384 is RSASSA-PKCS1-v1_5 with SHA-384; ES384 is ECDSA P-384 with SHA-384 and the signature in
 * the JOSE form (r || s, `ieee-p1363`), not DER.
 *
 * The result is a bearer credential: never log it.
 */
export function signClientAssertion(input: ClientAssertionInput): string {
  const now = input.nowSeconds ?? Math.floor(Date.now() / 1000);
  const lifetime = Math.min(input.lifetimeSeconds ?? ASSERTION_LIFETIME_SECONDS, 300);
  const header = { alg: input.algorithm, kid: input.keyId, typ: 'JWT' };
  const claims = {
    iss: input.clientId,
    sub: input.clientId,
    aud: input.tokenUrl,
    iat: now,
    exp: now + lifetime,
    jti: randomUUID(),
  };
  const signingInput = `${base64UrlJson(header)}.${base64UrlJson(claims)}`;
  const signature =
    input.algorithm === 'ES384'
      ? sign('sha384', Buffer.from(signingInput), { key: input.key, dsaEncoding: 'ieee-p1363' })
      : sign('sha384', Buffer.from(signingInput), input.key);
  return `${signingInput}.${signature.toString('base64url')}`;
}

function base64UrlJson(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
