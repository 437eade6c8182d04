import { createHmac, timingSafeEqual } from 'node:crypto';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import {
  type SenderAuthKind,
  type SenderCredentials,
  type SignatureKind,
  tokenMatches,
} from '@fhir-trail/store';
import { single } from '../fhir/json-body';

/** The parts of a request sender authentication looks at: headers and the exact body bytes. */
export interface SenderRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/** The header each signature kind arrives in (Fastify gives header names in lower case). */
export const SIGNATURE_HEADERS: Readonly<Record<SignatureKind, string>> = {
  'hub-signature': 'x-hub-signature',
  'medplum-signature': 'x-signature',
};

/**
 * One message per check, the same whether the header is missing, malformed, of an unknown method
 * or simply wrong: a caller probing the endpoint learns which header is expected, nothing more.
 */
const FAILURE_TEXT: Readonly<Record<SenderAuthKind, string>> = {
  bearer: 'the Authorization header is missing or is not a valid bearer token for this source',
  'hub-signature':
    "the X-Hub-Signature header is missing or is not sha256=<hex HMAC-SHA256 of the raw body> under this source's secret",
  'medplum-signature':
    "the X-Signature header is missing or is not the hex HMAC-SHA256 of the raw body under this source's secret",
};

const HEX_SHA256 = /^[0-9A-Fa-f]{64}$/;
/** WebSub style `method=hex`; athenahealth warns the method may change, so it is checked, not assumed. */
const HUB_SIGNATURE = /^\s*([A-Za-z0-9-]+)=([0-9A-Fa-f]+)\s*$/;

/**
 * True when `header` carries the HMAC-SHA256 of exactly `body` under `secret`, in the format of
 * `kind`: athenahealth `X-Hub-Signature: sha256=<hex>` (any other method, e.g. `sha1=`, is refused)
 * or Medplum `X-Signature: <hex>`. The digests are compared in constant time.
 */
export function signatureMatches(
  kind: SignatureKind,
  secret: Buffer,
  header: string | undefined,
  body: Buffer,
): boolean {
  if (header === undefined) return false;
  let hex: string;
  if (kind === 'hub-signature') {
    const match = HUB_SIGNATURE.exec(header);
    if (!match || match[1].toLowerCase() !== 'sha256') return false;
    hex = match[2];
  } else {
    hex = header.trim();
  }
  if (!HEX_SHA256.test(hex)) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(hex, 'hex'));
}

/**
 * Runs every check configured for the source — all of them, even after one fails, so the time
 * taken does not tell which failed — and throws 401 (`security`) naming each failing header.
 * A source with no check configured is refused outright.
 */
export function authenticateSender(
  kinds: readonly SenderAuthKind[],
  credentials: SenderCredentials,
  request: SenderRequest,
): void {
  const failures: OperationOutcomeIssue[] = [];
  for (const kind of kinds) {
    if (!passes(kind, credentials, request)) {
      failures.push(outcomeIssue({ code: 'security', text: FAILURE_TEXT[kind] }));
    }
  }
  if (kinds.length === 0) {
    failures.push(
      outcomeIssue({ code: 'security', text: 'this source has no sender authentication configured' }),
    );
  }
  if (failures.length > 0) throw new FhirRequestError(401, operationOutcome(failures));
}

function passes(kind: SenderAuthKind, credentials: SenderCredentials, request: SenderRequest): boolean {
  if (kind === 'bearer') {
    const header = single(request.headers.authorization);
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) return false;
    // The source's own secret, or the secret of a subscription the bridge created on it; every
    // candidate is compared (constant time each) so the answer does not reveal which matched.
    const candidates = [credentials.tokenSha256, ...(credentials.subscriptionTokenSha256s ?? [])];
    let matched = false;
    for (const candidate of candidates) if (candidate && tokenMatches(match[1], candidate)) matched = true;
    return matched;
  }
  const signature = credentials.signature;
  if (!signature || signature.kind !== kind) return false;
  // A repeated signature header is ambiguous: refused rather than picking one.
  const header = request.headers[SIGNATURE_HEADERS[kind]];
  return typeof header === 'string' && signatureMatches(kind, signature.secret, header, request.body);
}
