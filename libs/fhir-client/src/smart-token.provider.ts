import type { KeyObject } from 'node:crypto';
import { importAssertionKey, signClientAssertion } from './client-assertion.signer';
import type { SmartBackendAuth } from './fhir-client.types';
import { httpExchange, isJsonObject, parseJson, type HttpTransport } from './http-exchange';
import { SourceBaseUrl } from './source-base-url';
import { SourceFhirError, type SourceFhirErrorOptions } from './source-fhir-error';

/**
 * Tokens are dropped this long before `expires_in` runs out (or at half their life when that is
 * shorter), so a request never leaves with a token that expires on the way.
 */
const REFRESH_MARGIN_MS = 30_000;

/** SMART says `expires_in` SHOULD NOT exceed 300 s; used when a token server leaves it out. */
const DEFAULT_EXPIRES_IN_SECONDS = 300;

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

interface CachedToken {
  token: string;
  refreshAt: number;
}

/**
 * Access tokens for one source through SMART Backend Services (`client_credentials` +
 * `private_key_jwt`).
 *
 * - The token endpoint is taken from the configuration or discovered once from
 *   `{base}/.well-known/smart-configuration` (and checked to support `private_key_jwt` and the
 *   algorithm, when the document says).
 * - A token is reused until {@link REFRESH_MARGIN_MS} before it expires; callers asking while a
 *   token request is under way share it (one request, however many callers).
 * - Every token request carries a freshly signed assertion with a new `jti`.
 * - Tokens and assertions never appear in errors; there is no logging here.
 */
export class SmartTokenProvider {
  private readonly key: KeyObject;
  private cached?: CachedToken;
  private pending?: Promise<string>;
  private tokenUrl?: Promise<string>;

  constructor(
    private readonly auth: SmartBackendAuth,
    private readonly base: SourceBaseUrl,
    private readonly transport: HttpTransport,
    private readonly now: () => number,
  ) {
    if (auth.clientId === '' || auth.keyId === '') {
      throw new SourceFhirError('INVALID_ARGUMENT', 'smart-backend auth needs a clientId and a keyId');
    }
    this.key = importAssertionKey(auth.privateKey, auth.algorithm);
    if (auth.tokenUrl !== undefined) {
      this.tokenUrl = Promise.resolve(this.checkTokenUrl(auth.tokenUrl, 'INVALID_ARGUMENT'));
    }
  }

  /** A valid access token: the cached one, the one being requested, or a new one. */
  accessToken(): Promise<string> {
    if (this.cached && this.now() < this.cached.refreshAt) return Promise.resolve(this.cached.token);
    this.pending ??= this.requestToken().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  /**
   * Forgets `token` after the source refused it (401). Only the token that failed is dropped, so
   * when many requests fail together the first caller's fresh token is not thrown away by the rest.
   */
  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = undefined;
  }

