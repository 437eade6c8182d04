import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';

import { isRecord, recordField, stringField, type JsonRecord } from './json-value';
import { parseNotificationBundle } from './notification-bundle.parser';
import type {
  NotificationEvent,
  NotificationInteraction,
  NotificationReference,
  NotificationRequest,
  NotificationSubscription,
  ParsedNotification,
} from './notification.types';
import { FhirRequestError, outcomeIssue } from './operation-outcome';
import { isFhirId, isResourceTypeName, parseResourceReference } from './resource-reference';

/** Headers Medplum sets on rest-hook deliveries (packages/server/src/workers/subscription.ts). */
const MEDPLUM_INTERACTION = 'x-medplum-interaction';
const MEDPLUM_SUBSCRIPTION = 'x-medplum-subscription';
const MEDPLUM_DELETED_RESOURCE = 'x-medplum-deleted-resource';

const NOTIFICATION_BUNDLE_TYPES: ReadonlySet<unknown> = new Set(['history', 'subscription-notification']);

/**
 * Classifies and parses one inbound subscription notification, whatever shape the sender used:
 *
 * | request | shape |
 * |---|---|
 * | `POST` with no body (classic R4 rest-hook without payload) | `empty-ping` |
 * | `PUT /{Type}/{id}` with the resource (HAPI) / `POST` of a bare resource (Medplum) | `bare-resource` |
 * | `DELETE /{Type}/{id}` (HAPI) / `POST {}` + `X-Medplum-Deleted-Resource` (Medplum) | `resource-delete` |
 * | `history` Bundle led by `Parameters` (R4 Subscriptions Backport IG 1.1.0) | `backport-history` |
 * | `history` Bundle led by `SubscriptionStatus` (R4B, athenahealth, pre-STU drafts) | `r4b-history` |
 * | `subscription-notification` Bundle (R5) | `r5-notification` |
 *
 * Topic-based notifications keep their `type` (handshake, heartbeat, ...); classic shapes report
 * `rest-hook`. Every event says what happened (`interaction`) and how much of the resource arrived
 * (`content`); `id-only` events carry a `focus` to fetch, including full-resource entries that
 * lacked their `resource`.
 *
 * Tolerated departures from the specifications (e.g. a `history` entry without `request`, a
 * `subscription` sent as `valueString`) are reported in `warnings`, never silently dropped.
 *
 * Pure: no I/O, no definitions needed.
 *
 * @throws FhirRequestError status 400 with an OperationOutcome (issue code `structure`, `invalid`
 * or `value`, and the FHIRPath `expression` of the bad element) for malformed input: a body that
 * is not an object or has no `resourceType`, a Bundle of another type, a notification Bundle
 * without its status entry, a notification event without focus next to resource entries, counters
 * that are not non-negative integers, a PUT body that does not match the path. Error texts never
 * quote values from the body.
 */
