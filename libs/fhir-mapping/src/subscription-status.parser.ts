import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

import { arrayField, isRecord, recordField, stringField, type JsonRecord } from './json-value';
import type { NotificationReference, NotificationSubscription, NotificationType } from './notification.types';
import { FhirRequestError, outcomeIssue } from './operation-outcome';
import { isResourceTypeName, parseResourceReference } from './resource-reference';

/**
 * Reads the subscription status that leads a notification Bundle — an R4 backport `Parameters`
 * (kebab-case names) or an R4B/R5 `SubscriptionStatus` (camelCase) — into one neutral form.
 * Internal: {@link parseNotification} is the public entry point.
 */

export type TopicNotificationType = Exclude<NotificationType, 'rest-hook'>;

const NOTIFICATION_TYPES: ReadonlySet<string> = new Set<TopicNotificationType>([
  'handshake',
  'heartbeat',
  'event-notification',
  'query-status',
  'query-event',
]);

const SUBSCRIPTION_STATUSES: ReadonlySet<string> = new Set([
  'requested',
  'active',
  'error',
  'off',
  'entered-in-error',
]);

/** `integer64` upper bound; event counters are integer64 in R5. */
const INT64_MAX = 9223372036854775807n;

/** A notification event as the status describes it, before it is matched to Bundle entries. */
export interface StatusEventDraft {
  /** FHIRPath of the event inside the Bundle, for error messages. */
  expression: string;
  id?: string;
  eventNumber?: string;
  timestamp?: string;
  focus?: NotificationReference;
  additionalContext: NotificationReference[];
}

export interface SubscriptionStatusFields {
  notificationType: TopicNotificationType;
  subscription: NotificationSubscription;
  events: StatusEventDraft[];
}

/**
 * Parses a non-negative integer counter sent as a decimal string or a JSON number into a
 * canonical decimal string (no sign, no leading zeros). Throws a 400 with `expression` otherwise.
 */
export function parseCounter(value: unknown, expression: string, name: string): string {
  const invalid = (): FhirRequestError =>
    FhirRequestError.badRequest(
      outcomeIssue({ code: 'value', text: `${name} must be a non-negative integer`, expression }),
    );
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw invalid();
    return String(value);
  }
  if (typeof value === 'string' && /^[0-9]{1,19}$/.test(value)) {
    const parsed = BigInt(value);
    if (parsed > INT64_MAX) throw invalid();
    return parsed.toString();
  }
  throw invalid();
}

/** `events-in-notification` / `eventsInNotification` as a number (it is a small count). */
function parseSmallCount(value: unknown, expression: string, name: string): number {
  const decimal = parseCounter(value, expression, name);
  const count = Number(decimal);
  if (!Number.isSafeInteger(count)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'value', text: `${name} is too large`, expression }),
    );
  }
  return count;
}

function readNotificationType(value: unknown, expression: string): TopicNotificationType {
  if (value === undefined) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: 'The subscription status has no notification type',
        expression,
      }),
    );
  }
  if (typeof value !== 'string' || !NOTIFICATION_TYPES.has(value)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'value',
        text: 'Notification type must be one of handshake, heartbeat, event-notification, query-status, query-event',
        expression,
      }),
    );
  }
  return value as TopicNotificationType;
}

function noteUnknownStatus(status: string, expression: string, warnings: OperationOutcomeIssue[]): void {
  if (!SUBSCRIPTION_STATUSES.has(status)) {
    warnings.push(
      outcomeIssue({
        severity: 'warning',
        code: 'value',
        text: 'Unknown subscription status code',
        expression,
      }),
    );
  }
}

/**
 * A Reference-like JSON object as a {@link NotificationReference}; undefined when it names nothing
 * (neither `reference` nor an `identifier` with a system or value).
 */
