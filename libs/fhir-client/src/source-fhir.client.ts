import type { Bundle, Resource, Subscription } from '@medplum/fhirtypes';
import { parseResourceReference, type ParsedNotification } from '@fhir-trail/fhir-mapping';
import type {
  EventNumber,
  ReadOptions,
  ReadResult,
  SearchOptions,
  SearchParams,
  SearchResult,
  SinceParameter,
  SourceFhirClientOptions,
  SubscriptionEventsOptions,
  SubscriptionStatusReport,
  SubscriptionWriteOptions,
  SubscriptionWriteResult,
} from './fhir-client.types';
import {
  httpExchange,
  isJsonObject,
  outcomeOf,
  parseJson,
  type HttpAnswer,
  type HttpTransport,
} from './http-exchange';
import { checkId, checkResourceType, SourceBaseUrl, type SourceResourceAddress } from './source-base-url';
import { codeForStatus, SourceFhirError } from './source-fhir-error';
import { SmartTokenProvider } from './smart-token.provider';
import { grantOf, readEventsAnswer, readStatusAnswer } from './subscription-status.reader';

const FHIR_JSON = 'application/fhir+json';

/** One exchange with a slow EHR; generous because id-only fetches run in workers, not in a request. */
const DEFAULT_TIMEOUT_MS = 15_000;

/** Enough for any catch-up after an empty ping; more means the caller should narrow the query. */
const DEFAULT_MAX_SEARCH_PAGES = 50;

/** Far above any resource or search page we expect; a bound on what a faulty source can make us hold. */
const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

/** integer64, the type of Backport event numbers. */
const INT64_MAX = 9223372036854775807n;

interface RequestExtras {
  body?: string;
  headers?: Readonly<Record<string, string>>;
}

/**
 * A FHIR R4 REST client for ONE source system (an EHR that sends us notifications): reads and
 * vreads for id-only and empty notifications, paged searches for catch-up, and the Subscriptions
 * Backport operations (`$status`, `$events`) plus Subscription create/update with read-back.
 *
 * Guarantees:
 * - **Only the source's own base URL is ever requested.** Relative references resolve against it;
 *   absolute references, `next` links and redirects that lead elsewhere are refused
 *   (`REFERENCE_REFUSED`) or not followed, so a forged notification cannot aim the client (and its
 *   token) at another host.
 * - **SMART Backend Services tokens** are cached until shortly before expiry and shared by
 *   concurrent callers; a 401 drops the token and retries once with a new one.
 * - **Concurrent reads of the same `Type/id` share one request**; each caller gets its own copy.
 * - **Every failure is a {@link SourceFhirError}** with a `code`, `retryable` and the HTTP status;
 *   messages carry operation names and resource types only (no ids, no tokens, no resource text).
 *
 * Framework-free and without logging; safe to share across concurrent jobs for one source.
 */
export class SourceFhirClient {
  /** The normalised base URL (no trailing slash). */
  readonly baseUrl: string;
  private readonly base: SourceBaseUrl;
  private readonly transport: HttpTransport;
  private readonly maxSearchPages: number;
  private readonly tokens?: SmartTokenProvider;
  private readonly staticToken?: string;
  private readonly readsInFlight = new Map<string, Promise<ReadResult>>();

