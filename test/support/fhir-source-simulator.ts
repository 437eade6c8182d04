import {
  createHash,
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  verify,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resource } from '@medplum/fhirtypes';

/**
 * A small FHIR R4 source server on node:http, for tests and demos: what an EHR looks like to the
 * bridge, over real HTTP.
 *
 * - Resources with versions (`put`, `delete`), read / vread (404 unknown, 410 deleted), search with
 *   `_id`, `_lastUpdated`, `_since`, `_count` and `next` links.
 * - SMART Backend Services: `/.well-known/smart-configuration` and `POST /auth/token`, which
 *   verifies the client assertion (alg, kid, iss/sub/aud, exp ≤ 5 min, signature, jti not
 *   replayed) against registered public JWKs. With auth on, every FHIR endpoint wants the token.
 * - Subscriptions (R4 Backport IG 1.1.0): create (granted per `subscriptionGrant`), read, update,
 *   `$status` (searchset of a status Parameters) and `$events` (a `query-event` history Bundle from
 *   the per-subscription event log and counter).
 * - A notifier ({@link SubscriptionNotifier}) that delivers notifications of every shape a
 *   receiver meets: Backport / R4B / R5 Bundles, Medplum bare resources, HAPI PUT / DELETE and
 *   empty pings, with `channel.header` lines or an HMAC signature over the exact body bytes.
 * - Counters for tests: token requests, tokens issued, seen `jti`s, reads per resource, a log of
 *   requests (method and path only) and of refused assertions (reason only).
 *
 * Binds 127.0.0.1 on a free port by default; the FHIR base is `http://127.0.0.1:{port}/fhir`.
 */

const FHIR_JSON = 'application/fhir+json';
const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
const PAYLOAD_CONTENT_URL = `${BACKPORT}backport-payload-content`;
const HEARTBEAT_PERIOD_URL = `${BACKPORT}backport-heartbeat-period`;
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const DEFAULT_TOPIC = 'http://example.org/fhir/SubscriptionTopic/simulated-change';
const MAX_BODY_BYTES = 5 * 1024 * 1024;
/** SMART: the assertion's `exp` may be at most five minutes ahead. */
const MAX_ASSERTION_LIFETIME_SECONDS = 300;

type JsonObject = Record<string, unknown>;

/** Assertion signing algorithms of SMART Backend Services. */
export type SimulatorAlgorithm = 'RS384' | 'ES384';

/** How much of the focus resource a notification carries. */
export type SimulatedContent = 'full-resource' | 'id-only' | 'empty';

/** The notification Bundle flavours: R4 Backport (Parameters), R4B-style and R5 (SubscriptionStatus). */
export type SimulatedShape = 'backport' | 'r4b' | 'r5';

/** What happened to the focus of an event. */
export type SimulatedInteraction = 'create' | 'update' | 'delete';

/** A key pair for a SMART client: the private JWK signs, the public JWK is registered. */
export interface SimulatorKeyPair {
  algorithm: SimulatorAlgorithm;
  privateJwk: JsonWebKey;
  publicJwk: JsonWebKey;
  /** RFC 7638 thumbprint of the public key; also set as `kid` on both JWKs. */
  kid: string;
}

/**
 * A fresh key pair for a SMART Backend Services client: RSA 2048 for RS384, EC P-384 for ES384.
 * The `kid` is the key's RFC 7638 thumbprint.
 */
export function generateKeyPair(algorithm: SimulatorAlgorithm): SimulatorKeyPair {
  const { privateKey, publicKey } =
    algorithm === 'RS384'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const publicJwk = publicKey.export({ format: 'jwk' });
  const kid = jwkThumbprint(publicJwk);
  return {
    algorithm,
    privateJwk: { ...privateKey.export({ format: 'jwk' }), kid, alg: algorithm },
    publicJwk: { ...publicJwk, kid, alg: algorithm, use: 'sig' },
    kid,
  };
}