  private async requestToken(): Promise<string> {
    const tokenUrl = await this.resolveTokenUrl();
    const assertion = signClientAssertion({
      clientId: this.auth.clientId,
      tokenUrl,
      keyId: this.auth.keyId,
      algorithm: this.auth.algorithm,
      key: this.key,
      nowSeconds: Math.floor(this.now() / 1000),
    });
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      scope: this.auth.scope,
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: assertion,
    });
    const requestedAt = this.now();
    const answer = await httpExchange(
      this.transport,
      tokenUrl,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
      },
      'token request',
    ).catch((error: unknown) => {
      throw tokenFailed('the token endpoint could not be reached', { cause: error, retryable: true });
    });

    const body = parseJson(answer.text);
    if (answer.status !== 200) {
      // OAuth 2.0 §5.2 error codes (invalid_client, invalid_scope...) are safe to keep; the
      // free-text error_description is not kept, it may echo what we sent.
      const oauthError = isJsonObject(body) && typeof body.error === 'string' ? body.error : undefined;
      throw tokenFailed(`the token endpoint refused the request (HTTP ${answer.status})`, {
        status: answer.status,
        retryable: answer.status >= 500 || answer.status === 429,
        details: oauthError === undefined ? {} : { oauthError },
      });
    }
    if (!isJsonObject(body) || typeof body.access_token !== 'string' || body.access_token === '') {
      throw tokenFailed('the token response has no access_token', { status: answer.status });
    }
    if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer') {
      throw tokenFailed('the token response is not a bearer token', { status: answer.status });
    }
    const expiresIn =
      typeof body.expires_in === 'number' && body.expires_in > 0
        ? body.expires_in
        : DEFAULT_EXPIRES_IN_SECONDS;
    const lifetimeMs = expiresIn * 1000;
    const margin = Math.min(REFRESH_MARGIN_MS, lifetimeMs / 2);
    // Counted from when the request left: the token's clock started no earlier than that.
    this.cached = { token: body.access_token, refreshAt: requestedAt + lifetimeMs - margin };
    return body.access_token;
  }

  private resolveTokenUrl(): Promise<string> {
    this.tokenUrl ??= this.discoverTokenUrl().catch((error: unknown) => {
      // Do not remember a failed discovery: the next caller tries again.
      this.tokenUrl = undefined;
      throw error;
    });
    return this.tokenUrl;
  }

  private async discoverTokenUrl(): Promise<string> {
    const answer = await httpExchange(
      this.transport,
      this.base.join('.well-known/smart-configuration'),
      { method: 'GET', headers: { accept: 'application/json' } },
      'SMART configuration discovery',
    ).catch((error: unknown) => {
      throw tokenFailed('SMART configuration discovery failed', { cause: error, retryable: true });
    });
    if (answer.status !== 200) {
      throw tokenFailed(`SMART configuration discovery answered HTTP ${answer.status}`, {
        status: answer.status,
        retryable: answer.status >= 500 || answer.status === 429,
      });
    }
    const config = parseJson(answer.text);
    if (!isJsonObject(config) || typeof config.token_endpoint !== 'string') {
      throw tokenFailed('the SMART configuration has no token_endpoint', { status: answer.status });
    }
    const methods = config.token_endpoint_auth_methods_supported;
    if (Array.isArray(methods) && !methods.includes('private_key_jwt')) {
      throw tokenFailed('the source does not support private_key_jwt client authentication');
    }
    const algorithms = config.token_endpoint_auth_signing_alg_values_supported;
    if (Array.isArray(algorithms) && !algorithms.includes(this.auth.algorithm)) {
      throw tokenFailed(`the source does not accept ${this.auth.algorithm} client assertions`);
    }
    return this.checkTokenUrl(config.token_endpoint, 'TOKEN_FAILED');
  }

  /**
   * The token endpoint must be a URL, and https unless the source itself is plain http (tests).
   * It is returned as written: it is also the assertion's `aud`, which servers compare as a string.
   */
  private checkTokenUrl(tokenUrl: string, code: 'INVALID_ARGUMENT' | 'TOKEN_FAILED'): string {
    let url: URL | undefined;
    try {
      url = new URL(tokenUrl);
    } catch {
      url = undefined;
    }
    const allowed = this.base.isPlainHttp ? ['https:', 'http:'] : ['https:'];
    if (!url || !allowed.includes(url.protocol) || url.username !== '' || url.password !== '') {
      throw new SourceFhirError(code, 'The token endpoint must be an https URL without credentials', {
        retryable: false,
      });
    }
    return tokenUrl;
  }
}

function tokenFailed(reason: string, options: SourceFhirErrorOptions = {}): SourceFhirError {
  return new SourceFhirError('TOKEN_FAILED', `No access token: ${reason}`, { retryable: false, ...options });
}

/** Access tokens for a FHIR endpoint the bridge calls (a source, or a sharing destination). */
export interface AccessTokens {
  /** A valid access token (cached until shortly before it expires). */
  accessToken(): Promise<string>;
  /** Forgets `token` after the server refused it (401). */
  invalidate(token: string): void;
}

/**
 * A SMART Backend Services token provider for any FHIR base URL (e.g. a sharing destination),
 * with its own transport: `timeoutMs` per token exchange (default 10 s), 1 MiB answers at most.
 *
 * @throws SourceFhirError `INVALID_ARGUMENT` for a bad base URL, key or token URL
 */
export function smartTokenProvider(
  auth: SmartBackendAuth,
  baseUrl: string,
  options: { readonly fetch?: typeof fetch; readonly timeoutMs?: number; readonly now?: () => number } = {},
): AccessTokens {
  const fetchFunction = options.fetch ?? globalThis.fetch;
  return new SmartTokenProvider(
    auth,
    SourceBaseUrl.parse(baseUrl),
    {
      fetch: (input, init) => fetchFunction(input, init),
      timeoutMs: options.timeoutMs ?? 10_000,
      maxResponseBytes: 1024 * 1024,
    },
    options.now ?? Date.now,
  );
}
