import { createHmac } from 'node:crypto';
import { resourceVersionDigest, type StoredResourceVersionFacts } from '@fhir-trail/fhir-mapping';

const KEY = Buffer.alloc(32, 0x42);
const FACTS: StoredResourceVersionFacts = {
  source: 'ehr-a',
  resourceType: 'Observation',
  resourceId: 'obs-1',
  version: 2,
  sourceVersionId: '7',
  sourceLastUpdated: '2026-11-25T06:51:00.000Z',
  interaction: 'update',
  recorded: '2026-11-25T06:51:01.000Z',
  inboxId: '41',
  entryIndex: 0,
  applied: true,
  resource: { resourceType: 'Observation', id: 'obs-1', status: 'final' },
};

describe('resourceVersionDigest', () => {
  it('is HMAC-SHA-256(key, RFC 8785 JSON of the resource and its stored facts)', () => {
    // Written out by hand in RFC 8785 order (keys sorted by UTF-16 code units).
    const canonical =
      '{"applied":true,"entryIndex":0,"inboxId":"41","interaction":"update",' +
      '"recorded":"2026-11-25T06:51:01.000Z","resource":{"id":"obs-1","resourceType":"Observation","status":"final"},' +
      '"resourceId":"obs-1","resourceType":"Observation","source":"ehr-a",' +
      '"sourceLastUpdated":"2026-11-25T06:51:00.000Z","sourceVersionId":"7","version":2}';
    const expected = `0x${createHmac('sha256', KEY).update(canonical, 'utf8').digest('hex')}`;
    expect(resourceVersionDigest(KEY, FACTS)).toBe(expected);
  });

  it.each<[string, Partial<StoredResourceVersionFacts>]>([
    ['source', { source: 'ehr-b' }],
    ['resourceType', { resourceType: 'Condition' }],
    ['resourceId', { resourceId: 'obs-2' }],
    ['version', { version: 3 }],
    ['sourceVersionId', { sourceVersionId: null }],
    ['sourceLastUpdated', { sourceLastUpdated: '2026-11-25T06:51:00.001Z' }],
    ['interaction', { interaction: 'create' }],
    ['recorded', { recorded: '2026-11-25T06:51:02.000Z' }],
    ['inboxId', { inboxId: '42' }],
    ['entryIndex', { entryIndex: 1 }],
    ['applied', { applied: false }],
    ['resource', { resource: { resourceType: 'Observation', id: 'obs-1', status: 'amended' } }],
    ['resource (deleted)', { resource: null }],
  ])('changes when %s changes', (_field, change) => {
    expect(resourceVersionDigest(KEY, { ...FACTS, ...change })).not.toBe(resourceVersionDigest(KEY, FACTS));
  });

  it('depends on the key (another patient, or a destroyed key, gives nothing linkable)', () => {
    expect(resourceVersionDigest(Buffer.alloc(32, 0x43), FACTS)).not.toBe(resourceVersionDigest(KEY, FACTS));
  });
});