/** RFC 7638: SHA-256 over the required members in lexicographic order, base64url. */
function jwkThumbprint(jwk: JsonWebKey): string {
  const members =
    jwk.kty === 'RSA'
      ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
      : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** Options of {@link FhirSourceSimulator}. */
export interface FhirSourceSimulatorOptions {
  /** Defaults to 127.0.0.1. */
  host?: string;
  /** Defaults to 0 (a free port). */
  port?: number;
  /** Path of the FHIR base on the server; defaults to `/fhir`. */
  basePath?: string;
  /** Require SMART Backend Services tokens on FHIR endpoints. Defaults to off. */
  auth?: { tokenLifetimeSeconds?: number };
  /** Search page size when `_count` is absent; defaults to 10. */
  pageSize?: number;
  /** What a created or updated Subscription is granted (overrides what was asked). */
  subscriptionGrant?: { status?: string; content?: SimulatedContent; heartbeatPeriodSeconds?: number };
  /** Milliseconds since the epoch, for token expiry and assertion `exp` checks. Defaults to `Date.now`. */
  now?: () => number;
}

/** A canned answer (or delay) for requests that match; see {@link FhirSourceSimulator.injectFault}. */
export interface SimulatedFault {
  method?: string;
  /** A RegExp over the request path, or a path: absolute (`/auth/token`) or relative to the base (`Patient/1`). */
  path?: string | RegExp;
  /** Answer with this status instead of the normal handling. Without it, only the delay applies. */
  status?: number;
  /** The answer's body (objects are sent as FHIR JSON); an OperationOutcome when absent. */
  body?: string | object;
  headers?: Readonly<Record<string, string>>;
  /** Wait this long before answering (or before the normal handling). */
  delayMs?: number;
  /** How many matching requests it applies to; defaults to 1. */
  times?: number;
}

/** One request the simulator served (no headers, no bodies). */
export interface SimulatedRequest {
  method: string;
  path: string;
  query: string;
  status: number;
}

/** One event in a subscription's log. */
export interface SimulatedEvent {
  eventNumber: bigint;
  timestamp: string;
  interaction: SimulatedInteraction;
  focus: { resourceType: string; id: string };
  /** The focus as it was when the event happened (absent for a delete). */
  resource?: Resource;
}

interface StoredVersion {
  versionId: string;
  lastUpdated: string;
  /** Absent for a delete marker. */
  resource?: Resource;
}

interface SubscriptionLog {
  counter: bigint;
  events: SimulatedEvent[];
}

interface RegisteredKey {
  kid: string;
  key: KeyObject;
  kty: string;
  crv?: string;
}

interface PendingFault extends SimulatedFault {
  remaining: number;
}

/** Counters for tests. */
export interface SimulatorStats {
  /** Every POST to the token endpoint, accepted or not. */
  tokenRequests: number;
  tokensIssued: number;
  /** The `jti` of every verified assertion, in order. */
  seenJtis: string[];
  /** Why assertions were refused (e.g. `bad signature`), in order. */
  refusedAssertions: string[];
  requests: SimulatedRequest[];
}

/** A FHIR R4 source system for tests and demos. See the file comment for what it serves. */
export class FhirSourceSimulator {
  readonly stats: SimulatorStats = {
    tokenRequests: 0,
    tokensIssued: 0,
    seenJtis: [],
    refusedAssertions: [],
    requests: [],
  };
  private readonly basePath: string;
  private readonly now: () => number;
  private readonly store = new Map<string, StoredVersion[]>();
  private readonly subscriptions = new Map<string, SubscriptionLog>();
  private readonly readCounts = new Map<string, number>();
  private readonly clients = new Map<string, RegisteredKey[]>();
  private readonly tokens = new Map<string, number>();
  private readonly faults: PendingFault[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private server?: Server;
  private origin = '';
  private lastStamp = 0;

  constructor(private readonly options: FhirSourceSimulatorOptions = {}) {
    this.basePath = `/${(options.basePath ?? '/fhir').replace(/^\/+|\/+$/g, '')}`;
    this.now = options.now ?? Date.now;
  }

  /** The FHIR base URL (after {@link start}). */
  get baseUrl(): string {
    return `${this.origin}${this.basePath}`;
  }

  /** The token endpoint (after {@link start}). */
  get tokenUrl(): string {
    return `${this.origin}/auth/token`;
  }

  /** Starts listening; answers the FHIR base URL. */
  async start(): Promise<string> {
    const server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) {
          this.answer(response, 500, outcome('exception', `simulator failure: ${String(error)}`));
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => resolve());
    });
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.origin = `http://${host}:${address.port}`;
    this.server = server;
    return this.baseUrl;
  }

  /** Stops listening and drops open connections (pending delayed answers are abandoned). */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ----------------------------------------------------------------------------- resources

  /**
   * Stores a new version of a resource (assigning an id when it has none): `meta.versionId` goes
   * up by one and `meta.lastUpdated` is strictly later than any earlier write. Returns the stored copy.
   */
  put<T extends Resource>(resource: T): T {
    const copy = structuredClone(resource) as T & { id?: string };
    copy.id ??= randomUUID();
    const key = `${copy.resourceType}/${copy.id}`;
    const versions = this.store.get(key) ?? [];
    const versionId = String(versions.length + 1);
    const lastUpdated = this.stamp();
    copy.meta = { ...copy.meta, versionId, lastUpdated };
    versions.push({ versionId, lastUpdated, resource: copy });
    this.store.set(key, versions);
    return structuredClone(copy);
  }

  /** Deletes a resource (a new version that is a delete marker). Answers false when it was not there. */
  delete(resourceType: string, id: string): boolean {
    const versions = this.store.get(`${resourceType}/${id}`);
    if (!versions || versions.at(-1)?.resource === undefined) return false;
    versions.push({ versionId: String(versions.length + 1), lastUpdated: this.stamp() });
    return true;
  }

  /** The current version, or undefined when unknown or deleted. */
  current<T extends Resource = Resource>(resourceType: string, id: string): T | undefined {
    const resource = this.store.get(`${resourceType}/${id}`)?.at(-1)?.resource;
    return resource === undefined ? undefined : (structuredClone(resource) as T);
  }

  /** How many times `GET {base}/{type}/{id}` reached the resource (after authentication). */
  readCount(resourceType: string, id: string): number {
    return this.readCounts.get(`${resourceType}/${id}`) ?? 0;
  }

  // ----------------------------------------------------------------------------- auth

  /** Registers a SMART client's public JWK (with its `kid`). Several keys per client are allowed. */
  registerClient(clientId: string, publicJwk: JsonWebKey): void {
    if (typeof publicJwk.kid !== 'string') throw new Error('the public JWK needs a kid');
    const key = createPublicKey({ key: publicJwk, format: 'jwk' });
    const keys = this.clients.get(clientId) ?? [];
    const registered: RegisteredKey = { kid: publicJwk.kid, key, kty: String(publicJwk.kty) };
    if (typeof publicJwk.crv === 'string') registered.crv = publicJwk.crv;
    keys.push(registered);
    this.clients.set(clientId, keys);
  }

  /** Invalidates every access token issued so far (the next FHIR request with one gets 401). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  /** Answers (or delays) the next matching request(s) with a canned response. */
  injectFault(fault: SimulatedFault): void {
    this.faults.push({ ...fault, remaining: fault.times ?? 1 });
  }

  // ----------------------------------------------------------------------------- subscriptions

  /**
   * Stores a Subscription as the server would grant it (status, content level and heartbeat per
   * `subscriptionGrant`; status `active` by default, as servers that skip the handshake do) and
   * starts its event counter at 0.
   */
  addSubscription(subscription: Resource): Resource {
    if (subscription.resourceType !== 'Subscription') throw new Error('not a Subscription');
    const stored = this.put(this.grant(subscription));
    this.subscriptions.set(stored.id as string, { counter: 0n, events: [] });
    return stored;
  }

  /**
   * Records that an event happened for a subscription (its counter goes up by one) without
   * delivering anything: a notification the receiver never got, for `$events` to return.
   */
  recordEvent(
    subscriptionId: string,
    resource: Resource,
    interaction?: SimulatedInteraction,
  ): SimulatedEvent {
    const log = this.subscriptionLog(subscriptionId);
    if (resource.id === undefined) throw new Error('the focus resource needs an id');
    log.counter += 1n;
    const event: SimulatedEvent = {
      eventNumber: log.counter,
      timestamp: new Date(this.now()).toISOString(),
      interaction: interaction ?? (resource.meta?.versionId === '1' ? 'create' : 'update'),
      focus: { resourceType: resource.resourceType, id: resource.id },
    };
    if (event.interaction !== 'delete') event.resource = structuredClone(resource);
    log.events.push(event);
    return event;
  }

  /** The event log of a subscription, oldest first. */
  events(subscriptionId: string): readonly SimulatedEvent[] {
    return this.subscriptionLog(subscriptionId).events;
  }

  /** `events-since-subscription-start` of a subscription. */
  eventCount(subscriptionId: string): bigint {
    return this.subscriptionLog(subscriptionId).counter;
  }

  /**
   * A notifier for one subscription and receiver. Without `subscriptionId` a new active
   * Subscription is added (criteria = `topic`, channel = `endpoint` and `headers`).
   */
  notifier(options: NotifierOptions): SubscriptionNotifier {
    const subscriptionId =
      options.subscriptionId ??
      this.addSubscription({
        resourceType: 'Subscription',
        status: 'requested',
        reason: 'FHIR Trail simulator',
        criteria: options.topic ?? DEFAULT_TOPIC,
        channel: {
          type: 'rest-hook',
          endpoint: options.endpoint,
          payload: FHIR_JSON,
          ...(options.headers ? { header: [...options.headers] } : {}),
        },
      }).id;
    if (subscriptionId === undefined) throw new Error('the Subscription has no id');
    return new SubscriptionNotifier(this, subscriptionId, options);
  }

  /** The stored Subscription (for the notifier). */
  subscription(subscriptionId: string): JsonObject {
    this.subscriptionLog(subscriptionId);
    const stored = this.current('Subscription', subscriptionId);
    if (!stored) throw new Error('unknown or deleted Subscription');
    return stored as unknown as JsonObject;
  }

  /**
   * Builds a notification Bundle for a subscription in the given shape: the status resource first,
   * then (for id-only and full-resource) one entry per focus resource.
   */
  notificationBundle(input: NotificationBundleInput): JsonObject {
    const subscription = this.subscription(input.subscriptionId);
    const reference = `${this.baseUrl}/Subscription/${input.subscriptionId}`;
    const topic = typeof subscription.criteria === 'string' ? subscription.criteria : DEFAULT_TOPIC;
    const status = input.status ?? (typeof subscription.status === 'string' ? subscription.status : 'active');
    const counter = String(this.subscriptionLog(input.subscriptionId).counter);
    const content = input.content;
    const focusUrl = (event: SimulatedEvent): string =>
      `${this.baseUrl}/${event.focus.resourceType}/${event.focus.id}`;
    // The IG: topic SHOULD NOT be sent in an event notification with empty content.
    const withTopic = !(content === 'empty' && input.type === 'event-notification');
    const statusId = randomUUID();
    const timestamp = new Date(this.now()).toISOString();

    let statusResource: JsonObject;
    if (input.shape === 'backport') {
      const parameter: JsonObject[] = [
        { name: 'subscription', valueReference: { reference } },
        ...(withTopic ? [{ name: 'topic', valueCanonical: topic }] : []),
        { name: 'status', valueCode: status },
        { name: 'type', valueCode: input.type },
        { name: 'events-since-subscription-start', valueString: counter },
        ...input.events.map((event) => ({
          name: 'notification-event',
          part: [
            { name: 'event-number', valueString: String(event.eventNumber) },
            { name: 'timestamp', valueInstant: event.timestamp },
            ...(content === 'empty'
              ? []
              : [{ name: 'focus', valueReference: { reference: focusUrl(event) } }]),
          ],
        })),
      ];
      statusResource = {
        resourceType: 'Parameters',
        id: statusId,
        meta: { profile: [`${BACKPORT}backport-subscription-status-r4`] },
        parameter,
      };
    } else {
      statusResource = {
        resourceType: 'SubscriptionStatus',
        id: statusId,
        status,
        type: input.type,
        eventsSinceSubscriptionStart: counter,
        ...(input.shape === 'r4b' ? { eventsInNotification: input.events.length } : {}),
        ...(input.events.length > 0
          ? {
              notificationEvent: input.events.map((event) => ({
                eventNumber: String(event.eventNumber),
                timestamp: event.timestamp,
                ...(content === 'empty' ? {} : { focus: { reference: focusUrl(event) } }),
              })),
            }
          : {}),
        subscription: { reference },
        ...(withTopic ? { topic } : {}),
      };
    }

    const statusEntry: JsonObject = { fullUrl: `urn:uuid:${statusId}`, resource: statusResource };
    if (input.shape !== 'r5') {
      // history Bundles: every entry has request/response; the status one mirrors a $status call.
      statusEntry.request = { method: 'GET', url: `${reference}/$status` };
      statusEntry.response = { status: '200' };
    }
    const entries: JsonObject[] = [statusEntry];
    if (content !== 'empty') {
      // One entry per focus resource, holding its latest state among the events.
      const latest = new Map<string, SimulatedEvent>();
      for (const event of input.events) latest.set(focusUrl(event), event);
      for (const [fullUrl, event] of latest) {
        const entry: JsonObject = { fullUrl };
        if (content === 'full-resource' && event.resource) entry.resource = structuredClone(event.resource);
        const { resourceType, id } = event.focus;
        entry.request =
          event.interaction === 'create'
            ? { method: 'POST', url: resourceType }
            : { method: event.interaction === 'delete' ? 'DELETE' : 'PUT', url: `${resourceType}/${id}` };
        entry.response = {
          status: event.interaction === 'create' ? '201' : event.interaction === 'delete' ? '204' : '200',
        };
        entries.push(entry);
      }
    }
    return {
      resourceType: 'Bundle',
      id: randomUUID(),
      ...(input.shape === 'backport'
        ? { meta: { profile: [`${BACKPORT}backport-subscription-notification-r4`] } }
        : {}),
      type: input.shape === 'r5' ? 'subscription-notification' : 'history',
      timestamp,
      entry: entries,
    };
  }

  // ----------------------------------------------------------------------------- HTTP

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', this.origin);
    const method = request.method ?? 'GET';
    const body = await readBody(request);
    const record: SimulatedRequest = { method, path: url.pathname, query: url.search, status: 0 };
    this.stats.requests.push(record);
    const send = (status: number, payload?: string | object, headers: Record<string, string> = {}): void => {
      record.status = status;
      this.answer(response, status, payload, headers);
    };

    const fault = this.takeFault(method, url.pathname);
    if (fault?.delayMs !== undefined) await this.delay(fault.delayMs);
    if (!this.server) return;
    if (fault?.status !== undefined) {
      send(fault.status, fault.body ?? outcome('exception', 'injected fault'), { ...fault.headers });
      return;
    }

    if (url.pathname === '/auth/token') {
      if (method !== 'POST') return send(405, outcome('not-supported', 'POST only'));
      const [status, payload] = this.issueToken(request, body);
      return send(status, payload, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    }
    if (url.pathname !== this.basePath && !url.pathname.startsWith(`${this.basePath}/`)) {
      return send(404, outcome('not-found', 'not a FHIR endpoint'));
    }
    const segments = url.pathname
      .slice(this.basePath.length)
      .split('/')
      .filter((segment) => segment !== '')
      .map((segment) => decodeURIComponent(segment));

    if (method === 'GET' && segments.join('/') === '.well-known/smart-configuration') {
      return send(200, this.smartConfiguration(), { 'content-type': 'application/json' });
    }
    if (method === 'GET' && segments.join('/') === 'metadata') return send(200, this.capabilityStatement());
    if (this.options.auth && !this.authorised(request)) {
      return send(401, outcome('login', 'a valid bearer token is required'), {
        'www-authenticate': 'Bearer error="invalid_token"',
      });
    }
    const [type, id, third, fourth] = segments;
    if (type === undefined || !/^[A-Z][A-Za-z]{0,63}$/.test(type)) {
      return send(404, outcome('not-found', 'unknown endpoint'));
    }
    if (segments.length === 1 && method === 'GET') return send(...this.search(type, url.searchParams));
    if (segments.length === 1 && method === 'POST') return send(...this.create(type, body, request));
    if (id === undefined) return send(405, outcome('not-supported', 'method not supported'));
    if (segments.length === 2 && method === 'GET') {
      this.readCounts.set(`${type}/${id}`, this.readCount(type, id) + 1);
      return send(...this.read(type, id));
    }
    if (segments.length === 2 && method === 'PUT') return send(...this.update(type, id, body));
    if (segments.length === 2 && method === 'DELETE') {
      this.delete(type, id);
      return send(204);
    }
    if (segments.length === 4 && third === '_history' && fourth !== undefined && method === 'GET') {
      return send(...this.read(type, id, fourth));
    }
    if (segments.length === 3 && type === 'Subscription' && method === 'GET' && third === '$status') {
      return send(...this.statusOperation(id));
    }
    if (segments.length === 3 && type === 'Subscription' && method === 'GET' && third === '$events') {
      return send(...this.eventsOperation(id, url.searchParams));
    }
    return send(404, outcome('not-found', 'unknown endpoint'));
  }

  private read(type: string, id: string, versionId?: string): Answer {
    const versions = this.store.get(`${type}/${id}`);
    const version =
      versionId === undefined ? versions?.at(-1) : versions?.find((v) => v.versionId === versionId);
    if (!version) return [404, outcome('not-found', 'resource not found')];
    if (!version.resource) return [410, outcome('deleted', 'resource deleted')];
    return [
      200,
      version.resource,
      { etag: `W/"${version.versionId}"`, 'last-modified': new Date(version.lastUpdated).toUTCString() },
    ];
  }

  private search(type: string, params: URLSearchParams): Answer {
    const filters: ((version: StoredVersion) => boolean)[] = [];
    const ids = params.getAll('_id').flatMap((value) => value.split(','));
    if (ids.length > 0) filters.push((version) => ids.includes(version.resource?.id ?? ''));
    for (const value of params.getAll('_lastUpdated')) {
      const match = /^(eq|ne|gt|lt|ge|le)?(.+)$/.exec(value);
      const instant = Date.parse(match?.[2] ?? '');
      if (!match || Number.isNaN(instant)) return [400, outcome('invalid', '_lastUpdated is not a date')];
      const prefix = match[1] ?? 'eq';
      filters.push((version) => compare(Date.parse(version.lastUpdated), prefix, instant));
    }
    const since = params.get('_since');
    if (since !== null) {
      const instant = Date.parse(since);
      if (Number.isNaN(instant)) return [400, outcome('invalid', '_since is not an instant')];
      filters.push((version) => Date.parse(version.lastUpdated) >= instant);
    }
    const count = Number(params.get('_count') ?? this.options.pageSize ?? 10);
    const offset = Number(params.get('_offset') ?? 0);
    if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(offset) || offset < 0) {
      return [400, outcome('invalid', '_count and _offset must be non-negative integers')];
    }
    const matches = [...this.store.entries()]
      .filter(([key]) => key.startsWith(`${type}/`))
      .map(([, versions]) => versions.at(-1))
      .filter((version): version is StoredVersion & { resource: Resource } => version?.resource !== undefined)
      .filter((version) => filters.every((filter) => filter(version)))
      .sort(
        (a, b) =>
          a.lastUpdated.localeCompare(b.lastUpdated) ||
          String(a.resource.id).localeCompare(String(b.resource.id)),
      );
    const page = matches.slice(offset, offset + count);
    const link = (at: number): string => {
      const query = new URLSearchParams(params);
      query.set('_count', String(count));
      query.set('_offset', String(at));
      return `${this.baseUrl}/${type}?${query.toString()}`;
    };
    const links = [{ relation: 'self', url: link(offset) }];
    if (offset + count < matches.length) links.push({ relation: 'next', url: link(offset + count) });
    return [
      200,
      {
        resourceType: 'Bundle',
        id: randomUUID(),
        type: 'searchset',
        total: matches.length,
        link: links,
        entry: page.map((version) => ({
          fullUrl: `${this.baseUrl}/${type}/${version.resource.id}`,
          resource: version.resource,
          search: { mode: 'match' },
        })),
      },
    ];
  }

  private create(type: string, body: Buffer, request: IncomingMessage): Answer {
    const resource = parseResource(body);
    if (!resource || resource.resourceType !== type) {
      return [400, outcome('invalid', `the body must be a ${type} resource`)];
    }
    delete (resource as { id?: string }).id;
    const stored = type === 'Subscription' ? this.addSubscription(resource) : this.put(resource);
    const location = `${this.baseUrl}/${type}/${stored.id}/_history/${stored.meta?.versionId}`;
    const minimal = /return=minimal/.test(String(request.headers.prefer ?? ''));
    return [201, minimal ? undefined : stored, { location }];
  }

  private update(type: string, id: string, body: Buffer): Answer {
    const resource = parseResource(body);
    if (!resource || resource.resourceType !== type || resource.id !== id) {
      return [400, outcome('invalid', 'the body must be the resource named in the path')];
    }
    const existed = this.current(type, id) !== undefined;
    const stored = type === 'Subscription' ? this.put(this.grant(resource)) : this.put(resource);
    if (type === 'Subscription' && !this.subscriptions.has(id))
      this.subscriptions.set(id, { counter: 0n, events: [] });
    return [existed ? 200 : 201, stored, { etag: `W/"${stored.meta?.versionId}"` }];
  }

  private statusOperation(id: string): Answer {
    if (!this.subscriptions.has(id) || !this.current('Subscription', id)) {
      return [404, outcome('not-found', 'unknown Subscription')];
    }
    const notification = this.notificationBundle({
      subscriptionId: id,
      shape: 'backport',
      type: 'query-status',
      content: 'empty',
      events: [],
    });
    const status = (notification.entry as JsonObject[])[0];
    return [
      200,
      {
        resourceType: 'Bundle',
        id: randomUUID(),
        type: 'searchset',
        timestamp: new Date(this.now()).toISOString(),
        total: 1,
        link: [{ relation: 'self', url: `${this.baseUrl}/Subscription/${id}/$status` }],
        entry: [{ fullUrl: status.fullUrl, resource: status.resource, search: { mode: 'match' } }],
      },
    ];
  }

  private eventsOperation(id: string, params: URLSearchParams): Answer {
    if (!this.subscriptions.has(id) || !this.current('Subscription', id)) {
      return [404, outcome('not-found', 'unknown Subscription')];
    }
    const log = this.subscriptionLog(id);
    const number = (name: string, fallback: bigint): bigint | undefined => {
      const value = params.get(name);
      if (value === null) return fallback;
      return /^[0-9]{1,19}$/.test(value) ? BigInt(value) : undefined;
    };
    const since = number('eventsSinceNumber', 1n);
    const until = number('eventsUntilNumber', log.counter);
    if (since === undefined || until === undefined) {
      return [400, outcome('invalid', 'eventsSinceNumber and eventsUntilNumber must be integers')];
    }
    const requested = params.get('content');
    const content: SimulatedContent =
      requested === 'empty' || requested === 'id-only' || requested === 'full-resource'
        ? requested
        : (grantedContent(this.subscription(id)) ?? 'full-resource');
    const events = log.events.filter((event) => event.eventNumber >= since && event.eventNumber <= until);
    return [
      200,
      this.notificationBundle({
        subscriptionId: id,
        shape: 'backport',
        type: 'query-event',
        content,
        events,
      }),
    ];
  }

  private smartConfiguration(): JsonObject {
    return {
      issuer: this.origin,
      token_endpoint: this.tokenUrl,
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
      grant_types_supported: ['client_credentials'],
      scopes_supported: ['system/*.rs', 'system/Subscription.crus'],
      capabilities: ['client-confidential-asymmetric'],
    };
  }

  private capabilityStatement(): JsonObject {
    return {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: '2024-01-01',
      kind: 'instance',
      fhirVersion: '4.0.1',
      format: ['json'],
      implementation: { description: 'FHIR Trail source simulator', url: this.baseUrl },
      rest: [{ mode: 'server' }],
    };
  }

  // ----------------------------------------------------------------------------- SMART

  private issueToken(request: IncomingMessage, body: Buffer): [number, JsonObject] {
    this.stats.tokenRequests += 1;
    const oauthError = (status: number, error: string, description: string): [number, JsonObject] => [
      status,
      { error, error_description: description },
    ];
    if (!String(request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return oauthError(400, 'invalid_request', 'form-encoded body required');
    }
    const form = new URLSearchParams(body.toString('utf8'));
    if (form.get('grant_type') !== 'client_credentials') {
      return oauthError(400, 'unsupported_grant_type', 'client_credentials only');
    }
    if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) {
      return oauthError(400, 'invalid_request', 'a jwt-bearer client assertion is required');
    }
    const scope = form.get('scope');
    if (!scope) return oauthError(400, 'invalid_scope', 'scope is required');
    const refusal = this.checkAssertion(form.get('client_assertion') ?? '');
    if (refusal !== undefined) {
      this.stats.refusedAssertions.push(refusal);
      return oauthError(401, 'invalid_client', refusal);
    }
    const lifetime = this.options.auth?.tokenLifetimeSeconds ?? 300;
    const token = randomBytes(32).toString('base64url');
    this.tokens.set(token, this.now() + lifetime * 1000);
    this.stats.tokensIssued += 1;
    return [200, { access_token: token, token_type: 'bearer', expires_in: lifetime, scope }];
  }

  /** Answers why the assertion is refused, or undefined when it is good (its jti is then spent). */
  private checkAssertion(assertion: string): string | undefined {
    const parts = assertion.split('.');
    if (parts.length !== 3) return 'malformed assertion';
    const [encodedHeader = '', encodedClaims = '', encodedSignature = ''] = parts;
    const header = decodeJson(encodedHeader);
    const claims = decodeJson(encodedClaims);
    if (!header || !claims) return 'malformed assertion';
    const alg = header.alg;
    if (alg !== 'RS384' && alg !== 'ES384') return 'unsupported alg';
    if (header.typ !== 'JWT') return 'typ must be JWT';
    if (typeof header.kid !== 'string') return 'kid missing';
    if (typeof claims.iss !== 'string') return 'iss missing';
    const keys = this.clients.get(claims.iss);
    if (!keys) return 'unknown client';
    if (claims.sub !== claims.iss) return 'sub must equal iss';
    const key = keys.find((candidate) => candidate.kid === header.kid);
    if (!key) return 'unknown kid';
    if (alg === 'RS384' ? key.kty !== 'RSA' : key.kty !== 'EC' || key.crv !== 'P-384') {
      return 'alg does not match the registered key';
    }
    const signed = Buffer.from(`${encodedHeader}.${encodedClaims}`);
    const signature = Buffer.from(encodedSignature, 'base64url');
    const valid =
      alg === 'ES384'
        ? verify('sha384', signed, { key: key.key, dsaEncoding: 'ieee-p1363' }, signature)
        : verify('sha384', signed, key.key, signature);
    if (!valid) return 'bad signature';
    const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audience.includes(this.tokenUrl)) return 'aud is not the token endpoint';
    const now = this.now() / 1000;
    if (typeof claims.exp !== 'number') return 'exp missing';
    if (claims.exp <= now) return 'assertion expired';
    if (claims.exp > now + MAX_ASSERTION_LIFETIME_SECONDS) return 'exp more than five minutes ahead';
    if (typeof claims.jti !== 'string' || claims.jti === '') return 'jti missing';
    if (this.stats.seenJtis.includes(claims.jti)) return 'jti replayed';
    this.stats.seenJtis.push(claims.jti);
    return undefined;
  }

  private authorised(request: IncomingMessage): boolean {
    const match = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '');
    const expiresAt = match?.[1] === undefined ? undefined : this.tokens.get(match[1]);
    return expiresAt !== undefined && expiresAt > this.now();
  }

  // ----------------------------------------------------------------------------- internals

  private grant(subscription: Resource): Resource {
    const copy = structuredClone(subscription) as unknown as JsonObject;
    const policy = this.options.subscriptionGrant ?? {};
    copy.status = policy.status ?? 'active';
    const channel = (copy.channel ?? {}) as JsonObject;
    copy.channel = channel;
    if (policy.content !== undefined) {
      const payload = (channel._payload ?? {}) as JsonObject;
      const extensions = ((payload.extension ?? []) as JsonObject[]).filter(
        (e) => e.url !== PAYLOAD_CONTENT_URL,
      );
      payload.extension = [...extensions, { url: PAYLOAD_CONTENT_URL, valueCode: policy.content }];
      channel._payload = payload;
    }
    if (policy.heartbeatPeriodSeconds !== undefined) {
      const extensions = ((channel.extension ?? []) as JsonObject[]).filter(
        (e) => e.url !== HEARTBEAT_PERIOD_URL,
      );
      channel.extension = [
        ...extensions,
        { url: HEARTBEAT_PERIOD_URL, valueUnsignedInt: policy.heartbeatPeriodSeconds },
      ];
    }
    return copy as unknown as Resource;
  }

  private subscriptionLog(subscriptionId: string): SubscriptionLog {
    const log = this.subscriptions.get(subscriptionId);
    if (!log) throw new Error('unknown Subscription');
    return log;
  }

  private takeFault(method: string, path: string): PendingFault | undefined {
    const index = this.faults.findIndex(
      (fault) =>
        (fault.method === undefined || fault.method === method) &&
        (fault.path === undefined ||
          (fault.path instanceof RegExp
            ? fault.path.test(path)
            : path === fault.path || path === `${this.basePath}/${fault.path}`)),
    );
    const fault = this.faults[index];
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults.splice(index, 1);
    return fault;
  }

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }

  private answer(
    response: ServerResponse,
    status: number,
    payload?: string | object,
    headers: Record<string, string> = {},
  ): void {
    const text = payload === undefined ? '' : typeof payload === 'string' ? payload : JSON.stringify(payload);
    response.writeHead(status, {
      ...(text === '' ? {} : { 'content-type': FHIR_JSON }),
      ...headers,
      'content-length': String(Buffer.byteLength(text)),
    });
    response.end(text);
  }

  /** Strictly increasing instants, so `_lastUpdated` comparisons in tests are unambiguous. */
  private stamp(): string {
    this.lastStamp = Math.max(Date.now(), this.lastStamp + 1);
    return new Date(this.lastStamp).toISOString();
  }
}

