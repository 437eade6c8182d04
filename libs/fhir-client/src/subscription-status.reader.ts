import type { Extension, Subscription } from '@medplum/fhirtypes';
import {
  FhirRequestError,
  parseNotification,
  parseResourceReference,
  type NotificationContent,
  type ParsedNotification,
} from '@fhir-trail/fhir-mapping';
import type { SubscriptionGrant, SubscriptionStatusReport } from './fhir-client.types';
import { isJsonObject } from './http-exchange';
import { SourceFhirError } from './source-fhir-error';

/**
 * Reads the answers of the Subscriptions Backport operations with the bridge's own notification
 * parser (`parseNotification` from `@fhir-trail/fhir-mapping`), so counters, value[x] variants
 * and shape quirks are tolerated exactly as they are for inbound notifications.
 */

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
const PAYLOAD_CONTENT_URL = `${BACKPORT}backport-payload-content`;
const HEARTBEAT_PERIOD_URL = `${BACKPORT}backport-heartbeat-period`;
const STATUS_TYPES: ReadonlySet<unknown> = new Set(['Parameters', 'SubscriptionStatus']);
const NOTIFICATION_BUNDLE_TYPES: ReadonlySet<unknown> = new Set(['history', 'subscription-notification']);

/**
 * The answer of `GET Subscription/{id}/$status`: a `searchset` Bundle with one status resource per
 * Subscription (Parameters in R4, SubscriptionStatus in R4B), or, from some servers, a
 * notification-shaped Bundle of type `query-status`.
 *
 * @throws SourceFhirError `BAD_RESPONSE` when neither shape is there or no status is for `subscriptionId`
 */
export function readStatusAnswer(body: unknown, subscriptionId: string): SubscriptionStatusReport {
  if (!isJsonObject(body) || body.resourceType !== 'Bundle') {
    throw badAnswer('$status', 'the answer is not a Bundle');
  }
  if (NOTIFICATION_BUNDLE_TYPES.has(body.type)) {
    return toReport(parseOperationBundle(body, '$status'), subscriptionId);
  }
  if (body.type !== 'searchset') {
    throw badAnswer('$status', 'the answer is neither a searchset nor a notification Bundle');
  }
  const entries = Array.isArray(body.entry) ? (body.entry as unknown[]) : [];
  const statuses = entries
    .filter(isJsonObject)
    .filter((entry) => isJsonObject(entry.resource) && STATUS_TYPES.has(entry.resource.resourceType));
  // One status resource per Subscription: wrap each as the first entry of a notification Bundle
  // (where the parser expects it) and keep the one about the Subscription asked for.
  const parsed = statuses.map((entry) =>
    parseOperationBundle(
      {
        resourceType: 'Bundle',
        type: 'history',
        entry: [
          {
            ...entry,
            request: { method: 'GET', url: `Subscription/${subscriptionId}/$status` },
            response: { status: '200' },
          },
        ],
      },
      '$status',
    ),
  );
  const match =
    parsed.find((status) => namesSubscription(status.subscription?.reference, subscriptionId)) ??
    (parsed.length === 1 ? parsed[0] : undefined);
  if (!match) throw badAnswer('$status', 'the answer holds no status for the subscription asked about');
  return toReport(match, subscriptionId);
}

/**
 * The answer of `GET Subscription/{id}/$events`: a notification Bundle (`history` in R4) of type
 * `query-event`, parsed with `parseNotification`. Event numbers come back as decimal strings.
 *
 * @throws SourceFhirError `BAD_RESPONSE` when it is not a notification Bundle
 */
export function readEventsAnswer(body: unknown): ParsedNotification {
  if (!isJsonObject(body) || body.resourceType !== 'Bundle' || !NOTIFICATION_BUNDLE_TYPES.has(body.type)) {
    throw badAnswer('$events', 'the answer is not a history or subscription-notification Bundle');
  }
  return parseOperationBundle(body, '$events');
}

/** What a stored Subscription grants: status, content level, heartbeat, endpoint. */
export function grantOf(subscription: Subscription & { id: string }): SubscriptionGrant {
  const grant: SubscriptionGrant = { id: subscription.id };
  if (subscription.status !== undefined) grant.status = subscription.status;
  if (subscription.criteria !== undefined) grant.criteria = subscription.criteria;
  if (subscription.end !== undefined) grant.end = subscription.end;
  const channel = subscription.channel as Subscription['channel'] | undefined;
  if (channel?.endpoint !== undefined) grant.endpoint = channel.endpoint;
  const payloadExtensions = (channel as { _payload?: { extension?: Extension[] } } | undefined)?._payload
    ?.extension;
  const content = payloadExtensions?.find((extension) => extension.url === PAYLOAD_CONTENT_URL)?.valueCode;
  if (content === 'full-resource' || content === 'id-only' || content === 'empty') {
    grant.content = content satisfies NotificationContent;
  }
  const heartbeat = channel?.extension?.find((extension) => extension.url === HEARTBEAT_PERIOD_URL);
  const period = heartbeat?.valueUnsignedInt ?? heartbeat?.valueInteger ?? heartbeat?.valuePositiveInt;
  if (typeof period === 'number') grant.heartbeatPeriodSeconds = period;
  return grant;
}

function parseOperationBundle(bundle: Record<string, unknown>, operation: string): ParsedNotification {
  try {
    return parseNotification({ method: 'POST', body: bundle, headers: {} });
  } catch (error) {
    if (error instanceof FhirRequestError) {
      // Its message names element paths only, never values: safe to carry.
      throw badAnswer(operation, error.message, error);
    }
    throw error;
  }
}

function toReport(parsed: ParsedNotification, subscriptionId: string): SubscriptionStatusReport {
  const report: SubscriptionStatusReport = {
    subscriptionId,
    type: parsed.notificationType,
    events: parsed.events,
    warnings: parsed.warnings,
  };
  const subscription = parsed.subscription;
  if (subscription?.reference !== undefined) report.reference = subscription.reference;
  if (subscription?.status !== undefined) report.status = subscription.status;
  if (subscription?.topic !== undefined) report.topic = subscription.topic;
  if (subscription?.eventsSinceSubscriptionStart !== undefined) {
    report.eventsSinceSubscriptionStart = subscription.eventsSinceSubscriptionStart;
  }
  if (subscription?.error !== undefined) report.error = subscription.error;
  return report;
}

function namesSubscription(reference: string | undefined, subscriptionId: string): boolean {
  if (reference === undefined) return false;
  const address = parseResourceReference(reference);
  return address?.resourceType === 'Subscription' && address.id === subscriptionId;
}

function badAnswer(operation: string, reason: string, cause?: unknown): SourceFhirError {
  return new SourceFhirError('BAD_RESPONSE', `Subscription ${operation}: ${reason}`, {
    ...(cause === undefined ? {} : { cause }),
  });
}