  /** @throws SourceFhirError `INVALID_ARGUMENT` for a bad base URL, key or option */
  constructor(options: SourceFhirClientOptions) {
    this.base = SourceBaseUrl.parse(options.baseUrl);
    this.baseUrl = this.base.href;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new SourceFhirError('INVALID_ARGUMENT', 'timeoutMs must be a positive number');
    }
    const fetchFunction = options.fetch ?? globalThis.fetch;
    this.transport = {
      // Called as a plain function: some fetch implementations refuse another `this`.
      fetch: (input, init) => fetchFunction(input, init),
      timeoutMs,
      maxResponseBytes: positiveInteger(
        options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
        'maxResponseBytes',
      ),
    };
    this.maxSearchPages = positiveInteger(
      options.maxSearchPages ?? DEFAULT_MAX_SEARCH_PAGES,
      'maxSearchPages',
    );
    const auth = options.auth;
    if (auth.type === 'bearer') {
      if (auth.token === '') throw new SourceFhirError('INVALID_ARGUMENT', 'bearer auth needs a token');
      this.staticToken = auth.token;
    } else if (auth.type === 'smart-backend') {
      this.tokens = new SmartTokenProvider(auth, this.base, this.transport, options.now ?? Date.now);
    }
  }

  /**
   * `GET {base}/{type}/{id}`. 404 and 410 answer `{ status: 'deleted' }`.
   *
   * Concurrent reads of the same resource share one request (a burst of notifications about one
   * patient costs the source one read). A read that joins one in flight gets the version that was
   * current when that request left: a caller that knows of a newer version (a notification's
   * `meta.versionId`) compares and reads again with `{ shareInFlight: false }`.
   *
   * @throws SourceFhirError (`INVALID_ARGUMENT` for a bad type or id, before anything is sent)
   */
  async read<T extends Resource = Resource>(
    resourceType: string,
    id: string,
    options: ReadOptions = {},
  ): Promise<ReadResult<T>> {
    const url = this.base.resourceUrl(resourceType, id);
    if (options.shareInFlight === false) {
      return (await this.fetchResource(url, resourceType, id, `read ${resourceType}`)) as ReadResult<T>;
    }
    const key = `${resourceType}/${id}`;
    let pending = this.readsInFlight.get(key);
    if (!pending) {
      pending = this.fetchResource(url, resourceType, id, `read ${resourceType}`).finally(() => {
        this.readsInFlight.delete(key);
      });
      this.readsInFlight.set(key, pending);
    }
    // Callers share the answer, not the object: one caller's edits must not reach another.
    return structuredClone(await pending) as ReadResult<T>;
  }

  /** `GET {base}/{type}/{id}/_history/{versionId}`; 404 and 410 answer `{ status: 'deleted' }`. */
  async vread<T extends Resource = Resource>(
    resourceType: string,
    id: string,
    versionId: string,
  ): Promise<ReadResult<T>> {
    const url = this.base.resourceUrl(resourceType, id, versionId);
    return (await this.fetchResource(url, resourceType, id, `vread ${resourceType}`)) as ReadResult<T>;
  }

  /**
   * Resolves a literal reference from a notification against the source's base URL (SSRF guard):
   * `Patient/123` and `{base}/Patient/123` are accepted; an absolute URL on any other base is
   * refused with `REFERENCE_REFUSED`.
   */
  resolveReference(reference: string): SourceResourceAddress {
    return this.base.resolveReference(reference);
  }

  /**
   * Fetches what a reference names: a vread for a version-specific reference, else a read.
   *
   * @throws SourceFhirError `REFERENCE_REFUSED` for a reference outside the base URL (nothing sent)
   */
  async readReference<T extends Resource = Resource>(reference: string): Promise<ReadResult<T>> {
    const address = this.base.resolveReference(reference);
    return address.versionId === undefined
      ? await this.read<T>(address.resourceType, address.id)
      : await this.vread<T>(address.resourceType, address.id, address.versionId);
  }

  /**
   * `GET {base}/{type}?{params}`, following `link[relation=next]` (only on the base URL) until the
   * last page or the page cap, which sets `truncated`.
   */
  async search<T extends Resource = Resource>(
    resourceType: string,
    params: SearchParams = {},
    options: SearchOptions = {},
  ): Promise<SearchResult<T>> {
    const what = `search ${checkResourceType(resourceType)}`;
    const maxPages = positiveInteger(options.maxPages ?? this.maxSearchPages, 'maxPages');
    const query = toQuery(params);
    let url = query === '' ? this.base.typeUrl(resourceType) : `${this.base.typeUrl(resourceType)}?${query}`;
    const result: SearchResult<T> = { resources: [], included: [], pages: 0, truncated: false };
    const visited = new Set<string>();
    for (;;) {
      visited.add(url);
      const bundle = this.bundleOf(this.ok(await this.send('GET', url, what), what), what, 'searchset');
      result.pages += 1;
      if (result.pages === 1 && typeof bundle.total === 'number') result.total = bundle.total;
      for (const entry of bundle.entry ?? []) {
        const resource = entry.resource as unknown;
        if (!isJsonObject(resource) || typeof resource.resourceType !== 'string') continue;
        const mode = entry.search?.mode;
        if (mode === 'outcome') continue;
        if ((mode === undefined || mode === 'match') && resource.resourceType === resourceType) {
          result.resources.push(resource as unknown as T);
        } else {
          result.included.push(resource as unknown as Resource);
        }
      }
      const next = bundle.link?.find((link) => link.relation === 'next')?.url;
      if (next === undefined) return result;
      const nextUrl = this.base.checkLink(next, `${what} next link`);
      if (visited.has(nextUrl)) {
        throw new SourceFhirError('BAD_RESPONSE', `${what}: the next link repeats a page already read`);
      }
      if (result.pages >= maxPages) {
        result.truncated = true;
        return result;
      }
      url = nextUrl;
    }
  }

  /**
   * Everything of a type changed after `since`: `_lastUpdated=gt{since}` (default), or
   * `_since={since}` as the R4 rest-hook narrative tells a client to re-run its criteria after an
   * empty ping. Deleted resources do not show up in a search: deletes need the notification (or
   * a `_history` read) to be seen.
   */
  async searchSince<T extends Resource = Resource>(
    resourceType: string,
    since: Date,
    params: SearchParams = {},
    options: SearchOptions & { using?: SinceParameter } = {},
  ): Promise<SearchResult<T>> {
    if (Number.isNaN(since.getTime()))
      throw new SourceFhirError('INVALID_ARGUMENT', 'since is not a valid date');
    const instant = since.toISOString();
    const using = options.using ?? '_lastUpdated';
    const merged: Record<string, string | readonly string[] | undefined> = { ...params };
    if (using === '_lastUpdated') {
      const existing = merged._lastUpdated;
      const previous = existing === undefined ? [] : typeof existing === 'string' ? [existing] : existing;
      merged._lastUpdated = [...previous, `gt${instant}`];
    } else {
      merged._since = instant;
    }
    return await this.search<T>(resourceType, merged, options);
  }

  /**
   * `GET {base}/Subscription/{id}/$status`, parsed whether the source answers with the searchset of
   * the Backport IG (R4 Parameters or R4B SubscriptionStatus) or a notification-shaped Bundle.
   *
   * @throws SourceFhirError `NOT_FOUND` for an unknown Subscription, `BAD_RESPONSE` for an answer
   * that holds no status for it
   */
  async subscriptionStatus(subscriptionId: string): Promise<SubscriptionStatusReport> {
    const what = 'Subscription $status';
    const url = `${this.base.resourceUrl('Subscription', subscriptionId)}/$status`;
    const answer = this.ok(await this.send('GET', url, what), what);
    return readStatusAnswer(this.jsonOf(answer, what), subscriptionId);
  }

  /**
   * `GET {base}/Subscription/{id}/$events?eventsSinceNumber={from}&eventsUntilNumber={to}&content=…`
   * (both bounds inclusive): the events a receiver missed, as a parsed `query-event` notification.
   * Sources may keep only recent events; fall back to {@link searchSince} when some are missing.
   */
  async subscriptionEvents(
    subscriptionId: string,
    from: EventNumber,
    to: EventNumber,
    options: SubscriptionEventsOptions = {},
  ): Promise<ParsedNotification> {
    const what = 'Subscription $events';
    const since = eventNumber(from, 'from');
    const until = eventNumber(to, 'to');
    if (BigInt(since) > BigInt(until)) {
      throw new SourceFhirError('INVALID_ARGUMENT', 'the first event number is after the last');
    }
    const query = new URLSearchParams({
      eventsSinceNumber: since,
      eventsUntilNumber: until,
      content: options.content ?? 'full-resource',
    });
    const url = `${this.base.resourceUrl('Subscription', subscriptionId)}/$events?${query.toString()}`;
    const answer = this.ok(await this.send('GET', url, what), what);
    return readEventsAnswer(this.jsonOf(answer, what));
  }

  /**
   * `POST {base}/Subscription`, then reads the Subscription back: a source may change what was
   * asked (content level, heartbeat period, status), and the read-back is what it granted.
   */
  async createSubscription(
    subscription: Subscription,
    options: SubscriptionWriteOptions = {},
  ): Promise<SubscriptionWriteResult> {
    const what = 'create Subscription';
    if (subscription.resourceType !== 'Subscription') {
      throw new SourceFhirError('INVALID_ARGUMENT', 'createSubscription needs a Subscription resource');
    }
    // The server assigns id and meta on create.
    const body: Subscription = { ...subscription };
    delete body.id;
    delete body.meta;
    const answer = this.ok(
      await this.send('POST', this.base.typeUrl('Subscription'), what, {
        body: JSON.stringify(body),
        headers: { ...options.headers, prefer: 'return=representation' },
      }),
      what,
    );
    const id = createdId(answer);
    if (id === undefined) {
      throw new SourceFhirError('BAD_RESPONSE', `${what}: the answer names no id (no Location, no resource)`);
    }
    return this.readBackSubscription(id, what);
  }

  /** `PUT {base}/Subscription/{id}` (e.g. `status: 'requested'` to reactivate), then reads it back. */
  async updateSubscription(
    subscription: Subscription & { id: string },
    options: SubscriptionWriteOptions = {},
  ): Promise<SubscriptionWriteResult> {
    const what = 'update Subscription';
    if (subscription.resourceType !== 'Subscription') {
      throw new SourceFhirError('INVALID_ARGUMENT', 'updateSubscription needs a Subscription resource');
    }
    const url = this.base.resourceUrl('Subscription', subscription.id);
    this.ok(
      await this.send('PUT', url, what, {
        body: JSON.stringify(subscription),
        headers: { ...options.headers },
      }),
      what,
    );
    return this.readBackSubscription(subscription.id, what);
  }

  // -------------------------------------------------------------------------------------------

  private async readBackSubscription(id: string, what: string): Promise<SubscriptionWriteResult> {
    // Not through read(): a read already in flight may have left before the write.
    const url = this.base.resourceUrl('Subscription', checkId(id, 'Subscription id'));
    const result = await this.fetchResource(url, 'Subscription', id, `read back ${what}`);
    if (result.status !== 'found') {
      throw new SourceFhirError('BAD_RESPONSE', `${what}: the Subscription cannot be read back`, {
        status: result.httpStatus,
      });
    }
    const subscription = result.resource as Subscription & { id: string };
    return { subscription, granted: grantOf(subscription) };
  }

  private async fetchResource(
    url: string,
    resourceType: string,
    id: string,
    what: string,
  ): Promise<ReadResult> {
    const answer = await this.send('GET', url, what);
    if (answer.status === 404 || answer.status === 410)
      return { status: 'deleted', httpStatus: answer.status };
    const body = this.jsonOf(this.ok(answer, what), what);
    if (!isJsonObject(body) || body.resourceType !== resourceType || body.id !== id) {
      throw new SourceFhirError('BAD_RESPONSE', `${what}: the answer is not the resource asked for`, {
        status: answer.status,
      });
    }
    return { status: 'found', resource: body as unknown as Resource };
  }

  /**
   * Sends one request with the current credentials. With SMART Backend Services a 401 drops the
   * token and the request is sent once more with a new one (the source may have revoked it, or its
   * clock may run ahead of ours); a second 401 is the caller's answer.
   */
  private async send(
    method: string,
    url: string,
    what: string,
    extras: RequestExtras = {},
  ): Promise<HttpAnswer> {
    for (let attempt = 0; ; attempt += 1) {
      const token = this.tokens ? await this.tokens.accessToken() : this.staticToken;
      const headers: Record<string, string> = { accept: FHIR_JSON, ...extras.headers };
      if (extras.body !== undefined) headers['content-type'] = FHIR_JSON;
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      const init: RequestInit = { method, headers };
      if (extras.body !== undefined) init.body = extras.body;
      const answer = await httpExchange(this.transport, url, init, what);
      if (answer.status === 401 && this.tokens && token !== undefined && attempt === 0) {
        this.tokens.invalidate(token);
        continue;
      }
      return answer;
    }
  }

  /** The answer when it is a success (2xx); otherwise the matching {@link SourceFhirError}. */
  private ok(answer: HttpAnswer, what: string): HttpAnswer {
    if (answer.status >= 200 && answer.status < 300) return answer;
    const redirect = answer.status >= 300 && answer.status < 400 ? ' (redirects are not followed)' : '';
    const outcome = outcomeOf(answer.text);
    throw new SourceFhirError(
      codeForStatus(answer.status),
      `${what}: the source answered HTTP ${answer.status}${redirect}`,
      { status: answer.status, ...(outcome === undefined ? {} : { outcome }) },
    );
  }

  private jsonOf(answer: HttpAnswer, what: string): unknown {
    const body = parseJson(answer.text);
    if (!isJsonObject(body) || typeof body.resourceType !== 'string') {
      throw new SourceFhirError('BAD_RESPONSE', `${what}: the answer is not a FHIR JSON resource`, {
        status: answer.status,
      });
    }
    return body;
  }

  private bundleOf(answer: HttpAnswer, what: string, type: Bundle['type']): Bundle {
    const body = this.jsonOf(answer, what) as Record<string, unknown>;
    if (body.resourceType !== 'Bundle' || body.type !== type) {
      throw new SourceFhirError('BAD_RESPONSE', `${what}: the answer is not a ${type} Bundle`, {
        status: answer.status,
      });
    }
    if (body.entry !== undefined && !Array.isArray(body.entry)) {
      throw new SourceFhirError('BAD_RESPONSE', `${what}: Bundle.entry is not an array`, {
        status: answer.status,
      });
    }
    if (body.link !== undefined && !Array.isArray(body.link)) {
      throw new SourceFhirError('BAD_RESPONSE', `${what}: Bundle.link is not an array`, {
        status: answer.status,
      });
    }
    return body as unknown as Bundle;
  }
}