type Answer = [status: number, payload?: string | object, headers?: Record<string, string>];

/** What {@link FhirSourceSimulator.notificationBundle} needs. */
export interface NotificationBundleInput {
  subscriptionId: string;
  shape: SimulatedShape;
  type: 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';
  content: SimulatedContent;
  events: readonly SimulatedEvent[];
  /** Overrides the stored Subscription's status (a handshake says `requested`). */
  status?: string;
}

// =============================================================================== notifier

/** Options of {@link FhirSourceSimulator.notifier}. */
export interface NotifierOptions {
  /** The receiver, e.g. `http://127.0.0.1:8080/hooks/demo`; defaults to the Subscription's `channel.endpoint`. */
  endpoint?: string;
  /** An existing Subscription in the simulator; a new one is added when absent. */
  subscriptionId?: string;
  /** Topic canonical of a new Subscription. */
  topic?: string;
  /** `channel.header` lines (`Name: value`), sent as HTTP headers; default: the Subscription's. */
  headers?: readonly string[];
  /** HMAC-SHA256 over the exact body bytes, as athenahealth (`X-Hub-Signature: sha256=…`) or Medplum (`X-Signature`). */
  signing?: { style: 'x-hub-signature' | 'x-signature'; secret: string };
  /** Per-delivery timeout; defaults to 10 000 ms. */
  timeoutMs?: number;
}

