import { Injectable } from '@nestjs/common';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import { type NotificationEvent, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import type { EventResolver, ResolveContext, ResolvedChange } from './event-resolver';

/**
 * Resolves what the notification itself carries: full resources and deletes. Events that only
 * point at a resource (id-only) or say nothing (empty) need the source's FHIR API; without one
 * they become dead letters saying so.
 */
@Injectable()
export class SourceEventResolver implements EventResolver {
  resolve(event: NotificationEvent, context: ResolveContext): Promise<readonly ResolvedChange[]> {
    return Promise.resolve([resolveInline(event, context)]);
  }
}

/** The change a notification event carries by itself, without calling the source. */
export function resolveInline(event: NotificationEvent, context: ResolveContext): ResolvedChange {
  if (event.interaction === 'delete') {
    const resourceType = event.focus?.resourceType ?? event.resource?.resourceType;
    const id = event.focus?.id ?? event.resource?.id;
    if (resourceType && id) return { kind: 'delete', event, resourceType, id };
    return unresolvable(
      event,
      'unresolvable-delete',
      'required',
      'a delete must name the resource as {Type}/{id}',
    );
  }
  if (event.content === 'full-resource' && event.resource) {
    const resource = event.resource;
    if (!resource.id) {
      return unresolvable(
        event,
        'missing-id',
        'required',
        'the resource has no id',
        `${resource.resourceType}.id`,
      );
    }
    return {
      kind: 'resource',
      event,
      resource: resource as Resource & { id: string },
      origin: 'notification',
    };
  }
  return unresolvable(
    event,
    'fetch-required',
    'not-supported',
    context.source.fhirBaseUrl
      ? `${event.content} notification: the resource could not be fetched from the source`
      : `${event.content} notification: the source has no FHIR base URL configured to fetch the resource from`,
  );
}

function unresolvable(
  event: NotificationEvent,
  reasonCode: string,
  code: 'required' | 'not-supported' | 'not-found',
  text: string,
  expression?: string,
): ResolvedChange {
  const outcome: OperationOutcome = operationOutcome([outcomeIssue({ code, text, expression })]);
  return { kind: 'unresolvable', event, reasonCode, outcome };
}