export function parseNotification(input: NotificationRequest): ParsedNotification {
  const warnings: OperationOutcomeIssue[] = [];
  const path = input.pathResource ? readPathResource(input.pathResource) : undefined;

  if (input.method === 'DELETE') {
    if (!path) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'structure',
          text: 'A DELETE notification must name the resource as /{Type}/{id}',
        }),
      );
    }
    // A DELETE body carries nothing we use; HAPI sends none.
    return classic('resource-delete', undefined, [idOnlyEvent(path, 'delete')], warnings);
  }

  const subscription = medplumSubscription(input.headers, warnings);

  if (input.body === undefined) {
    // Classic rest-hook without payload. Old HAPI versions sent PUT /{Type}/{id} with no body
    // (hapi-fhir#807): the path still says which resource changed.
    const event: NotificationEvent = path
      ? idOnlyEvent(path, input.method === 'PUT' ? 'update' : 'unknown')
      : { interaction: 'unknown', content: 'empty' };
    return classic('empty-ping', subscription, [event], warnings);
  }

  const body = input.body;
  if (!isRecord(body)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: 'The notification body must be a JSON object' }),
    );
  }

  const interactionHeader = input.headers[MEDPLUM_INTERACTION];
  const deletedHeader = input.headers[MEDPLUM_DELETED_RESOURCE];
  if (input.method === 'POST' && (deletedHeader !== undefined || interactionHeader === 'delete')) {
    return medplumDelete(body, deletedHeader, interactionHeader, subscription, warnings);
  }

  const resourceType = body.resourceType;
  if (typeof resourceType !== 'string' || resourceType === '') {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: 'The notification body has no resourceType' }),
    );
  }

  // A Medplum header marks a classic delivery of a bare resource, even when that resource is a Bundle.
  if (input.method === 'POST' && resourceType === 'Bundle' && interactionHeader === undefined) {
    if (!NOTIFICATION_BUNDLE_TYPES.has(body.type)) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'invalid',
          text: 'A Bundle sent as a notification must have type history or subscription-notification',
          expression: 'Bundle.type',
        }),
      );
    }
    return parseNotificationBundle(body, warnings);
  }

  const resource = readBareResource(body, resourceType);
  if (path) checkBodyMatchesPath(resource, path);
  // PUT is FHIR update semantics; HAPI also PUTs newly created resources (client.update()), so a
  // consumer tells create from update by what it already holds.
  const interaction: NotificationInteraction =
    input.method === 'PUT' ? 'update' : medplumInteraction(interactionHeader, warnings);
  const event: NotificationEvent = {
    interaction,
    content: 'full-resource',
    focus: focusOfResource(resource, warnings),
    resource: resource.resource,
  };
  return classic('bare-resource', subscription, [event], warnings);
}

// ---------------------------------------------------------------------------------------------

interface ResourcePath {
  resourceType: string;
  id: string;
}

interface BareResource {
  resourceType: string;
  /** Absent for a resource that was never stored (e.g. a Subscription as written by its author). */
  id?: string;
  resource: Resource;
  versionId?: string;
}

function classic(
  shape: 'empty-ping' | 'bare-resource' | 'resource-delete',
  subscription: NotificationSubscription | undefined,
  events: NotificationEvent[],
  warnings: OperationOutcomeIssue[],
): ParsedNotification {
  const parsed: ParsedNotification = { shape, notificationType: 'rest-hook', events, warnings };
  if (subscription) parsed.subscription = subscription;
  return parsed;
}

function readPathResource(path: { resourceType: string; id: string }): ResourcePath {
  if (!isResourceTypeName(path.resourceType) || !isFhirId(path.id)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'value',
        text: 'The request path must end with /{ResourceType}/{id} (a valid FHIR id)',
      }),
    );
  }
  return { resourceType: path.resourceType, id: path.id };
}

function focusOf(path: ResourcePath, versionId?: string): NotificationReference {
  const focus: NotificationReference = {
    reference: `${path.resourceType}/${path.id}`,
    resourceType: path.resourceType,
    id: path.id,
  };
  if (versionId !== undefined) focus.versionId = versionId;
  return focus;
}

function focusOfResource(resource: BareResource, warnings: OperationOutcomeIssue[]): NotificationReference {
  if (resource.id !== undefined)
    return focusOf({ resourceType: resource.resourceType, id: resource.id }, resource.versionId);
  warnings.push(
    outcomeIssue({
      severity: 'warning',
      code: 'structure',
      text: 'The notified resource has no id: it cannot be fetched again or de-duplicated by id',
      expression: `${resource.resourceType}.id`,
    }),
  );
  return { resourceType: resource.resourceType };
}

function idOnlyEvent(path: ResourcePath, interaction: NotificationInteraction): NotificationEvent {
  return { interaction, content: 'id-only', focus: focusOf(path) };
}

function readBareResource(body: JsonRecord, resourceType: string): BareResource {
  if (!isResourceTypeName(resourceType)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'value', text: 'resourceType is not a resource type name' }),
    );
  }
  const id = body.id;
  if (id === undefined) return { resourceType, resource: body as unknown as Resource };
  if (!isFhirId(id)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'value',
        text: 'The notified resource id is not a valid FHIR id',
        expression: `${resourceType}.id`,
      }),
    );
  }
  const result: BareResource = { resourceType, id, resource: body as unknown as Resource };
  const meta = recordField(body, 'meta');
  const versionId = meta === undefined ? undefined : stringField(meta, 'versionId');
  if (versionId !== undefined) result.versionId = versionId;
  return result;
}