/** Options of {@link SubscriptionNotifier.sendEvent}. */
export interface SendEventOptions {
  content?: SimulatedContent;
  shape?: SimulatedShape;
  /** Record this many events before this one without delivering them: a gap for `$events` to fill. */
  skipNumbers?: number;
  /** Defaults to create for version 1, else update; delete also deletes the resource in the simulator. */
  interaction?: SimulatedInteraction;
}

/** What the receiver answered to one delivery. */
export interface NotificationDelivery {
  method: string;
  url: string;
  /** The exact bytes sent (what a signature covers). */
  body: Buffer;
  /** The request headers sent (including the secret ones: test use only). */
  headers: Record<string, string>;
  status: number;
  responseBody: string;
  /** For `sendEvent`: the event delivered. */
  event?: SimulatedEvent;
}

/**
 * Delivers notifications for one subscription to one receiver, in every shape the bridge accepts.
 * Each `send…` answers the receiver's status and body; nothing is retried.
 */
export class SubscriptionNotifier {
  private readonly endpoint: string;
  private readonly headerLines: readonly string[];

  constructor(
    private readonly simulator: FhirSourceSimulator,
    /** The Subscription the notifications are about. */
    readonly subscriptionId: string,
    private readonly options: NotifierOptions,
  ) {
    const subscription = simulator.subscription(subscriptionId);
    const channel = (subscription.channel ?? {}) as JsonObject;
    const endpoint =
      options.endpoint ?? (typeof channel.endpoint === 'string' ? channel.endpoint : undefined);
    if (endpoint === undefined) throw new Error('the notifier needs an endpoint');
    this.endpoint = endpoint.replace(/\/+$/, '');
    this.headerLines = options.headers ?? (Array.isArray(channel.header) ? (channel.header as string[]) : []);
  }

