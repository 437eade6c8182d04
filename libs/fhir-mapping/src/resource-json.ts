import type { Resource } from '@medplum/fhirtypes';

import { isRecord } from './json-value';
import { FhirRequestError, outcomeIssue } from './operation-outcome';

/**
 * Parses FHIR JSON text (a file, a request body) into a resource. A leading UTF-8 byte-order mark
 * is tolerated.
 *
 * @throws FhirRequestError 400 `structure` when the text is not JSON (saying where it broke and
 *   what it looks like: a comment, a trailing comma, an unquoted name, an unclosed object...; the
 *   message never quotes the text), or when the JSON is not an object with a `resourceType`.
 */
export function parseResourceJson(text: string | Buffer): Resource {
  const source = (typeof text === 'string' ? text : text.toString('utf8')).replace(/^\uFEFF/, '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(source) as unknown;
  } catch (error) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: describeSyntaxError(source) }),
      { cause: error },
    );
  }
  if (!isRecord(parsed)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: 'The JSON is not an object, so it is not a FHIR resource' }),
    );
  }
  if (typeof parsed.resourceType !== 'string' || parsed.resourceType === '') {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: 'The JSON object has no resourceType, so it is not a FHIR resource',
        expression: 'resourceType',
      }),
    );
  }
  return parsed as unknown as Resource;
}

/** "Not valid JSON: <what> at line L, column C"; V8's own message may quote the input, so it is not used. */
function describeSyntaxError(source: string): string {
  if (source.trim() === '') return 'Not valid JSON: the input is empty';
  const found = locateJsonError(source);
  if (!found) return 'Not valid JSON';
  const before = source.slice(0, found.position);
  const line = before.split('\n').length;
  const column = found.position - before.lastIndexOf('\n');
  return `Not valid JSON: ${found.cause} at line ${line}, column ${column}`;
}

/** Where and why JSON text breaks (a small recursive-descent scan, run only after JSON.parse failed). */
export function locateJsonError(source: string): { position: number; cause: string } | undefined {
  let at = 0;
  class Broken extends Error {
    constructor(
      readonly where: number,
      readonly why: string,
    ) {
      super(why);
    }
  }
  const fail = (cause: string, position = at): never => {
    throw new Broken(position, cause);
  };
  const space = (): void => {
    while (at < source.length && ' \t\n\r'.includes(source[at] ?? '')) at++;
    if (source.startsWith('//', at) || source.startsWith('/*', at))
      fail('a comment (FHIR JSON has no comments)');
  };
  const unexpected = (expected: string): never => {
    if (at >= source.length) fail('the input ends early (an object, array or string is not closed)');
    const char = source[at] ?? '';
    if (char === "'") fail('a single-quoted string (JSON needs double quotes)');
    if (/[A-Za-z_$]/.test(char)) fail(`a bare word where ${expected} belongs (strings need double quotes)`);
    return fail(`an unexpected character where ${expected} belongs`);
  };
  const string = (): void => {
    at++;
    while (at < source.length) {
      const char = source[at] ?? '';
      if (char === '"') {
        at++;
        return;
      }
      if (char < ' ') fail('a control character inside a string (escape it)');
      if (char === '\\') {
        const next = source[at + 1] ?? '';
        if (next === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(source.slice(at + 2, at + 6)))
            fail('an invalid \\u escape in a string');
          at += 6;
          continue;
        }
        if (!'"\\/bfnrt'.includes(next) || next === '') fail('an invalid escape sequence in a string');
        at += 2;
        continue;
      }
      at++;
    }
    fail('a string that is not closed');
  };
  const value = (): void => {
    space();
    const char = source[at];
    if (char === '{') return object();
    if (char === '[') return array();
    if (char === '"') return string();
    const literal = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(source.slice(at));
    if (literal) {
      at += literal[0].length;
      return;
    }
    unexpected('a value');
  };
  const object = (): void => {
    at++;
    space();
    if (source[at] === '}') {
      at++;
      return;
    }
    for (;;) {
      space();
      if (source[at] === '}') fail('a trailing comma');
      if (source[at] !== '"') {
        if (/[A-Za-z_$]/.test(source[at] ?? '')) fail('a property name without double quotes');
        unexpected('a property name');
      }
      string();
      space();
      if (source[at] !== ':') unexpected("':'");
      at++;
      value();
      space();
      if (source[at] === ',') {
        at++;
        continue;
      }
      if (source[at] === '}') {
        at++;
        return;
      }
      if (source[at] === '"') fail('a missing comma between properties');
      if (source[at] === ']') fail("a ']' where the object needs '}'");
      unexpected("',' or '}'");
    }
  };
  const array = (): void => {
    at++;
    space();
    if (source[at] === ']') {
      at++;
      return;
    }
    for (;;) {
      value();
      space();
      if (source[at] === ',') {
        at++;
        space();
        if (source[at] === ']') fail('a trailing comma');
        continue;
      }
      if (source[at] === ']') {
        at++;
        return;
      }
      if (source[at] === '}') fail("a '}' where the array needs ']'");
      if (source[at] === '"' || source[at] === '{' || source[at] === '[')
        fail('a missing comma between array items');
      unexpected("',' or ']'");
    }
  };
  try {
    value();
    space();
    if (at < source.length) fail('more text after the end of the JSON value');
    return undefined;
  } catch (error) {
    if (error instanceof Broken) return { position: error.where, cause: error.why };
    throw error;
  }
}