/** FHIR update rules: the body's type and id must equal the URL's, else 400. */
function checkBodyMatchesPath(resource: BareResource, path: ResourcePath): void {
  if (resource.resourceType !== path.resourceType) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'invalid',
        text: 'The resource type of the body does not match the type in the request path',
        expression: resource.resourceType,
      }),
    );
  }
  if (resource.id === undefined) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: 'The resource in the body has no id, but the request path names one',
        expression: `${resource.resourceType}.id`,
      }),
    );
  }
  if (resource.id !== path.id) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'invalid',
        text: 'The resource id in the body does not match the id in the request path',
        expression: `${resource.resourceType}.id`,
      }),
    );
  }
}

function medplumInteraction(
  value: string | undefined,
  warnings: OperationOutcomeIssue[],
): NotificationInteraction {
  if (value === undefined) return 'unknown';
  if (value === 'create' || value === 'update' || value === 'delete') return value;
  warnings.push(
    outcomeIssue({
      severity: 'warning',
      code: 'value',
      text: 'Unknown X-Medplum-Interaction header value; interaction left unknown',
    }),
  );
  return 'unknown';
}

function medplumSubscription(
  headers: NotificationRequest['headers'],
  warnings: OperationOutcomeIssue[],
): NotificationSubscription | undefined {
  const id = headers[MEDPLUM_SUBSCRIPTION];
  if (id === undefined) return undefined;
  if (!isFhirId(id)) {
    warnings.push(
      outcomeIssue({
        severity: 'warning',
        code: 'value',
        text: 'X-Medplum-Subscription header is not a FHIR id; ignored',
      }),
    );
    return undefined;
  }
  return { reference: `Subscription/${id}` };
}

/**
 * Medplum signals a delete with `X-Medplum-Interaction: delete`, `X-Medplum-Deleted-Resource:
 * {Type}/{id}` and a `{}` body (medplum#2194). A body that is the deleted resource is accepted too.
 */
function medplumDelete(
  body: JsonRecord,
  deletedHeader: string | undefined,
  interactionHeader: string | undefined,
  subscription: NotificationSubscription | undefined,
  warnings: OperationOutcomeIssue[],
): ParsedNotification {
  if (interactionHeader !== undefined && interactionHeader !== 'delete') {
    warnings.push(
      outcomeIssue({
        severity: 'warning',
        code: 'invalid',
        text: 'X-Medplum-Deleted-Resource is set but X-Medplum-Interaction is not delete; treated as a delete',
      }),
    );
  }
  let path: ResourcePath | undefined;
  if (deletedHeader !== undefined) {
    const address = parseResourceReference(deletedHeader);
    if (!address || address.baseUrl !== undefined) {
      throw FhirRequestError.badRequest(
        outcomeIssue({ code: 'value', text: 'X-Medplum-Deleted-Resource must be {ResourceType}/{id}' }),
      );
    }
    path = { resourceType: address.resourceType, id: address.id };
  }

  const resourceType = body.resourceType;
  const resource =
    typeof resourceType === 'string' && resourceType !== ''
      ? readBareResource(body, resourceType)
      : undefined;
  if (!resource && Object.keys(body).length > 0) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: 'A delete notification body must be {} or the deleted resource',
      }),
    );
  }
  if (resource && path) checkBodyMatchesPath(resource, path);

  let event: NotificationEvent;
  if (resource?.id !== undefined) {
    event = { interaction: 'delete', content: 'full-resource', focus: focusOfResource(resource, warnings) };
    event.resource = resource.resource;
  } else if (path) {
    event = idOnlyEvent(path, 'delete');
  } else {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: 'A delete notification must name the deleted resource (X-Medplum-Deleted-Resource header)',
      }),
    );
  }
  return classic('resource-delete', subscription, [event], warnings);
}
