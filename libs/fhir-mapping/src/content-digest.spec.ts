import { createHmac } from 'node:crypto';

import type { Resource } from '@medplum/fhirtypes';

import { canonicalJson, keyedDigest, patientPseudonym, patientReferenceOf } from '@fhir-trail/fhir-mapping';

import { readFixtureBytes, readJsonFixture } from '../../../test/fixtures/fixture-files';
import { withValue } from '../../../test/fixtures/json-edit';

const KEY = Buffer.alloc(32, 7);
const OTHER_KEY = Buffer.alloc(32, 8);

function resourceFixture(file: string): Resource {
  return readJsonFixture(file) as Resource;
}

describe('canonicalJson (RFC 8785)', () => {
  it.each<[string, unknown, string]>([
    // RFC 8785 section 3.2.3 sorts by UTF-16 code units; 3.2.2.3 formats numbers like ECMAScript.
    ['sorts keys and drops whitespace', { b: 1, a: [true, null, 'x'] }, '{"a":[true,null,"x"],"b":1}'],
    ['sorts nested keys', { z: { y: 1, x: 2 }, a: {} }, '{"a":{},"z":{"x":2,"y":1}}'],
    [
      'formats numbers as ECMAScript does',
      { n: [1.0, 1e21, 0.000001, -0, 1e-7] },
      '{"n":[1,1e+21,0.000001,0,1e-7]}',
    ],
    ['keeps non-ASCII text as is', { name: 'Çé€😀' }, '{"name":"Çé€😀"}'],
    ['escapes control characters', { s: '\u0001\n"' }, '{"s":"\\u0001\\n\\""}'],
    [
      'sorts by UTF-16 code units',
      { '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, '1': 4, '\u00f6': 5 },
      '{"\\r":2,"1":4,"ö":5,"€":1,"😀":3}',
    ],
    ['omits undefined properties', { a: undefined, b: 2 }, '{"b":2}'],
    ['accepts a primitive', 'Patient/1', '"Patient/1"'],
  ])('%s', (_label, value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it('gives the same bytes for the same resource whatever the key order and formatting', () => {
    const bytes = readFixtureBytes('r4-examples/Patient-example.json').toString('utf8');
    const parsed = JSON.parse(bytes) as Record<string, unknown>;
    const reordered = Object.fromEntries(Object.entries(parsed).reverse());
    expect(canonicalJson(reordered)).toBe(canonicalJson(parsed));
    expect(canonicalJson(JSON.parse(canonicalJson(parsed)))).toBe(canonicalJson(parsed));
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['a function', { f: () => 1 }],
    ['a bigint', { n: 1n }],
    ['NaN', { n: Number.NaN }],
    ['Infinity', [Number.POSITIVE_INFINITY]],
    ['a Date', { d: new Date(0) }],
    ['a Buffer', Buffer.from('x')],
    ['a lone surrogate', { s: '\ud800' }],
    ['undefined inside an array', [1, undefined]],
  ])('rejects %s', (_label, value) => {
    expect(() => canonicalJson(value)).toThrow(TypeError);
  });

  it('names the path, not the value, when it rejects', () => {
    expect(() => canonicalJson({ name: [{ family: 'Chalmers', n: Number.NaN }] })).toThrow(
      'canonicalJson: non-finite number at $.name[0].n',
    );
  });
});

describe('keyedDigest', () => {
  const patient = readJsonFixture('r4-examples/Patient-example.json');

  it('is 0x + hex HMAC-SHA-256 over the canonical JSON', () => {
    const expected = createHmac('sha256', KEY).update(canonicalJson(patient), 'utf8').digest('hex');
    expect(keyedDigest(KEY, patient)).toBe(`0x${expected}`);
    expect(keyedDigest(KEY, patient)).toMatch(/^0x[0-9a-f]{64}$/);
  });

  it('matches an independent HMAC of a fixed canonical string', () => {
    // HMAC-SHA-256(32 x 0x07, '{"a":1}') computed with Node crypto outside canonicalJson.
    const expected = createHmac('sha256', KEY).update('{"a":1}').digest('hex');
    expect(keyedDigest(KEY, { a: 1 })).toBe(`0x${expected}`);
  });

  it('changes with the key and with any change to the resource', () => {
    const digest = keyedDigest(KEY, patient);
    expect(keyedDigest(OTHER_KEY, patient)).not.toBe(digest);
    expect(keyedDigest(KEY, withValue(patient, ['active'], false))).not.toBe(digest);
  });

  it('refuses keys shorter than 32 bytes', () => {
    expect(() => keyedDigest(Buffer.alloc(16), patient)).toThrow(RangeError);
  });
});

describe('patientPseudonym', () => {
  it('is the keyed digest of the JSON string "Patient/{id}"', () => {
    const expected = createHmac('sha256', KEY).update('"Patient/example"').digest('hex');
    expect(patientPseudonym(KEY, 'Patient/example')).toBe(`0x${expected}`);
  });

  it('gives one pseudonym for every form of the same reference', () => {
    const pseudonym = patientPseudonym(KEY, 'Patient/example');
    expect(patientPseudonym(KEY, 'Patient/example/_history/3')).toBe(pseudonym);
    expect(patientPseudonym(KEY, 'https://ehr.example/fhir/Patient/example')).toBe(pseudonym);
    expect(patientPseudonym(KEY, 'Patient/f001')).not.toBe(pseudonym);
    expect(patientPseudonym(OTHER_KEY, 'Patient/example')).not.toBe(pseudonym);
  });

  it.each([
    'Group/herd1',
    '#newborn',
    'urn:uuid:46db3334-dbf5-43f3-868f-93ae0883cce1',
    'Patient?identifier=x|1',
    '',
  ])('rejects %s without echoing it', (reference) => {
    expect(() => patientPseudonym(KEY, reference)).toThrow('patientPseudonym: not a Patient/{id} reference');
  });
});

describe('patientReferenceOf', () => {
  it.each<[string, string | undefined]>([
    ['r4-examples/Patient-example.json', 'Patient/example'],
    ['r4-examples/Patient-f001.json', 'Patient/f001'],
    ['r4-examples/Observation-example.json', 'Patient/example'], // subject
    ['r4-examples/Encounter-example.json', 'Patient/example'], // subject
    ['r4-examples/AllergyIntolerance-example.json', 'Patient/example'], // patient
    ['r4-examples/RelatedPerson-benedicte.json', 'Patient/example'], // patient
    ['r4-examples/Coverage-9876B1.json', 'Patient/4'], // beneficiary
    ['r4-examples/Observation-herd1.json', undefined], // subject is a Group
    ['r4-examples/Observation-1minute-apgar-score.json', undefined], // contained #newborn
    ['r4-examples/Organization-1.json', undefined],
    ['r4-examples/Provenance-example.json', undefined],
  ])('%s -> %s', (file, expected) => {
    expect(patientReferenceOf(resourceFixture(file))).toBe(expected);
  });

  it('reads individual, and reduces absolute and versioned references to Patient/{id}', () => {
    expect(
      patientReferenceOf({
        resourceType: 'ResearchSubject',
        status: 'on-study',
        study: { reference: 'ResearchStudy/1' },
        individual: { reference: 'https://ehr.example/fhir/Patient/p-7/_history/2' },
      }),
    ).toBe('Patient/p-7');
  });

  it('uses the first element that points at a Patient', () => {
    const observation = withValue(readJsonFixture('r4-examples/Observation-herd1.json'), ['patient'], {
      reference: 'Patient/p-1',
    });
    expect(patientReferenceOf(observation as Resource)).toBe('Patient/p-1');
  });

  it('finds the patient of a notified encounter (r4b full-resource fixture)', () => {
    const bundle = readJsonFixture(
      'subscriptions/r4b__event-notification__full-resource__fhir-4.3.0-spec.json',
    ) as {
      entry: { resource: Resource }[];
    };
    expect(patientReferenceOf(bundle.entry[1].resource)).toBe('Patient/123');
  });

  it('returns undefined for a Patient without id and for identifier-only references', () => {
    expect(patientReferenceOf({ resourceType: 'Patient' })).toBeUndefined();
    expect(
      patientReferenceOf({
        resourceType: 'Encounter',
        status: 'finished',
        class: { code: 'AMB' },
        subject: { type: 'Patient', identifier: { system: 'urn:mrn', value: '12345' } },
      }),
    ).toBeUndefined();
  });
});