  /** A `handshake` (status `requested`, the current counter, no events). */
  sendHandshake(options: { shape?: SimulatedShape } = {}): Promise<NotificationDelivery> {
    return this.sendBundle({ type: 'handshake', shape: options.shape, status: 'requested' });
  }

  /** A `heartbeat` (the current counter, no events). */
  sendHeartbeat(options: { shape?: SimulatedShape } = {}): Promise<NotificationDelivery> {
    return this.sendBundle({ type: 'heartbeat', shape: options.shape });
  }

  /**
   * An `event-notification` about `resource`: stores it as a new version unless it is already the
   * current one, records the event (after `skipNumbers` undelivered ones) and delivers it.
   */
  async sendEvent(resource: Resource, options: SendEventOptions = {}): Promise<NotificationDelivery> {
    const interaction = options.interaction;
    let focus: Resource;
    if (interaction === 'delete') {
      if (resource.id === undefined) throw new Error('a deleted resource needs an id');
      this.simulator.delete(resource.resourceType, resource.id);
      focus = resource;
    } else {
      focus = this.stored(resource);
    }
    for (let skipped = 0; skipped < (options.skipNumbers ?? 0); skipped += 1) {
      this.simulator.recordEvent(this.subscriptionId, focus, interaction);
    }
    const event = this.simulator.recordEvent(this.subscriptionId, focus, interaction);
    const delivery = await this.sendBundle({
      type: 'event-notification',
      shape: options.shape,
      content: options.content ?? 'full-resource',
      events: [event],
    });
    return { ...delivery, event };
  }

