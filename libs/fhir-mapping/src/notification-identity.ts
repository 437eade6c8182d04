import { createHash } from 'node:crypto';
import { canonicalJson } from './content-digest';
import type { NotificationEvent, ParsedNotification } from './notification.types';
import { parseResourceReference } from './resource-reference';

/**
 * How a sender numbers its events:
 * - `subscription`: the Backport IG's gap-free counter per subscription (`events-since-subscription-start`);
 * - `per-bundle`: numbers restart in every notification (athenahealth), so they identify nothing;
 * - `none`: classic rest-hook senders that send no numbers.
 */
export type EventCounterSemantics = 'subscription' | 'per-bundle' | 'none';

/**
 * The subscription a notification is about, as `Subscription/{id}` when the reference names one
 * (absolute or relative), else the reference as sent; undefined for classic shapes.
 */
export function subscriptionKey(notification: ParsedNotification): string | undefined {
  const reference = notification.subscription?.reference;
  if (!reference) return undefined;
  const address = parseResourceReference(reference);
  return address?.resourceType === 'Subscription' ? `Subscription/${address.id}` : reference;
}

/**
 * The sender's identity for one event, used to apply each event once however often it arrives:
 * `sub:<subscription>#<n>` where the sender keeps the IG counter; `evt:<id>` where the notification
 * event has an id (athenahealth); otherwise `res:<Type>/<id>/<version>/<interaction>`, with the
 * version taken from `meta.versionId` (or the reference) and, failing that, a SHA-256 of the
 * canonical resource. Undefined when the event names no resource at all (an empty ping).
 */
export function eventDedupeKey(
  notification: ParsedNotification,
  event: NotificationEvent,
  counter: EventCounterSemantics,
): string | undefined {
  const subscription = subscriptionKey(notification);
  if (counter === 'subscription' && subscription && event.eventNumber !== undefined) {
    return `sub:${subscription}#${event.eventNumber}`;
  }
  if (event.id) return `evt:${event.id}`;
  const type = event.resource?.resourceType ?? event.focus?.resourceType;
  const id = event.resource?.id ?? event.focus?.id;
  if (!type || !id) return undefined;
  const version = event.resource?.meta?.versionId ?? event.focus?.versionId;
  if (version) return `res:${type}/${id}/${version}/${event.interaction}`;
  if (event.resource) {
    const digest = createHash('sha256').update(canonicalJson(event.resource)).digest('hex');
    return `res:${type}/${id}/sha256:${digest}/${event.interaction}`;
  }
  return event.interaction === 'delete' ? `res:${type}/${id}/delete` : undefined;
}
