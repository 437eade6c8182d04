import { createHmac, createPublicKey, type KeyObject, timingSafeEqual, verify } from 'node:crypto';

/** How recipients' bearer JWTs are checked. */
export interface RecipientJwtSettings {
  readonly hs256Secret?: string;
  /** PEM public key, or JWKS JSON (`{"keys":[…]}`), for RS256 / ES256. */
  readonly publicKeys?: string;
  readonly issuer: string;
  readonly audience: string;
}

export type JwtVerification =
  { readonly ok: true; readonly subject: string } | { readonly ok: false; readonly reason: string };

/** Clock skew tolerated on `exp` and `nbf`, for clocks a little apart. */
const CLOCK_SKEW_S = 60;

interface PublicKeyEntry {
  readonly kid?: string;
  readonly key: KeyObject;
}

/**
 * Verifies compact JWS bearer tokens (RFC 7519): HS256 against a shared secret, RS256 / ES256
 * against a PEM key or a JWKS (chosen by `kid` when the token names one). The token must carry
 * `exp` (not past), `iss` and `aud` as configured, a `sub`, and `nbf` (if any) not in the future.
 * Reasons never contain the token's contents.
 */
export class RecipientJwtVerifier {
  private readonly keys: readonly PublicKeyEntry[];

  constructor(private readonly settings: RecipientJwtSettings) {
    this.keys = settings.publicKeys ? parsePublicKeys(settings.publicKeys) : [];
  }

  verify(token: string, now: number = Date.now()): JwtVerification {
    const parts = token.split('.');
    if (parts.length !== 3) return { ok: false, reason: 'not a compact JWS' };
    const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];
    const header = decodeJson(encodedHeader);
    const payload = decodeJson(encodedPayload);
    if (!header || !payload) return { ok: false, reason: 'malformed token' };
    const signed = Buffer.from(`${encodedHeader}.${encodedPayload}`, 'ascii');
    const signature = Buffer.from(encodedSignature, 'base64url');
    if (!this.signatureValid(header, signed, signature)) return { ok: false, reason: 'bad signature' };

    const seconds = Math.floor(now / 1000);
    if (typeof payload['exp'] !== 'number' || payload['exp'] + CLOCK_SKEW_S < seconds)
      return { ok: false, reason: 'expired or without exp' };
    if (typeof payload['nbf'] === 'number' && payload['nbf'] - CLOCK_SKEW_S > seconds)
      return { ok: false, reason: 'not yet valid' };
    if (payload['iss'] !== this.settings.issuer) return { ok: false, reason: 'wrong issuer' };
    const audience = payload['aud'];
    const audiences = Array.isArray(audience) ? audience : [audience];
    if (!audiences.includes(this.settings.audience)) return { ok: false, reason: 'wrong audience' };
    const subject = payload['sub'];
    if (typeof subject !== 'string' || subject === '') return { ok: false, reason: 'no subject' };
    return { ok: true, subject };
  }

  private signatureValid(header: Record<string, unknown>, signed: Buffer, signature: Buffer): boolean {
    switch (header['alg']) {
      case 'HS256': {
        if (!this.settings.hs256Secret) return false;
        const expected = createHmac('sha256', this.settings.hs256Secret).update(signed).digest();
        return expected.length === signature.length && timingSafeEqual(expected, signature);
      }
      case 'RS256':
      case 'ES256': {
        const kid = typeof header['kid'] === 'string' ? header['kid'] : undefined;
        const candidates = this.keys.filter((k) => kid === undefined || k.kid === undefined || k.kid === kid);
        return candidates.some((k) => {
          const type = k.key.asymmetricKeyType;
          if ((header['alg'] === 'RS256') !== (type === 'rsa')) return false;
          if (header['alg'] === 'ES256' && type !== 'ec') return false;
          try {
            return verify('sha256', signed, { key: k.key, dsaEncoding: 'ieee-p1363' }, signature);
          } catch {
            return false;
          }
        });
      }
      default:
        // `none` and every other algorithm are refused.
        return false;
    }
  }
}

function parsePublicKeys(text: string): PublicKeyEntry[] {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return [{ key: createPublicKey(trimmed) }];
  const jwks = JSON.parse(trimmed) as { keys?: (Record<string, unknown> & { kid?: string })[] };
  return (jwks.keys ?? []).map((jwk) => ({
    ...(typeof jwk.kid === 'string' ? { kid: jwk.kid } : {}),
    key: createPublicKey({ key: jwk, format: 'jwk' }),
  }));
}

function decodeJson(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
