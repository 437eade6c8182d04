import { Injectable } from '@nestjs/common';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import { isSourceFhirError, type SourceFhirClient } from '@fhir-trail/fhir-client';
import { type NotificationEvent, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import type { EventResolver, ResolveContext, ResolvedChange } from './event-resolver';
import { SourceClients } from '@fhir-trail/runtime';

/** How far back an empty notification re-queries when the subscription has never been heard from. */
const FIRST_PING_LOOKBACK_MS = 60 * 60 * 1000;

/**
 * Resolves notification events into changes: full resources and deletes as sent; id-only events
 * by reading the focus back from the source (404/410 = deleted); empty events by searching the
 * subscription's resource types for changes since it was last heard from. Unreachable sources
 * throw (the job is retried); refusals and missing configuration become dead letters saying why.
 */
@Injectable()
export class SourceEventResolver implements EventResolver {
  constructor(private readonly clients: SourceClients) {}

  async resolve(event: NotificationEvent, context: ResolveContext): Promise<readonly ResolvedChange[]> {
    const inline = resolveInline(event, context);
    if (inline.kind !== 'unresolvable' || inline.reasonCode !== 'fetch-required') return [inline];
    const client = await this.clients.for(context.source);
    if (!client) return [inline];
    try {
      return event.content === 'empty'
        ? await this.requery(client, event, context)
        : [await this.fetchFocus(client, event)];
    } catch (error) {
      if (isSourceFhirError(error) && !error.retryable) {
        return [
          unresolvable(event, 'fetch-refused', 'security', `the source refused the fetch (${error.code})`),
        ];
      }
      throw error;
    }
  }

  private async fetchFocus(client: SourceFhirClient, event: NotificationEvent): Promise<ResolvedChange> {
    const focus = event.focus;
    if (focus?.reference && focus.resourceType && focus.id) {
      const result = await client.readReference(focus.reference);
      if (result.status === 'deleted')
        return { kind: 'delete', event, resourceType: focus.resourceType, id: focus.id };
      return asResource(event, result.resource, 'fetched');
    }
    const type = focus?.resourceType;
    const identifier = focus?.identifier;
    if (type && identifier?.value) {
      const token = identifier.system ? `${identifier.system}|${identifier.value}` : identifier.value;
      const found = await client.search(type, { identifier: token });
      if (found.resources.length === 1) return asResource(event, found.resources[0], 'fetched');
      return unresolvable(
        event,
        'focus-not-found',
        'not-found',
        `the focus identifier matched ${found.resources.length} resources at the source (expected one)`,
      );
    }
    return unresolvable(
      event,
      'unresolvable-focus',
      'required',
      'the event names no resource that can be fetched',
    );
  }

  private async requery(
    client: SourceFhirClient,
    event: NotificationEvent,
    context: ResolveContext,
  ): Promise<readonly ResolvedChange[]> {
    if (context.resourceTypes.length === 0) {
      return [
        unresolvable(
          event,
          'empty-without-criteria',
          'not-supported',
          'empty notification: no resource types are known for this subscription to re-query',
        ),
      ];
    }
    const since = context.since ?? new Date(Date.now() - FIRST_PING_LOOKBACK_MS);
    const changes: ResolvedChange[] = [];
    for (const type of context.resourceTypes) {
      const found = await client.searchSince(type, since);
      for (const resource of found.resources) changes.push(asResource(event, resource, 'searched'));
    }
    return changes;
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
  if (event.content === 'full-resource' && event.resource)
    return asResource(event, event.resource, 'notification');
  return unresolvable(
    event,
    'fetch-required',
    'not-supported',
    context.source.fhirBaseUrl
      ? `${event.content} notification: the resource could not be fetched from the source`
      : `${event.content} notification: the source has no FHIR base URL configured to fetch the resource from`,
  );
}

function asResource(
  event: NotificationEvent,
  resource: Resource,
  origin: 'notification' | 'fetched' | 'searched',
): ResolvedChange {
  if (!resource.id) {
    return unresolvable(
      event,
      'missing-id',
      'required',
      'the resource has no id',
      `${resource.resourceType}.id`,
    );
  }
  return { kind: 'resource', event, resource: resource as Resource & { id: string }, origin };
}

function unresolvable(
  event: NotificationEvent,
  reasonCode: string,
  code: 'required' | 'not-supported' | 'not-found' | 'security',
  text: string,
  expression?: string,
): ResolvedChange {
  const outcome: OperationOutcome = operationOutcome([outcomeIssue({ code, text, expression })]);
  return { kind: 'unresolvable', event, reasonCode, outcome };
}
