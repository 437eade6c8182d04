import type { AuditEvent, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';

import { isRecord, recordField, stringField, type JsonRecord } from './json-value';
import type {
  NotificationContext,
  NotificationEvent,
  NotificationInteraction,
  NotificationReference,
  NotificationShape,
  ParsedNotification,
} from './notification.types';
import { FhirRequestError, outcomeIssue } from './operation-outcome';
import { parseResourceReference } from './resource-reference';
import {
  readBackportParameters,
  readSubscriptionStatus,
  type StatusEventDraft,
  type SubscriptionStatusFields,
} from './subscription-status.parser';

/**
 * Topic-based notification Bundles: R4 backport (`history` + Parameters), R4B-style (`history` +
 * SubscriptionStatus; athenahealth, pre-STU drafts) and R5 (`subscription-notification`).
 * Internal: {@link parseNotification} is the public entry point.
 */

const STATUS_EXPRESSION = 'Bundle.entry[0].resource';

/** One Bundle entry after the status, reduced to what event matching needs. */
interface EntryView {
  index: number;
  fullUrl?: string;
  resource?: Resource;
  method?: string;
  responseStatus?: string;
  /** `Type/id` keys this entry answers to (from fullUrl, resource and request.url). */
  addresses: Set<string>;
}

function addressKey(resourceType: string, id: string): string {
  return `${resourceType}/${id}`;
}

function readEntry(
  value: unknown,
  index: number,
  isHistory: boolean,
  warnings: OperationOutcomeIssue[],
): EntryView {
  const expression = `Bundle.entry[${index}]`;
  if (!isRecord(value)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: 'Bundle entry must be an object', expression }),
    );
  }
  const view: EntryView = { index, addresses: new Set() };
  const fullUrl = stringField(value, 'fullUrl');
  if (fullUrl !== undefined) {
    view.fullUrl = fullUrl;
    const address = parseResourceReference(fullUrl);
    if (address) view.addresses.add(addressKey(address.resourceType, address.id));
  }
  if (value.resource !== undefined) {
    const resource = value.resource;
    if (!isRecord(resource) || typeof resource.resourceType !== 'string' || resource.resourceType === '') {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'structure',
          text: 'Bundle entry resource must be an object with a resourceType',
          expression: `${expression}.resource`,
        }),
      );
    }
    view.resource = resource as unknown as Resource;
    const id = stringField(resource, 'id');
    if (id !== undefined) view.addresses.add(addressKey(resource.resourceType, id));
  }
  const request = recordField(value, 'request');
  if (request) {
    const method = stringField(request, 'method');
    if (method !== undefined) view.method = method.toUpperCase();
    const url = stringField(request, 'url');
    const address = url === undefined ? undefined : parseResourceReference(url);
    if (address) view.addresses.add(addressKey(address.resourceType, address.id));
  } else if (isHistory) {
    warnings.push(
      outcomeIssue({
        severity: 'warning',
        code: 'structure',
        text: 'history Bundle entry has no request (bdl-3); tolerated',
        expression: `${expression}.request`,
      }),
    );
  }
  const response = recordField(value, 'response');
  const status = response === undefined ? undefined : stringField(response, 'status');
  if (status !== undefined) view.responseStatus = status;
  return view;
}

/**
 * Finds the entry for a reference: first by exact `fullUrl`, then by `Type/id` (senders mix
 * `http` and `https` between focus and fullUrl, or send relative focus and absolute fullUrl).
 */
function findEntry(entries: readonly EntryView[], reference: NotificationReference): EntryView | undefined {
  if (reference.reference !== undefined) {
    const exact = entries.find((entry) => entry.fullUrl === reference.reference);
    if (exact) return exact;
  }
  if (reference.resourceType !== undefined && reference.id !== undefined) {
    const key = addressKey(reference.resourceType, reference.id);
    return entries.find((entry) => entry.addresses.has(key));
  }
  return undefined;
}

function interactionOf(entry: EntryView | undefined): NotificationInteraction {
  switch (entry?.method) {
    case 'POST':
      return 'create';
    case 'PUT':
      // An update that created the resource answers 201.
      return entry.responseStatus?.startsWith('201') ? 'create' : 'update';
    case 'PATCH':
      return 'update';
    case 'DELETE':
      return 'delete';
    default:
      // GET (resource included as context) or no request: the Bundle does not say.
      return 'unknown';
  }
}

function contextOf(reference: NotificationReference, entries: readonly EntryView[]): NotificationContext {
  const context: NotificationContext = { ...reference };
  const entry = findEntry(entries, reference);
  if (entry?.resource) context.resource = entry.resource;
  if (entry?.fullUrl !== undefined) context.fullUrl = entry.fullUrl;
  return context;
}