  /** Medplum: `POST {endpoint}` with the bare resource and X-Medplum-Subscription / -Interaction. */
  sendMedplum(
    resource: Resource,
    interaction: 'create' | 'update' = 'update',
  ): Promise<NotificationDelivery> {
    const stored = this.stored(resource);
    return this.deliver('POST', this.endpoint, Buffer.from(JSON.stringify(stored)), {
      'content-type': FHIR_JSON,
      'x-medplum-subscription': this.subscriptionId,
      'x-medplum-interaction': interaction,
    });
  }

  /** Medplum delete: `POST {endpoint}` with `{}` and X-Medplum-Deleted-Resource (signed over `{}`). */
  sendMedplumDelete(resourceType: string, id: string): Promise<NotificationDelivery> {
    this.simulator.delete(resourceType, id);
    return this.deliver('POST', this.endpoint, Buffer.from('{}'), {
      'content-type': FHIR_JSON,
      'x-medplum-subscription': this.subscriptionId,
      'x-medplum-interaction': 'delete',
      'x-medplum-deleted-resource': `${resourceType}/${id}`,
    });
  }

  /** HAPI classic with payload: `PUT {endpoint}/{Type}/{id}` with the resource. */
  sendHapiUpdate(resource: Resource): Promise<NotificationDelivery> {
    const stored = this.stored(resource);
    return this.deliver(
      'PUT',
      `${this.endpoint}/${stored.resourceType}/${stored.id}`,
      Buffer.from(JSON.stringify(stored)),
      {
        'content-type': FHIR_JSON,
      },
    );
  }

