import type { AuditEvent, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';

/** How the sender put the notification on the wire. */
export type NotificationShape =
  /** `POST` with no body: classic R4 rest-hook without payload ("something changed, re-query"). */
  | 'empty-ping'
  /** The resource itself: HAPI `PUT {endpoint}/{Type}/{id}`, or a Medplum-style `POST` of the resource. */
  | 'bare-resource'
  /** HAPI `DELETE {endpoint}/{Type}/{id}`, or Medplum's `{}` body with `X-Medplum-Deleted-Resource`. */
  | 'resource-delete'
  /** R4 Subscriptions Backport IG: `history` Bundle whose first entry is a `Parameters`. */
  | 'backport-history'
  /**
   * `history` Bundle led by a `SubscriptionStatus`: R4B, R4 servers sending the R4B form
   * (athenahealth), pre-STU backport drafts, pre-release R5 servers.
   */
  | 'r4b-history'
  /** R5: `subscription-notification` Bundle led by a `SubscriptionStatus`. */
  | 'r5-notification';

/** Topic-based notification types, plus `rest-hook` for the classic (criteria-based) shapes. */
export type NotificationType =
  'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event' | 'rest-hook';

/** What happened to the focus resource, as far as the notification says. */
export type NotificationInteraction = 'create' | 'update' | 'delete' | 'unknown';

/**
 * How much of the focus resource arrived.
 * - `full-resource`: `resource` is set.
 * - `id-only`: `focus` says which resource (by reference and/or identifier); fetch it.
 * - `empty`: nothing about the resource; re-query the source (e.g. with `_since`).
 */
export type NotificationContent = 'full-resource' | 'id-only' | 'empty';

/** One inbound HTTP request on a notification endpoint, after JSON parsing. */
export interface NotificationRequest {
  method: 'POST' | 'PUT' | 'DELETE';
  /** The JSON-parsed body, or `undefined` when the body was empty. */
  body: unknown;
  /** `{Type}/{id}` taken from the path (`PUT|DELETE /hooks/{source}/{Type}/{id}`), if there was one. */
  pathResource?: { resourceType: string; id: string };
  /** Request headers with lower-cased names. */
  headers: Readonly<Record<string, string | undefined>>;
}

/** A pointer to a resource: a literal reference, a business identifier, or both. */
export interface NotificationReference {
  /** The reference exactly as sent (relative, absolute or `urn:uuid:`). */
  reference?: string;
  /** Set when the sender identified the resource by identifier (athenahealth sends some foci only this way). */
  identifier?: { system?: string; value?: string };
  /** Parsed from `reference` (or `Reference.type`) when it names a resource by type and id. */
  resourceType?: string;
  id?: string;
  /** Set when `reference` is version-specific, or from `meta.versionId` of a bare resource. */
  versionId?: string;
}

/** An `additionalContext` pointer, with the resource when the Bundle carried it. */
export interface NotificationContext extends NotificationReference {
  resource?: Resource;
  fullUrl?: string;
}

/** One change the notification reports. */
export interface NotificationEvent {
  /**
   * `notificationEvent.id` (R4B/R5 element id). athenahealth sets it and says to de-duplicate on it,
   * because its event numbers restart in every Bundle.
   */
  id?: string;
  /** Decimal string (integer64-safe); absent for classic shapes. */
  eventNumber?: string;
  timestamp?: string;
  interaction: NotificationInteraction;
  content: NotificationContent;
  focus?: NotificationReference;
  /** Set when `content` is `full-resource`. */
  resource?: Resource;
  /** The Bundle entry's `fullUrl` for the focus, when the Bundle had an entry for it. */
  fullUrl?: string;
  additionalContext?: NotificationContext[];
  /** athenahealth: the AuditEvent entry whose id equals this event's `id` (actor, department, patient). */
  auditEvent?: AuditEvent;
}

/** What the notification says about the subscription itself. */
export interface NotificationSubscription {
  /** `Subscription/{id}` or an absolute URL, as sent. */
  reference?: string;
  /** Canonical URL of the SubscriptionTopic. */
  topic?: string;
  /** `requested | active | error | off | entered-in-error` as sent. */
  status?: string;
  /**
   * Decimal string, parsed tolerantly from a string, a JSON number or a `valueString` /
   * `valueUnsignedInt` / `valueInteger` / `valueInteger64` parameter.
   */
  eventsSinceSubscriptionStart?: string;
  /** Pre-release / athenahealth `eventsInNotification` (`events-in-notification`), when sent. */
  eventsInNotification?: number;
  /** Error codes (or texts when uncoded), e.g. `no-response`, `unreachable`. */
  error?: string[];
}

/** The result of {@link parseNotification}. */
export interface ParsedNotification {
  shape: NotificationShape;
  notificationType: NotificationType;
  subscription?: NotificationSubscription;
  events: NotificationEvent[];
  /**
   * Tolerated departures from the specifications (severity `warning`, FHIRPath in `expression`),
   * e.g. a `history` entry without `request`. Safe to log: they never quote resource data.
   */
  warnings: OperationOutcomeIssue[];
  /** `Bundle.id` of a notification Bundle. */
  bundleId?: string;
  /** `Bundle.timestamp` of a notification Bundle. */
  timestamp?: string;
}