export function readReference(value: JsonRecord): NotificationReference | undefined {
  const result: NotificationReference = {};
  const reference = stringField(value, 'reference');
  const identifier = recordField(value, 'identifier');
  if (identifier) {
    const system = stringField(identifier, 'system');
    const idValue = stringField(identifier, 'value');
    if (system !== undefined || idValue !== undefined) {
      result.identifier = {};
      if (system !== undefined) result.identifier.system = system;
      if (idValue !== undefined) result.identifier.value = idValue;
    }
  }
  if (reference !== undefined && reference !== '') {
    result.reference = reference;
    const address = parseResourceReference(reference);
    if (address) {
      result.resourceType = address.resourceType;
      result.id = address.id;
      if (address.versionId !== undefined) result.versionId = address.versionId;
    }
  }
  if (result.reference === undefined && result.identifier === undefined) return undefined;
  const type = stringField(value, 'type');
  if (result.resourceType === undefined && isResourceTypeName(type)) result.resourceType = type;
  return result;
}

/** Reads a focus / additional-context value that must name a resource; 400 when it does not. */
function requireReference(value: unknown, expression: string, what: string): NotificationReference {
  if (!isRecord(value)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: `${what} must be a Reference object`, expression }),
    );
  }
  const reference = readReference(value);
  if (!reference) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: `${what} has neither a reference nor an identifier`,
        expression,
      }),
    );
  }
  return reference;
}

function errorCodes(values: readonly unknown[]): string[] {
  const codes: string[] = [];
  for (const value of values) {
    if (!isRecord(value)) continue;
    const codings = arrayField(value, 'coding');
    const coded = Array.isArray(codings)
      ? codings.find((coding): coding is JsonRecord => isRecord(coding) && typeof coding.code === 'string')
      : undefined;
    const text = coded ? stringField(coded, 'code') : stringField(value, 'text');
    if (text !== undefined) codes.push(text);
  }
  return codes;
}

// ---------------------------------------------------------------------------------------------
// R4 Subscriptions Backport IG: Parameters (backport-subscription-status-r4)
// ---------------------------------------------------------------------------------------------

interface ParameterValue {
  /** The `value[x]` suffix, e.g. `String`, `Reference`. */
  kind: string;
  value: unknown;
}

function parameterValue(parameter: JsonRecord): ParameterValue | undefined {
  for (const key of Object.keys(parameter)) {
    if (/^value[A-Z]/.test(key)) return { kind: key.slice('value'.length), value: parameter[key] };
  }
  return undefined;
}

const COUNTER_KINDS: ReadonlySet<string> = new Set([
  'String',
  'UnsignedInt',
  'Integer',
  'Integer64',
  'PositiveInt',
]);
const URI_KINDS: ReadonlySet<string> = new Set(['String', 'Uri', 'Url', 'Canonical']);

function counterParameter(parameter: JsonRecord, expression: string, name: string): string {
  const found = parameterValue(parameter);
  if (!found) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: `${name} has no value`, expression }),
    );
  }
  if (!COUNTER_KINDS.has(found.kind)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'value',
        text: `${name} must be a non-negative integer`,
        expression: `${expression}.value`,
      }),
    );
  }
  return parseCounter(found.value, `${expression}.value`, name);
}

function stringParameter(parameter: JsonRecord): string | undefined {
  const found = parameterValue(parameter);
  return typeof found?.value === 'string' ? found.value : undefined;
}

/**
 * A `valueReference` parameter; a URI-like string (`valueString`, `valueUri`...) is accepted with a
 * warning because real senders (fhir-candle) do that for `subscription`.
 */
function referenceParameter(
  parameter: JsonRecord,
  expression: string,
  name: string,
  warnings: OperationOutcomeIssue[],
): NotificationReference {
  const found = parameterValue(parameter);
  if (found?.kind === 'Reference') return requireReference(found.value, `${expression}.value`, name);
  if (found && URI_KINDS.has(found.kind) && typeof found.value === 'string' && found.value !== '') {
    warnings.push(
      outcomeIssue({
        severity: 'warning',
        code: 'structure',
        text: `${name} sent as value${found.kind}; the backport profile requires valueReference`,
        expression: `${expression}.value`,
      }),
    );
    return requireReference({ reference: found.value }, `${expression}.value`, name);
  }
  throw FhirRequestError.badRequest(
    outcomeIssue({ code: 'structure', text: `${name} must carry a valueReference`, expression }),
  );
}

