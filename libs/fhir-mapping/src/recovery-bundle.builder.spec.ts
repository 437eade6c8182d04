import { eventDedupeKey } from './notification-identity';
import { parseNotification } from './notification.parser';
import { buildRecoveryBundle } from './recovery-bundle.builder';

describe('buildRecoveryBundle', () => {
  it('round-trips through the notification parser with the same event identities', () => {
    const bundle = buildRecoveryBundle('Subscription/s1', [
      { eventNumber: '3', resource: { resourceType: 'Patient', id: 'p3', meta: { versionId: '1' } } },
      { resource: { resourceType: 'Observation', id: 'o1', status: 'final', code: { text: 'x' } } },
      { eventNumber: '4', focusReference: 'Patient/p4' },
    ]);
    const parsed = parseNotification({
      method: 'POST',
      body: JSON.parse(JSON.stringify(bundle)),
      headers: {},
    });
    expect(parsed.shape).toBe('backport-history');
    expect(parsed.notificationType).toBe('query-event');
    expect(parsed.events.map((e) => [e.eventNumber, e.content, e.resource?.id ?? e.focus?.id])).toEqual([
      ['3', 'full-resource', 'p3'],
      [undefined, 'full-resource', 'o1'],
      ['4', 'id-only', 'p4'],
    ]);
    expect(eventDedupeKey(parsed, parsed.events[0], 'subscription')).toBe('sub:Subscription/s1#3');
    expect(eventDedupeKey(parsed, parsed.events[1], 'subscription')).toMatch(/^res:Observation\/o1\/sha256:/);
  });
});