  /** HAPI delete messages: `DELETE {endpoint}/{Type}/{id}` without a body. */
  sendHapiDelete(resourceType: string, id: string): Promise<NotificationDelivery> {
    this.simulator.delete(resourceType, id);
    return this.deliver('DELETE', `${this.endpoint}/${resourceType}/${id}`, Buffer.alloc(0), {});
  }

  /** Classic rest-hook without payload: `POST {endpoint}` with no body ("re-query with _since"). */
  sendPing(): Promise<NotificationDelivery> {
    return this.deliver('POST', this.endpoint, Buffer.alloc(0), {});
  }

  private stored(resource: Resource): Resource {
    const current =
      resource.id === undefined ? undefined : this.simulator.current(resource.resourceType, resource.id);
    // Already the current version (e.g. what put() returned): notify about it as it is.
    if (current && JSON.stringify(current) === JSON.stringify(resource)) return current;
    return this.simulator.put(resource);
  }

  private sendBundle(input: {
    type: NotificationBundleInput['type'];
    shape?: SimulatedShape | undefined;
    content?: SimulatedContent;
    events?: readonly SimulatedEvent[];
    status?: string;
  }): Promise<NotificationDelivery> {
    const bundle = this.simulator.notificationBundle({
      subscriptionId: this.subscriptionId,
      shape: input.shape ?? 'backport',
      type: input.type,
      content: input.content ?? 'empty',
      events: input.events ?? [],
      ...(input.status === undefined ? {} : { status: input.status }),
    });
    return this.deliver('POST', this.endpoint, Buffer.from(JSON.stringify(bundle)), {
      'content-type': FHIR_JSON,
    });
  }