function readParameterList(
  resource: JsonRecord,
  expression: string,
  key: 'parameter' | 'part',
): JsonRecord[] {
  const list = arrayField(resource, key);
  if (list === undefined) return [];
  if (list === 'invalid') {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: `${key} must be an array`,
        expression: `${expression}.${key}`,
      }),
    );
  }
  return list.map((item, index) => {
    if (!isRecord(item) || typeof item.name !== 'string') {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'structure',
          text: `Each ${key} must be an object with a name`,
          expression: `${expression}.${key}[${index}]`,
        }),
      );
    }
    return item;
  });
}

function readBackportEvent(
  parameter: JsonRecord,
  expression: string,
  warnings: OperationOutcomeIssue[],
): StatusEventDraft {
  const parts = readParameterList(parameter, expression, 'part');
  if (parts.length === 0) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: 'notification-event has no parts', expression }),
    );
  }
  const event: StatusEventDraft = { expression, additionalContext: [] };
  parts.forEach((part, index) => {
    const partExpression = `${expression}.part[${index}]`;
    switch (part.name) {
      case 'event-number':
        event.eventNumber ??= counterParameter(part, partExpression, 'event-number');
        break;
      case 'timestamp':
        event.timestamp ??= stringParameter(part);
        break;
      case 'focus':
        event.focus ??= referenceParameter(part, partExpression, 'focus', warnings);
        break;
      case 'additional-context':
        event.additionalContext.push(
          referenceParameter(part, partExpression, 'additional-context', warnings),
        );
        break;
      default:
        // 1.2.0-ballot parts (related-query, authorization-type/-value) and extensions: not used here.
        break;
    }
  });
  return event;
}

/** Reads an R4 backport status `Parameters` found at `expression` (e.g. `Bundle.entry[0].resource`). */
export function readBackportParameters(
  resource: JsonRecord,
  expression: string,
  warnings: OperationOutcomeIssue[],
): SubscriptionStatusFields {
  const parameters = readParameterList(resource, expression, 'parameter');
  const subscription: NotificationSubscription = {};
  const events: StatusEventDraft[] = [];
  const errors: unknown[] = [];
  let type: unknown;
  let typeExpression = `${expression}.parameter.where(name = 'type')`;
  let sawSubscription = false;

  for (const [index, parameter] of parameters.entries()) {
    const parameterExpression = `${expression}.parameter[${index}]`;
    switch (parameter.name) {
      case 'subscription':
        if (!sawSubscription) {
          sawSubscription = true;
          const reference = referenceParameter(parameter, parameterExpression, 'subscription', warnings);
          if (reference.reference !== undefined) subscription.reference = reference.reference;
        }
        break;
      case 'topic':
        subscription.topic ??= stringParameter(parameter);
        break;
      case 'status': {
        const status = stringParameter(parameter);
        if (status !== undefined && subscription.status === undefined) {
          subscription.status = status;
          noteUnknownStatus(status, `${parameterExpression}.value`, warnings);
        }
        break;
      }
      case 'type':
        if (type === undefined) {
          type = parameterValue(parameter)?.value;
          typeExpression = `${parameterExpression}.value`;
        }
        break;
      case 'events-since-subscription-start':
        subscription.eventsSinceSubscriptionStart ??= counterParameter(
          parameter,
          parameterExpression,
          'events-since-subscription-start',
        );
        break;
      case 'events-in-notification': {
        const count = counterParameter(parameter, parameterExpression, 'events-in-notification');
        subscription.eventsInNotification ??= parseSmallCount(
          count,
          `${parameterExpression}.value`,
          'events-in-notification',
        );
        break;
      }
      case 'notification-event':
        events.push(readBackportEvent(parameter, parameterExpression, warnings));
        break;
      case 'error': {
        const value = parameterValue(parameter);
        if (value) errors.push(value.value);
        break;
      }
      default:
        break;
    }
  }

  if (!sawSubscription) {
    warnings.push(
      outcomeIssue({
        severity: 'warning',
        code: 'structure',
        text: 'The subscription status does not name its subscription',
        expression: `${expression}.parameter`,
      }),
    );
  }
  const codes = errorCodes(errors);
  if (codes.length > 0) subscription.error = codes;
  return { notificationType: readNotificationType(type, typeExpression), subscription, events };
}

