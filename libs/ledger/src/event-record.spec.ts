import { createHash } from 'node:crypto';
import {
  type LedgerEventRecord,
  canonicalRecordJson,
  eventLeafEntry,
  eventLeafHash,
  parseLedgerEventRecord,
} from './event-record';
import { isLedgerError } from './ledger-error';

const DIGEST = `0x${'ab'.repeat(32)}`;
const RECORD: LedgerEventRecord = {
  v: 1,
  kind: 'sharing',
  eventId: 'evt-0001',
  recorded: '2026-11-25T06:51:00.000Z',
  source: 'demo',
  subject: 'Observation',
  resourceDigest: DIGEST,
  patient: `0x${'cd'.repeat(32)}`,
  actor: 'org:bridge',
  recipient: 'org:clinic-b',
  purpose: 'TREAT',
};

describe('event records', () => {
  it('are hashed as SHA-256(0x00 || RFC 8785 canonical JSON)', () => {
    const entry = eventLeafEntry(RECORD);
    expect(entry.toString('utf8')).toBe(
      '{"actor":"org:bridge","eventId":"evt-0001","kind":"sharing",' +
        `"patient":"0x${'cd'.repeat(32)}","purpose":"TREAT","recipient":"org:clinic-b","recorded":"2026-11-25T06:51:00.000Z",` +
        `"resourceDigest":"${DIGEST}","source":"demo","subject":"Observation","v":1}`,
    );
    const expected = createHash('sha256')
      .update(Buffer.from([0]))
      .update(entry)
      .digest();
    expect(eventLeafHash(RECORD).equals(expected)).toBe(true);
  });

  it('hash the same whatever the key order, and ignore undefined members', () => {
    const shuffled = Object.fromEntries(Object.entries(RECORD).reverse()) as unknown as LedgerEventRecord;
    expect(eventLeafHash(shuffled).equals(eventLeafHash(RECORD))).toBe(true);
    expect(eventLeafHash({ ...RECORD, consent: undefined }).equals(eventLeafHash(RECORD))).toBe(true);
    expect(eventLeafHash({ ...RECORD, actor: 'org:other' }).equals(eventLeafHash(RECORD))).toBe(false);
  });

  it('accept every kind with only the required fields', () => {
    for (const kind of ['provenance', 'sharing', 'access', 'consent', 'erasure'] as const) {
      const minimal: LedgerEventRecord = {
        v: 1,
        kind,
        eventId: 'e',
        recorded: '2026-01-01T00:00:00Z',
        source: 's',
        subject: 'Consent',
        actor: 'a',
      };
      expect(parseLedgerEventRecord(minimal)).toBe(minimal);
    }
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['wrong version', { v: 2 }, 'record.v'],
    ['unknown kind', { kind: 'delete' }, 'record.kind'],
    ['missing event id', { eventId: undefined }, 'record.eventId'],
    ['empty source', { source: '' }, 'record.source'],
    ['local time instead of UTC', { recorded: '2026-11-25T07:51:00+01:00' }, 'record.recorded'],
    ['impossible date', { recorded: '2026-13-45T00:00:00Z' }, 'record.recorded'],
    ['an id in subject', { subject: 'Patient/123' }, 'record.subject'],
    [
      'uppercase digest',
      { resourceDigest: DIGEST.toUpperCase().replace('0X', '0x') },
      'record.resourceDigest',
    ],
    ['plain patient id', { patient: 'Patient/123' }, 'record.patient'],
    ['control character', { actor: 'org\nb' }, 'record.actor'],
    ['PHI-shaped extra field', { name: 'Peter Chalmers' }, 'record.name'],
    ['number where text belongs', { purpose: 7 }, 'record.purpose'],
  ])('refuse %s and name the field', (_, change, field) => {
    const value = { ...RECORD, ...change };
    if ('eventId' in change && change['eventId'] === undefined)
      delete (value as Record<string, unknown>)['eventId'];
    let error: unknown;
    try {
      parseLedgerEventRecord(value);
    } catch (e) {
      error = e;
    }
    expect(isLedgerError(error, 'INVALID_EVENT_RECORD')).toBe(true);
    expect(isLedgerError(error) && error.details['field']).toBe(field);
    expect(() => eventLeafEntry(value)).toThrow(field);
  });

  it('refuse what is not an object', () => {
    expect(() => parseLedgerEventRecord(['x'])).toThrow('record must be a JSON object');
    expect(() => parseLedgerEventRecord(null, 'event')).toThrow('event must be a JSON object');
  });
});

describe('canonicalRecordJson', () => {
  it('matches the RFC 8785 §3.2.2 example', () => {
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
        '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    ) as unknown;
    expect(canonicalRecordJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('refuses values JSON cannot hold', () => {
    expect(() => canonicalRecordJson({ n: Number.NaN })).toThrow('canonical JSON');
    expect(() => canonicalRecordJson(undefined)).toThrow('canonical JSON');
  });
});