  private async deliver(
    method: string,
    url: string,
    body: Buffer,
    contentHeaders: Record<string, string>,
  ): Promise<NotificationDelivery> {
    const headers: Record<string, string> = { ...contentHeaders };
    for (const line of this.headerLines) {
      // Split at the first colon only (Medplum's split(/:/) truncated values containing one).
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const signing = this.options.signing;
    if (signing) {
      const digest = createHmac('sha256', signing.secret).update(body).digest('hex');
      if (signing.style === 'x-hub-signature') headers['x-hub-signature'] = `sha256=${digest}`;
      else headers['x-signature'] = digest;
    }
    const init: RequestInit = {
      method,
      headers,
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
    };
    if (body.length > 0) init.body = new Uint8Array(body);
    const response = await fetch(url, init);
    return { method, url, body, headers, status: response.status, responseBody: await response.text() };
  }
}

// =============================================================================== helpers

function outcome(code: string, text: string): JsonObject {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] };
}

function compare(value: number, prefix: string, instant: number): boolean {
  switch (prefix) {
    case 'gt':
      return value > instant;
    case 'ge':
      return value >= instant;
    case 'lt':
      return value < instant;
    case 'le':
      return value <= instant;
    case 'ne':
      return value !== instant;
    default:
      return value === instant;
  }
}

function grantedContent(subscription: JsonObject): SimulatedContent | undefined {
  const channel = (subscription.channel ?? {}) as JsonObject;
  const payload = (channel._payload ?? {}) as JsonObject;
  const extension = ((payload.extension ?? []) as JsonObject[]).find((e) => e.url === PAYLOAD_CONTENT_URL);
  const code = extension?.valueCode;
  return code === 'empty' || code === 'id-only' || code === 'full-resource' ? code : undefined;
}

function decodeJson(segment: string): JsonObject | undefined {
  try {
    const value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as JsonObject)
      : undefined;
  } catch {
    return undefined;
  }
}

function parseResource(body: Buffer): Resource | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown;
    return typeof value === 'object' &&
      value !== null &&
      typeof (value as JsonObject).resourceType === 'string'
      ? (value as Resource)
      : undefined;
  } catch {
    return undefined;
  }
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
