import type { Bundle, BundleEntry, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';

/** One recovered event: what `$events` returned, or a resource found by a catch-up search. */
export interface RecoveredEvent {
  /** Decimal event number, when the source's `$events` gave one. */
  readonly eventNumber?: string;
  readonly resource?: Resource;
  /** `Type/id` of the focus when no resource came with it. */
  readonly focusReference?: string;
}

/**
 * Builds an R4 Subscriptions Backport `history` Bundle (type `query-event`) carrying recovered
 * events, so events the bridge fetched itself (gap repair through `$events`, a catch-up search)
 * go through exactly the same parse, dedupe and store path as notifications a sender pushed.
 */
export function buildRecoveryBundle(
  subscriptionReference: string,
  events: readonly RecoveredEvent[],
): Bundle {
  const entries: BundleEntry[] = [];
  const notificationEvents: ParametersParameter[] = [];
  for (const event of events) {
    const reference =
      event.resource?.id !== undefined
        ? `${event.resource.resourceType}/${event.resource.id}`
        : event.focusReference;
    const parts: ParametersParameter[] = [];
    if (event.eventNumber !== undefined) parts.push({ name: 'event-number', valueString: event.eventNumber });
    if (reference) parts.push({ name: 'focus', valueReference: { reference } });
    notificationEvents.push({ name: 'notification-event', part: parts });
    if (event.resource && reference) {
      entries.push({
        fullUrl: reference,
        resource: event.resource,
        request: { method: 'PUT', url: reference },
      });
    }
  }
  const status: Parameters = {
    resourceType: 'Parameters',
    meta: {
      profile: [
        'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4',
      ],
    },
    parameter: [
      { name: 'subscription', valueReference: { reference: subscriptionReference } },
      { name: 'type', valueCode: 'query-event' },
      ...notificationEvents,
    ],
  };
  return {
    resourceType: 'Bundle',
    type: 'history',
    timestamp: new Date().toISOString(),
    entry: [
      {
        fullUrl: 'urn:uuid:recovery-status',
        resource: status,
        request: { method: 'GET', url: `${subscriptionReference}/$status` },
      },
      ...entries,
    ],
  };
}
