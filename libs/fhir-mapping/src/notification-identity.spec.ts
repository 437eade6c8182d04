import { readJsonFixture } from '../../../test/fixtures/fixture-files';
import { eventDedupeKey, subscriptionKey } from './notification-identity';
import { parseNotification } from './notification.parser';
import type { NotificationRequest } from './notification.types';

const post = (body: unknown, headers: NotificationRequest['headers'] = {}): NotificationRequest => ({
  method: 'POST',
  body,
  headers,
});

describe('eventDedupeKey', () => {
  it('uses the subscription counter for Backport senders', () => {
    const notification = parseNotification(
      post(readJsonFixture('subscriptions/r4-backport__event-notification__full-resource__inferno.json')),
    );
    const key = eventDedupeKey(notification, notification.events[0], 'subscription');
    expect(key).toMatch(/^sub:Subscription\/[^#]+#\d+$/);
    expect(subscriptionKey(notification)).toMatch(/^Subscription\//);
  });

  it('uses the notification event id for athenahealth, whose numbers restart per bundle', () => {
    const notification = parseNotification(
      post(readJsonFixture('subscriptions/athenahealth/send-patient-notification.json')),
    );
    const keys = notification.events.map((e) => eventDedupeKey(notification, e, 'per-bundle'));
    expect(keys.every((k) => k?.startsWith('evt:'))).toBe(true);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('uses type, id, version and interaction for classic senders', () => {
    const resource = { resourceType: 'Patient', id: 'p1', meta: { versionId: '3' } };
    const notification = parseNotification(post(resource, { 'x-medplum-interaction': 'update' }));
    expect(eventDedupeKey(notification, notification.events[0], 'none')).toBe('res:Patient/p1/3/update');
  });

  it('falls back to a content hash when the sender gives no version, so only identical content collapses', () => {
    const a = parseNotification(post({ resourceType: 'Patient', id: 'p1', gender: 'male' }));
    const b = parseNotification(post({ gender: 'male', id: 'p1', resourceType: 'Patient' }));
    const c = parseNotification(post({ resourceType: 'Patient', id: 'p1', gender: 'female' }));
    const key = (n: typeof a) => eventDedupeKey(n, n.events[0], 'none');
    expect(key(a)).toMatch(/^res:Patient\/p1\/sha256:[0-9a-f]{64}\//);
    expect(key(a)).toBe(key(b));
    expect(key(a)).not.toBe(key(c));
  });

  it('gives an empty ping no key', () => {
    const notification = parseNotification({ method: 'POST', body: undefined, headers: {} });
    expect(notification.events.every((e) => eventDedupeKey(notification, e, 'none') === undefined)).toBe(
      true,
    );
  });
});