function toQuery(params: SearchParams): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    for (const item of typeof value === 'string' ? [value] : value) query.append(name, item);
  }
  return query.toString();
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new SourceFhirError('INVALID_ARGUMENT', `${name} must be a positive integer`);
  }
  return value;
}

/** An event number as a canonical decimal string (integer64, non-negative). */
function eventNumber(value: EventNumber, name: string): string {
  let parsed: bigint | undefined;
  if (typeof value === 'bigint') parsed = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) parsed = BigInt(value);
  else if (typeof value === 'string' && /^[0-9]{1,19}$/.test(value)) parsed = BigInt(value);
  if (parsed === undefined || parsed < 0n || parsed > INT64_MAX) {
    throw new SourceFhirError('INVALID_ARGUMENT', `${name} must be a non-negative integer event number`);
  }
  return parsed.toString();
}

/**
 * The id the source gave a created resource: from `Location` (`…/Subscription/{id}/_history/{v}`,
 * only the id is used, nothing is fetched from it), else from the returned resource.
 */
function createdId(answer: HttpAnswer): string | undefined {
  const location = answer.headers.get('location') ?? answer.headers.get('content-location');
  const address = location === null ? undefined : parseResourceReference(location.split('?')[0] ?? '');
  if (address?.resourceType === 'Subscription') return address.id;
  const body = parseJson(answer.text);
  return isJsonObject(body) && body.resourceType === 'Subscription' && typeof body.id === 'string'
    ? body.id
    : undefined;
}
