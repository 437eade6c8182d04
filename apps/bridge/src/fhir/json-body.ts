import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';

const JSON_MEDIA_TYPES = new Set(['application/fhir+json', 'application/json']);

/** The first value of a header that may repeat. */
export function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Parses a raw JSON body: 415 for a media type other than application/fhir+json or
 * application/json, 400 (`structure`) for bytes that are not JSON. Messages never quote the body.
 */
export function parseJsonBody(raw: Buffer, contentType: string | undefined): unknown {
  const mediaType = contentType?.split(';')[0].trim().toLowerCase();
  if (!mediaType || !JSON_MEDIA_TYPES.has(mediaType)) {
    throw new FhirRequestError(
      415,
      operationOutcome([
        outcomeIssue({
          code: 'not-supported',
          text: `unsupported content type '${mediaType ?? '(none)'}'; send application/fhir+json or application/json`,
        }),
      ]),
    );
  }
  try {
    // A UTF-8 byte-order mark is tolerated (one real sender's captures start with one).
    return JSON.parse(raw.toString('utf8').replace(/^\uFEFF/, '')) as unknown;
  } catch (error) {
    // V8's message quotes the input; report only where it broke.
    const position = /position (\d+)/.exec(String(error))?.[1];
    throw new FhirRequestError(
      400,
      operationOutcome([
        outcomeIssue({
          code: 'structure',
          text: `the body is not valid JSON${position ? ` (syntax error at byte ${position})` : ''}`,
        }),
      ]),
      { cause: error },
    );
  }
}
