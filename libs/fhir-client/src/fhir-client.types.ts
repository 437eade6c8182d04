import type { JsonWebKey } from 'node:crypto';
import type { OperationOutcomeIssue, Resource, Subscription } from '@medplum/fhirtypes';
import type { NotificationContent, NotificationEvent, NotificationType } from '@fhir-trail/fhir-mapping';
import type { ClientAssertionAlgorithm } from './client-assertion.signer';

/** No credentials (open test servers). */
export interface NoAuth {
  type: 'none';
}

/** A fixed bearer token issued out of band. A 401 is final: there is nothing to refresh. */
export interface BearerAuth {
  type: 'bearer';
  token: string;
}

/**
 * SMART Backend Services: `client_credentials` with a `private_key_jwt` client assertion
 * (HL7 SMART App Launch 2.2, backend-services.md).
 */
export interface SmartBackendAuth {
  type: 'smart-backend';
  clientId: string;
  /** The token endpoint; discovered from `{base}/.well-known/smart-configuration` when absent. */
  tokenUrl?: string;
  /** System scopes, space separated, e.g. `system/Patient.rs system/Subscription.crus`. */
  scope: string;
  /** The private JWK (RSA for RS384, EC P-384 for ES384). */
  privateKey: JsonWebKey;
  /** The `kid` of the matching public key in the JWK Set registered with the source. */
  keyId: string;
  algorithm: ClientAssertionAlgorithm;
}

/** How the client authenticates to the source. */
export type SourceAuth = NoAuth | BearerAuth | SmartBackendAuth;

/** Options of `SourceFhirClient`. */
export interface SourceFhirClientOptions {
  /** The source's FHIR R4 service base, e.g. `https://ehr.example/fhir/r4`. */
  baseUrl: string;
  auth: SourceAuth;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** Budget for one HTTP exchange (connect, headers and body). Defaults to 15 000 ms. */
  timeoutMs?: number;
  /** Largest answer body accepted (`BAD_RESPONSE` beyond). Defaults to 32 MiB. */
  maxResponseBytes?: number;
  /** Most search pages followed before a search stops with `truncated: true`. Defaults to 50. */
  maxSearchPages?: number;
  /** Milliseconds since the epoch; defaults to `Date.now` (tests pass a fake clock). */
  now?: () => number;
}

/** The answer of a read or vread. */
export type ReadResult<T extends Resource = Resource> =
  | { status: 'found'; resource: T }
  /**
   * 410 Gone, or 404 Not Found (servers that hide deletes, or never had the resource): either way
   * the source has nothing to give, which a consumer of notifications treats as a delete.
   */
  | { status: 'deleted'; httpStatus: 404 | 410 };

/** Options of a read. */
export interface ReadOptions {
  /** Join a read of the same resource already in flight (default true); false sends a new request. */
  shareInFlight?: boolean;
}

/** Search parameters: repeated names as arrays (`_lastUpdated: ['gt2024-01-01', 'lt2024-02-01']`). */
export type SearchParams = Readonly<Record<string, string | readonly string[] | undefined>>;

/** Options of a search. */
export interface SearchOptions {
  /** Overrides the client's `maxSearchPages` for this search. */
  maxPages?: number;
}

/** What a search found across all the pages it followed. */
export interface SearchResult<T extends Resource = Resource> {
  /** Entries with `search.mode` match (or no mode) whose type is the searched type, in page order. */
  resources: T[];
  /** `_include` / `_revinclude` entries and other types. */
  included: Resource[];
  /** `Bundle.total` of the first page, when the source sent it. */
  total?: number;
  /** Pages read. */
  pages: number;
  /** True when a `next` link was left unfollowed because of the page cap. */
  truncated: boolean;
}

/** How {@link SourceFhirClient.searchSince} asks for changes. */
export type SinceParameter =
  /** `_lastUpdated=gt{instant}`: the standard search parameter (default). */
  | '_lastUpdated'
  /**
   * `_since={instant}`: what the R4 rest-hook narrative tells a client to re-run its criteria with
   * after an empty ping. Only some servers honour it on a type search.
   */
  | '_since';

/** The answer of `GET Subscription/{id}/$status`, normalised across R4 Parameters and R4B/R5 SubscriptionStatus. */
export interface SubscriptionStatusReport {
  /** The id that was asked about. */
  subscriptionId: string;
  /** `Subscription/{id}` or an absolute URL, as the source sent it. */
  reference?: string;
  /** `requested | active | error | off | entered-in-error`, as sent. */
  status?: string;
  /** Usually `query-status`. */
  type: NotificationType;
  topic?: string;
  /** Decimal string (integer64-safe). */
  eventsSinceSubscriptionStart?: string;
  /** Error codes (e.g. `no-response`), when the source reported some. */
  error?: string[];
  /** Events the status lists (some servers name the latest one). */
  events: NotificationEvent[];
  /** Tolerated departures from the specifications; safe to log. */
  warnings: OperationOutcomeIssue[];
}

/** What the source granted, read back after a create or update (checklist item 18). */
export interface SubscriptionGrant {
  id: string;
  /** `requested | active | error | off`, as stored. */
  status?: string;
  /** The topic canonical (Backport) or criteria (classic). */
  criteria?: string;
  endpoint?: string;
  /** Backport `backport-payload-content`. */
  content?: NotificationContent;
  /** Backport `backport-heartbeat-period`, in seconds. */
  heartbeatPeriodSeconds?: number;
  /** `Subscription.end`. */
  end?: string;
}

/** The Subscription as the source stored it, and the summary of what it granted. */
export interface SubscriptionWriteResult {
  subscription: Subscription & { id: string };
  granted: SubscriptionGrant;
}

/** Options of a Subscription create or update. */
export interface SubscriptionWriteOptions {
  /**
   * Extra request headers for the write only, e.g. athenahealth's `X-Hub-Secret` that sets the
   * HMAC secret of the channel. Never logged.
   */
  headers?: Readonly<Record<string, string>>;
}

/** Event numbers for `$events`: decimal strings (integer64), bigints or safe integers. */
export type EventNumber = string | bigint | number;

/** Options of `$events`. */
export interface SubscriptionEventsOptions {
  /** The content hint; defaults to `full-resource`. */
  content?: NotificationContent;
}
