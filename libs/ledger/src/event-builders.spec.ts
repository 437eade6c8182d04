import {
  accessEvent,
  consentEvent,
  erasureEvent,
  eventLeafEntry,
  isLedgerError,
  parseLedgerEventRecord,
  provenanceEvent,
  sharingEvent,
} from '@fhir-trail/ledger';

const DIGEST = `0x${'ab'.repeat(32)}`;
const PSEUDONYM = `0x${'cd'.repeat(32)}`;
const BASE = {
  eventId: '6f1c1f0e-7a39-4d1e-9c55-3f3f6b4c2a10',
  recorded: new Date('2026-11-25T06:51:00.000Z'),
  source: 'ehr-a',
  actor: 'bridge:fhir-trail-1',
};
const DISCLOSURE = {
  ...BASE,
  subject: 'Observation',
  recipient: 'org:clinic-b',
  purpose: 'TREAT',
  consentKey: `0x${'ef'.repeat(32)}`,
  resourceDigest: DIGEST,
  patient: PSEUDONYM,
};

describe('event builders', () => {
  it.each([
    [
      'provenance',
      provenanceEvent({
        ...BASE,
        subject: 'Observation',
        resourceDigest: DIGEST,
        provenanceDigest: DIGEST,
        patient: PSEUDONYM,
      }),
      '{"actor":"bridge:fhir-trail-1","eventId":"6f1c1f0e-7a39-4d1e-9c55-3f3f6b4c2a10","kind":"provenance",' +
        `"patient":"${PSEUDONYM}","provenanceDigest":"${DIGEST}","recorded":"2026-11-25T06:51:00.000Z",` +
        `"resourceDigest":"${DIGEST}","source":"ehr-a","subject":"Observation","v":1}`,
    ],
    [
      'sharing',
      sharingEvent({ ...DISCLOSURE, decision: 'delivered' }),
      `{"actor":"bridge:fhir-trail-1","consent":"0x${'ef'.repeat(32)}","decision":"delivered",` +
        '"eventId":"6f1c1f0e-7a39-4d1e-9c55-3f3f6b4c2a10","kind":"sharing",' +
        `"patient":"${PSEUDONYM}","purpose":"TREAT","recipient":"org:clinic-b","recorded":"2026-11-25T06:51:00.000Z",` +
        `"resourceDigest":"${DIGEST}","source":"ehr-a","subject":"Observation","v":1}`,
    ],
    [
      'access',
      accessEvent({ ...DISCLOSURE, consentKey: undefined, resourceDigest: undefined, decision: 'denied' }),
      '{"actor":"bridge:fhir-trail-1","decision":"denied","eventId":"6f1c1f0e-7a39-4d1e-9c55-3f3f6b4c2a10",' +
        `"kind":"access","patient":"${PSEUDONYM}","purpose":"TREAT","recipient":"org:clinic-b",` +
        '"recorded":"2026-11-25T06:51:00.000Z","source":"ehr-a","subject":"Observation","v":1}',
    ],
    [
      'consent',
      consentEvent({ ...BASE, patient: PSEUDONYM, consentKey: 'registry:42', decision: 'revoked' }),
      '{"actor":"bridge:fhir-trail-1","consent":"registry:42","decision":"revoked",' +
        '"eventId":"6f1c1f0e-7a39-4d1e-9c55-3f3f6b4c2a10","kind":"consent",' +
        `"patient":"${PSEUDONYM}","recorded":"2026-11-25T06:51:00.000Z","source":"ehr-a","subject":"Consent","v":1}`,
    ],
    [
      'erasure',
      erasureEvent({ ...BASE, patient: PSEUDONYM }),
      '{"actor":"bridge:fhir-trail-1","eventId":"6f1c1f0e-7a39-4d1e-9c55-3f3f6b4c2a10","kind":"erasure",' +
        `"patient":"${PSEUDONYM}","recorded":"2026-11-25T06:51:00.000Z","source":"ehr-a","subject":"Patient","v":1}`,
    ],
  ])('build a %s record whose leaf entry is its RFC 8785 JSON', (kind, record, canonical) => {
    expect(record.kind).toBe(kind);
    expect(eventLeafEntry(record).toString('utf8')).toBe(canonical);
    expect(parseLedgerEventRecord(JSON.parse(canonical))).toEqual(JSON.parse(canonical));
  });

  it.each([
    ['a disclosure decision on a consent', { kind: 'consent', decision: 'delivered' }, 'record.decision'],
    ['a decision on a provenance event', { kind: 'provenance', decision: 'granted' }, 'record.decision'],
    ['an unknown decision', { kind: 'sharing', decision: 'maybe' }, 'record.decision'],
  ])('refuse %s', (_what, change, field) => {
    const base = JSON.parse(
      eventLeafEntry(sharingEvent({ ...DISCLOSURE, decision: 'failed' })).toString('utf8'),
    ) as Record<string, unknown>;
    const attempt = () => parseLedgerEventRecord({ ...base, ...change });
    expect(attempt).toThrow(expect.objectContaining({ code: 'INVALID_EVENT_RECORD' }) as Error);
    try {
      attempt();
    } catch (error) {
      expect(isLedgerError(error) && error.details?.field).toBe(field);
    }
  });

  it('refuse a pseudonym that is not a keyed digest (no raw ids in the log)', () => {
    expect(() => erasureEvent({ ...BASE, patient: 'Patient/123' })).toThrow(/erasure\.patient/);
  });
});
