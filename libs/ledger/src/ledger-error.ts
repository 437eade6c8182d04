import { isError } from 'ethers';

/**
 * Machine-readable reasons a ledger operation failed. Callers branch on `code` (and `retryable`),
 * never on the message text.
 */
export type LedgerErrorCode =
  /** A caller passed a value the library cannot use (bad size, malformed hash...). */
  | 'INVALID_ARGUMENT'
  /** A Merkle node needed for a proof or root is not in the node store. */
  | 'MISSING_NODE'
  /** An event record does not follow the v1 record schema. */
  | 'INVALID_EVENT_RECORD'
  /** A proof bundle is malformed (see `details.field`). */
  | 'INVALID_PROOF_BUNDLE'
  /** An anchored checkpoint document is malformed (see `details.field`). */
  | 'INVALID_CHECKPOINT'
  /** A consistency proof document is malformed (see `details.field`). */
  | 'INVALID_CONSISTENCY_PROOF'
  /** The JSON-RPC endpoint did not answer, answered 5xx, or timed out. Retry later. */
  | 'CHAIN_UNAVAILABLE'
  /** No receipt arrived in time. The transaction may still land: check the chain before resending. */
  | 'RECEIPT_TIMEOUT'
  /** The nonce was taken by another transaction (or the replacement was underpriced). Retry. */
  | 'NONCE_CONFLICT'
  /** The signer cannot pay for gas. */
  | 'INSUFFICIENT_FUNDS'
  /** The anchor contract refused the head (`details.revert` names the Solidity error). */
  | 'ANCHOR_REJECTED'
  /** The consent registry refused a grant or revocation (`details.revert` names the Solidity error). */
  | 'CONSENT_REGISTRY_REJECTED'
  /** The anchor transaction was mined but reverted. */
  | 'ANCHOR_REVERTED'
  /** A receipt or log did not have the shape the contract guarantees. */
  | 'UNEXPECTED_CHAIN_DATA'
  /** The remembered deployment points at code that is not the FHIR Trail anchor contract. */
  | 'DEPLOYMENT_MISMATCH'
  /** The anvil binary for this platform is not installed. */
  | 'ANVIL_NOT_INSTALLED'
  /** The embedded chain could not be started, attached to or stopped. */
  | 'EMBEDDED_CHAIN_FAILED'
  /** The Solidity compiler reported errors. */
  | 'COMPILE_FAILED';

/** Codes worth retrying unchanged after a pause (see STYLE.md, "Errors"). */
const RETRYABLE_CODES: ReadonlySet<LedgerErrorCode> = new Set<LedgerErrorCode>([
  'CHAIN_UNAVAILABLE',
  'RECEIPT_TIMEOUT',
  'NONCE_CONFLICT',
]);

/** Socket-level failures; ethers passes these through from its HTTP layer without wrapping them. */
const TRANSPORT_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/** Extra context attached to a {@link LedgerError}: ids and hashes only, never PHI. */
export type LedgerErrorDetails = Readonly<Record<string, string | number | boolean | null>>;

/** The one error type thrown by `@fhir-trail/ledger`. */
export class LedgerError extends Error {
  override readonly name = 'LedgerError';
  /** Whether retrying the same operation later can succeed (network trouble, timeouts, nonce races). */
  readonly retryable: boolean;
  /** Machine-readable context (for example `field`, `revert`, `txHash`). */
  readonly details: LedgerErrorDetails;

  constructor(
    readonly code: LedgerErrorCode,
    message: string,
    options: { cause?: unknown; details?: LedgerErrorDetails } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = RETRYABLE_CODES.has(code);
    this.details = options.details ?? {};
  }
}

/** True when `error` is a {@link LedgerError}, optionally with the given code. */
export function isLedgerError(error: unknown, code?: LedgerErrorCode): error is LedgerError {
  return error instanceof LedgerError && (code === undefined || error.code === code);
}

/**
 * Sorts an error thrown by ethers or by the JSON-RPC endpoint into a {@link LedgerError}, keeping
 * the original as `cause`. Network, server and timeout failures are retryable; nonce races are
 * retryable after re-reading the nonce; everything else is permanent.
 */
export function toLedgerError(error: unknown, action: string): LedgerError {
  if (error instanceof LedgerError) {
    return error;
  }
  if (isError(error, 'NETWORK_ERROR') || isError(error, 'SERVER_ERROR') || isError(error, 'TIMEOUT')) {
    return new LedgerError('CHAIN_UNAVAILABLE', `${action}: the chain endpoint failed (${error.code})`, {
      cause: error,
    });
  }
  if (isError(error, 'NONCE_EXPIRED') || isError(error, 'REPLACEMENT_UNDERPRICED')) {
    return new LedgerError('NONCE_CONFLICT', `${action}: ${error.code}`, { cause: error });
  }
  if (isError(error, 'INSUFFICIENT_FUNDS')) {
    return new LedgerError('INSUFFICIENT_FUNDS', `${action}: the signer cannot pay for gas`, {
      cause: error,
    });
  }
  if (isFetchFailure(error) || TRANSPORT_ERROR_CODES.has(systemErrorCode(error) ?? '')) {
    return new LedgerError('CHAIN_UNAVAILABLE', `${action}: the chain endpoint is unreachable`, {
      cause: error,
    });
  }
  return new LedgerError('UNEXPECTED_CHAIN_DATA', `${action}: ${errorMessage(error)}`, { cause: error });
}

/**
 * The `code` of a Node.js system error (`ENOENT`, `EEXIST`...). Duck-typed on purpose: errors
 * made in another realm (a vm context, jest's sandbox) fail `instanceof Error`.
 */
export function systemErrorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    return error.code;
  }
  return undefined;
}

/** The message of anything thrown (duck-typed, like {@link systemErrorCode}). */
export function errorMessage(error: unknown): string {
  if (
    typeof error === 'object' &&
    error !== null &&
    'message' in error &&
    typeof error.message === 'string'
  ) {
    return error.message;
  }
  return String(error);
}

/** `fetch` rejects with a TypeError whose cause is the socket error (ECONNREFUSED...). */
function isFetchFailure(error: unknown): boolean {
  return errorMessage(error) === 'fetch failed';
}
