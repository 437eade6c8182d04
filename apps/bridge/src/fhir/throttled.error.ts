import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';

/** A 429 that knows when the sender may try again (sent as Retry-After, in whole seconds). */
export class ThrottledError extends FhirRequestError {
  constructor(
    readonly retryAfterSeconds: number,
    text: string,
  ) {
    super(429, operationOutcome([outcomeIssue({ code: 'throttled', text })]));
  }
}