function buildEvent(draft: StatusEventDraft, entries: readonly EntryView[]): NotificationEvent {
  const event: NotificationEvent = { interaction: 'unknown', content: 'empty' };
  if (draft.id !== undefined) event.id = draft.id;
  if (draft.eventNumber !== undefined) event.eventNumber = draft.eventNumber;
  if (draft.timestamp !== undefined) event.timestamp = draft.timestamp;
  if (draft.focus) {
    event.focus = draft.focus;
    const entry = findEntry(entries, draft.focus);
    event.interaction = interactionOf(entry);
    if (entry?.fullUrl !== undefined) event.fullUrl = entry.fullUrl;
    if (entry?.resource) {
      event.content = 'full-resource';
      event.resource = entry.resource;
    } else {
      // id-only, or full-resource whose entry could not carry the resource: fetch it later.
      event.content = 'id-only';
    }
  }
  if (draft.additionalContext.length > 0) {
    event.additionalContext = draft.additionalContext.map((reference) => contextOf(reference, entries));
  }
  if (draft.id !== undefined) {
    const audit = entries.find(
      (entry) => entry.resource?.resourceType === 'AuditEvent' && entry.resource.id === draft.id,
    );
    if (audit?.resource) event.auditEvent = audit.resource as AuditEvent;
  }
  return event;
}

/** Parses a notification Bundle (`Bundle.type` history or subscription-notification). */
export function parseNotificationBundle(
  bundle: JsonRecord,
  warnings: OperationOutcomeIssue[],
): ParsedNotification {
  const bundleType = bundle.type;
  if (bundleType !== 'history' && bundleType !== 'subscription-notification') {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'invalid',
        text: 'A notification Bundle must have type history or subscription-notification',
        expression: 'Bundle.type',
      }),
    );
  }
  const rawEntries = bundle.entry;
  if (!Array.isArray(rawEntries) || rawEntries.length === 0) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: 'The notification Bundle has no subscription status entry',
        expression: 'Bundle.entry[0]',
      }),
    );
  }
  const isHistory = bundleType === 'history';
  const entries = (rawEntries as readonly unknown[]).map((entry, index) =>
    readEntry(entry, index, isHistory, warnings),
  );
  const statusResource = entries[0]?.resource;
  const statusType = statusResource?.resourceType;

  let shape: NotificationShape;
  let status: SubscriptionStatusFields;
  if (statusType === 'Parameters' && isHistory) {
    shape = 'backport-history';
    status = readBackportParameters(statusResource as unknown as JsonRecord, STATUS_EXPRESSION, warnings);
  } else if (statusType === 'SubscriptionStatus') {
    shape = isHistory ? 'r4b-history' : 'r5-notification';
    status = readSubscriptionStatus(statusResource as unknown as JsonRecord, STATUS_EXPRESSION, warnings);
  } else {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: isHistory
          ? 'The first entry of a notification Bundle must be the subscription status (Parameters or SubscriptionStatus)'
          : 'The first entry of a subscription-notification Bundle must be a SubscriptionStatus',
        expression: statusResource ? STATUS_EXPRESSION : 'Bundle.entry[0].resource',
      }),
    );
  }

  const others = entries.slice(1);
  for (const draft of status.events) {
    // Payload rules: `empty` has no entries besides the status; id-only and full-resource SHALL
    // give a focus. An event without focus next to resource entries is therefore malformed.
    if (!draft.focus && others.length > 0) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'structure',
          text: 'Notification event has no focus although the Bundle carries resource entries',
          expression: draft.expression,
        }),
      );
    }
  }
  const events = status.events.map((draft) => buildEvent(draft, others));
  if (events.length === 0 && status.notificationType === 'event-notification') {
    // The R4B spec's own "empty" example carries no notificationEvent at all (eventsInNotification
    // 0). Something still happened: surface one `empty` event so the consumer re-queries.
    warnings.push(
      outcomeIssue({
        severity: 'warning',
        code: 'structure',
        text: 'event-notification lists no notification events; treated as one empty event',
        expression: STATUS_EXPRESSION,
      }),
    );
    events.push({ interaction: 'unknown', content: 'empty' });
  }

  const parsed: ParsedNotification = {
    shape,
    notificationType: status.notificationType,
    subscription: status.subscription,
    events,
    warnings,
  };
  const bundleId = stringField(bundle, 'id');
  if (bundleId !== undefined) parsed.bundleId = bundleId;
  const timestamp = stringField(bundle, 'timestamp');
  if (timestamp !== undefined) parsed.timestamp = timestamp;
  return parsed;
}
