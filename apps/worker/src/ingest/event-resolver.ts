import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { NotificationEvent, ParsedNotification } from '@fhir-trail/fhir-mapping';
import type { SourceRecord } from '@fhir-trail/store';

/** One change ready to apply: a full resource, a delete, or why it cannot be applied. */
export type ResolvedChange =
  | {
      readonly kind: 'resource';
      readonly event: NotificationEvent;
      readonly resource: Resource & { id: string };
      /** How it was obtained: in the notification, or fetched back from the source. */
      readonly origin: 'notification' | 'fetched' | 'searched';
    }
  | {
      readonly kind: 'delete';
      readonly event: NotificationEvent;
      readonly resourceType: string;
      readonly id: string;
    }
  | {
      readonly kind: 'unresolvable';
      readonly event: NotificationEvent;
      readonly reasonCode: string;
      readonly outcome: OperationOutcome;
    };

/** Context for resolving the events of one notification. */
export interface ResolveContext {
  readonly source: SourceRecord;
  readonly notification: ParsedNotification;
  /** The subscription's last notification time, for `_since` re-queries of empty notifications. */
  readonly since?: Date;
  /** Resource types to re-query for an empty notification. */
  readonly resourceTypes: readonly string[];
}

/**
 * Turns notification events into changes to apply, calling back the source where the sender sent
 * only ids (id-only) or nothing (empty). Implementations throw a retryable error when the source
 * is unreachable, so the job is retried rather than the event dropped.
 */
export interface EventResolver {
  resolve(event: NotificationEvent, context: ResolveContext): Promise<readonly ResolvedChange[]>;
}

export const EVENT_RESOLVER = Symbol('EVENT_RESOLVER');
