import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FhirRequestError, parseResourceJson } from '@fhir-trail/fhir-mapping';

import { readFixtureBytes } from '../../../test/fixtures/fixture-files';

/** The real response our Cerner-style file is modelled on: read in place from the shared corpus (never copied). */
const SHARED_CERNER_PATIENT = join(
  process.env.FHIR_CORPUS_DIR ?? join(__dirname, '../../../../shared/fhir-corpus'),
  'invalid/cerner-sandbox/ExamplePatientResponse.json',
);

function rejection(text: string | Buffer): FhirRequestError {
  try {
    parseResourceJson(text);
  } catch (error) {
    if (error instanceof FhirRequestError) return error;
    throw error;
  }
  throw new Error('expected a FhirRequestError');
}

describe('parseResourceJson', () => {
  it('parses a resource, from text or bytes, tolerating a byte-order mark', () => {
    expect(parseResourceJson('{"resourceType":"Patient","id":"a"}')).toEqual({
      resourceType: 'Patient',
      id: 'a',
    });
    expect(parseResourceJson(Buffer.from('\uFEFF{"resourceType":"Patient"}'))).toEqual({
      resourceType: 'Patient',
    });
  });

  it.each<[string, string]>([
    ['', 'Not valid JSON: the input is empty'],
    ['{"resourceType": "Patient",}', 'Not valid JSON: a trailing comma at line 1, column 28'],
    ['{"a": [1, 2,]}', 'Not valid JSON: a trailing comma at line 1, column 13'],
    ['{"a": 1 "b": 2}', 'Not valid JSON: a missing comma between properties at line 1, column 9'],
    ['{"a": [1 2]}', "Not valid JSON: an unexpected character where ',' or ']' belongs at line 1, column 10"],
    [
      '{\n  resourceType: "Patient"\n}',
      'Not valid JSON: a property name without double quotes at line 2, column 3',
    ],
    [
      '{"name": Smith}',
      'Not valid JSON: a bare word where a value belongs (strings need double quotes) at line 1, column 10',
    ],
    ["{'a': 1}", 'Not valid JSON: a single-quoted string (JSON needs double quotes) at line 1, column 2'],
    ['// note\n{}', 'Not valid JSON: a comment (FHIR JSON has no comments) at line 1, column 1'],
    ['{"a": {"b": 1]', "Not valid JSON: a ']' where the object needs '}' at line 1, column 14"],
    ['{"a": [1}', "Not valid JSON: a '}' where the array needs ']' at line 1, column 9"],
    ['{"a": "x', 'Not valid JSON: a string that is not closed at line 1, column 9'],
    ['{"a": "\\q"}', 'Not valid JSON: an invalid escape sequence in a string at line 1, column 8'],
    ['{"a": "\t"}', 'Not valid JSON: a control character inside a string (escape it) at line 1, column 8'],
    ['{"a": 1}}', 'Not valid JSON: more text after the end of the JSON value at line 1, column 9'],
    [
      '{"a": [',
      'Not valid JSON: the input ends early (an object, array or string is not closed) at line 1, column 8',
    ],
  ])('rejects %j: %s', (text, message) => {
    const error = rejection(text);
    expect(error.status).toBe(400);
    expect(error.outcome.issue).toEqual([
      { severity: 'error', code: 'structure', details: { text: message } },
    ]);
  });

  it('never quotes the input in the message', () => {
    const error = rejection('{"name": [{"family": Chalmers}]}');
    expect(error.message).not.toContain('Chalmers');
  });

  it('rejects a Cerner-style response with an invalid escape (backslash-space), naming the line', () => {
    const error = rejection(readFixtureBytes('invalid/cerner-style/patient-invalid-escape.json'));
    expect(error.outcome.issue[0]?.details?.text).toBe(
      'Not valid JSON: an invalid escape sequence in a string at line 36, column 37',
    );
  });

  // Only where the shared corpus is beside the repository (as in CI): it may not be redistributed.
  if (existsSync(SHARED_CERNER_PATIENT)) {
    it('rejects the real Cerner sandbox response with an invalid escape, naming the line', () => {
      const error = rejection(readFileSync(SHARED_CERNER_PATIENT));
      expect(error.outcome.issue[0]?.details?.text).toBe(
        'Not valid JSON: an invalid escape sequence in a string at line 1264, column 28',
      );
    });
  }

  it.each<[string, string, string | undefined]>([
    ['[]', 'The JSON is not an object, so it is not a FHIR resource', undefined],
    ['"Patient"', 'The JSON is not an object, so it is not a FHIR resource', undefined],
    ['{"id": "a"}', 'The JSON object has no resourceType, so it is not a FHIR resource', 'resourceType'],
  ])('rejects JSON %s that is not a resource', (text, message, expression) => {
    const [issue] = rejection(text).outcome.issue;
    expect(issue?.details?.text).toBe(message);
    expect(issue?.expression).toEqual(expression === undefined ? undefined : [expression]);
  });
});
