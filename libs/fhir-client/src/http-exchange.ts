import type { OperationOutcome } from '@medplum/fhirtypes';
import { SourceFhirError } from './source-fhir-error';

/** One complete HTTP answer, body read as text. */
export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
}

/** How requests go out: the `fetch` to use and the budgets for one complete exchange. */
export interface HttpTransport {
  fetch: typeof fetch;
  timeoutMs: number;
  /** Largest answer body read; more is `BAD_RESPONSE` (read as a stream, never buffered past it). */
  maxResponseBytes: number;
}

/**
 * Sends one request and reads the whole answer within `timeoutMs` (connect, headers and body).
 * Redirects are not followed (`redirect: 'manual'`): a redirect could lead off the source's base
 * URL and take the bearer token with it, so a 3xx reaches the caller as a status like any other.
 *
 * @param what the operation and resource type for messages, e.g. `read Patient` (never an id)
 * @throws SourceFhirError `TIMEOUT` or `UNREACHABLE`, with the fetch error as `cause`
 */
export async function httpExchange(
  transport: HttpTransport,
  url: string,
  init: RequestInit,
  what: string,
): Promise<HttpAnswer> {
  const signal = AbortSignal.timeout(transport.timeoutMs);
  try {
    const response = await transport.fetch(url, { ...init, redirect: 'manual', signal });
    const text = await readText(response, transport.maxResponseBytes, what);
    return { status: response.status, headers: response.headers, text };
  } catch (error) {
    if (error instanceof SourceFhirError) throw error;
    if (signal.aborted || isTimeout(error)) {
      throw new SourceFhirError('TIMEOUT', `${what}: no complete answer within ${transport.timeoutMs} ms`, {
        cause: error,
      });
    }
    throw new SourceFhirError('UNREACHABLE', `${what}: the source could not be reached`, { cause: error });
  }
}

/** The body as UTF-8 text (a byte-order mark dropped), refusing anything over `maxBytes`. */
async function readText(response: Response, maxBytes: number, what: string): Promise<string> {
  const tooLarge = (): SourceFhirError =>
    new SourceFhirError('BAD_RESPONSE', `${what}: the answer is larger than ${maxBytes} bytes`, {
      status: response.status,
    });
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return '';
  const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return new TextDecoder('utf-8').decode(Buffer.concat(chunks));
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
}

/** JSON.parse that answers `undefined` instead of throwing. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** True for a plain JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The OperationOutcome in an error body, if the source sent one. */
export function outcomeOf(text: string): OperationOutcome | undefined {
  const body = parseJson(text);
  return isJsonObject(body) && body.resourceType === 'OperationOutcome' && Array.isArray(body.issue)
    ? (body as unknown as OperationOutcome)
    : undefined;
}
