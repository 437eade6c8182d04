import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import { isDatabaseUnavailable } from '@fhir-trail/store';

/**
 * Runs `work`; if PostgreSQL cannot be reached, answers 503 (with Retry-After, set by the filter)
 * so the caller retries, instead of a 500 or a false success.
 */
export async function unavailableAs503<T>(
  work: () => Promise<T>,
  text = 'the bridge cannot reach its database right now; retry later',
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isDatabaseUnavailable(error)) {
      throw new FhirRequestError(503, operationOutcome([outcomeIssue({ code: 'transient', text })]), {
        cause: error,
      });
    }
    throw error;
  }
}