// ---------------------------------------------------------------------------------------------
// R4B / R5 (and pre-STU backport drafts): SubscriptionStatus
// ---------------------------------------------------------------------------------------------

function readStatusEvent(value: unknown, expression: string): StatusEventDraft {
  if (!isRecord(value)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: 'notificationEvent must be an object', expression }),
    );
  }
  const event: StatusEventDraft = { expression, additionalContext: [] };
  const id = stringField(value, 'id');
  if (id !== undefined) event.id = id;
  if (value.eventNumber !== undefined) {
    event.eventNumber = parseCounter(value.eventNumber, `${expression}.eventNumber`, 'eventNumber');
  }
  const timestamp = stringField(value, 'timestamp');
  if (timestamp !== undefined) event.timestamp = timestamp;
  if (value.focus !== undefined) event.focus = requireReference(value.focus, `${expression}.focus`, 'focus');
  const context = arrayField(value, 'additionalContext');
  if (context === 'invalid') {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: 'additionalContext must be an array',
        expression: `${expression}.additionalContext`,
      }),
    );
  }
  (context ?? []).forEach((item, index) => {
    event.additionalContext.push(
      requireReference(item, `${expression}.additionalContext[${index}]`, 'additionalContext'),
    );
  });
  return event;
}

/** Reads an R4B/R5 `SubscriptionStatus` found at `expression` (e.g. `Bundle.entry[0].resource`). */
export function readSubscriptionStatus(
  resource: JsonRecord,
  expression: string,
  warnings: OperationOutcomeIssue[],
): SubscriptionStatusFields {
  const subscription: NotificationSubscription = {};

  const reference = resource.subscription;
  if (isRecord(reference)) {
    const parsed = requireReference(reference, `${expression}.subscription`, 'subscription');
    if (parsed.reference !== undefined) subscription.reference = parsed.reference;
  } else if (typeof reference === 'string' && reference !== '') {
    subscription.reference = reference;
    warnings.push(
      outcomeIssue({
        severity: 'warning',
        code: 'structure',
        text: 'subscription sent as a string; SubscriptionStatus.subscription is a Reference',
        expression: `${expression}.subscription`,
      }),
    );
  } else {
    warnings.push(
      outcomeIssue({
        severity: 'warning',
        code: 'structure',
        text: 'The subscription status does not name its subscription',
        expression: `${expression}.subscription`,
      }),
    );
  }

  const topic = stringField(resource, 'topic');
  if (topic !== undefined) subscription.topic = topic;
  const status = stringField(resource, 'status');
  if (status !== undefined) {
    subscription.status = status;
    noteUnknownStatus(status, `${expression}.status`, warnings);
  }
  if (resource.eventsSinceSubscriptionStart !== undefined) {
    subscription.eventsSinceSubscriptionStart = parseCounter(
      resource.eventsSinceSubscriptionStart,
      `${expression}.eventsSinceSubscriptionStart`,
      'eventsSinceSubscriptionStart',
    );
  }
  if (resource.eventsInNotification !== undefined) {
    subscription.eventsInNotification = parseSmallCount(
      resource.eventsInNotification,
      `${expression}.eventsInNotification`,
      'eventsInNotification',
    );
  }
  const errors = arrayField(resource, 'error');
  if (Array.isArray(errors)) {
    const codes = errorCodes(errors);
    if (codes.length > 0) subscription.error = codes;
  }

  const list = arrayField(resource, 'notificationEvent');
  if (list === 'invalid') {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: 'notificationEvent must be an array',
        expression: `${expression}.notificationEvent`,
      }),
    );
  }
  const events = (list ?? []).map((item, index) =>
    readStatusEvent(item, `${expression}.notificationEvent[${index}]`),
  );

  return {
    notificationType: readNotificationType(resource.type, `${expression}.type`),
    subscription,
    events,
  };
}
