import type { OperationOutcome } from '@medplum/fhirtypes';

/**
 * Machine-readable reasons a call to a source FHIR server failed. Callers branch on `code` and
 * `retryable`, never on the message text.
 */
export type SourceFhirErrorCode =
  /** No connection: DNS failure, refused, reset. Retry later. */
  | 'UNREACHABLE'
  /** No complete answer within `timeoutMs`. Retry later. */
  | 'TIMEOUT'
  /** 401 even after a fresh token (or with a static bearer token). */
  | 'UNAUTHORIZED'
  /** 403: the token is valid but the source withholds the data (scope, consent, policy). */
  | 'FORBIDDEN'
  /** 404 where "deleted" is not a meaningful answer (an operation, an unknown Subscription). */
  | 'NOT_FOUND'
  /** Another 4xx (400, 405, 409, 412, 422...): the source refused the request as sent. */
  | 'REQUEST_REJECTED'
  /** 429: the source asks us to slow down. Retry later. */
  | 'RATE_LIMITED'
  /** 5xx. Retry later. */
  | 'SERVER_ERROR'
  /** The answer was not what FHIR promises (not JSON, wrong resource type, a redirect, a bad Bundle). */
  | 'BAD_RESPONSE'
  /** No access token: discovery or the token endpoint failed (`retryable` says whether it may pass). */
  | 'TOKEN_FAILED'
  /** A reference or link points outside the source's own base URL (SSRF guard); nothing was sent. */
  | 'REFERENCE_REFUSED'
  /** The caller passed something unusable (bad resource type, id, URL, key); nothing was sent. */
  | 'INVALID_ARGUMENT';

/** Codes worth retrying unchanged after a pause (STYLE.md, "Errors"). */
const RETRYABLE_CODES: ReadonlySet<SourceFhirErrorCode> = new Set<SourceFhirErrorCode>([
  'UNREACHABLE',
  'TIMEOUT',
  'RATE_LIMITED',
  'SERVER_ERROR',
]);

/** Extra context: operation names, resource types, OAuth error codes. Never ids of patients or PHI. */
export type SourceFhirErrorDetails = Readonly<Record<string, string | number | boolean>>;

/** Options of {@link SourceFhirError}. */
export interface SourceFhirErrorOptions {
  /** HTTP status the source answered with, when it answered. */
  status?: number;
  /** The OperationOutcome the source sent with the error, kept as sent (it may hold PHI: do not log it). */
  outcome?: OperationOutcome;
  /** Overrides the default for the code (used for `TOKEN_FAILED`, which may or may not pass). */
  retryable?: boolean;
  details?: SourceFhirErrorDetails;
  cause?: unknown;
}

/**
 * The one error type thrown by `@fhir-trail/fhir-client`.
 *
 * Its `message` names the operation, the resource type and the HTTP status only: never a resource
 * id, a token, an assertion or text from the source's answer, so it is safe to log. The source's
 * OperationOutcome is kept in `outcome` for callers that need it (treat it as PHI).
 */
export class SourceFhirError extends Error {
  override readonly name = 'SourceFhirError';
  /** Whether retrying the same call later can succeed. */
  readonly retryable: boolean;
  /** HTTP status of the source's answer, when there was one. */
  readonly status?: number;
  /** The source's OperationOutcome, when it sent one. May contain PHI: never log it. */
  readonly outcome?: OperationOutcome;
  readonly details: SourceFhirErrorDetails;

  constructor(
    readonly code: SourceFhirErrorCode,
    message: string,
    options: SourceFhirErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options.retryable ?? RETRYABLE_CODES.has(code);
    if (options.status !== undefined) this.status = options.status;
    if (options.outcome !== undefined) this.outcome = options.outcome;
    this.details = options.details ?? {};
  }
}

/** True when `error` is a {@link SourceFhirError}, optionally with the given code. */
export function isSourceFhirError(error: unknown, code?: SourceFhirErrorCode): error is SourceFhirError {
  return error instanceof SourceFhirError && (code === undefined || error.code === code);
}

/** The error code for an HTTP status that is not a success (2xx). */
export function codeForStatus(status: number): SourceFhirErrorCode {
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404 || status === 410) return 'NOT_FOUND';
  if (status === 429) return 'RATE_LIMITED';
  if (status >= 500) return 'SERVER_ERROR';
  if (status >= 400) return 'REQUEST_REJECTED';
  // 1xx/3xx: redirects are not followed (they could lead off the source's base URL).
  return 'BAD_RESPONSE';
}
