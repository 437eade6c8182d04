/** Content type of every FHIR answer of the bridge. */
export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** How long a sender should wait before retrying a 503 or 429 (sent as Retry-After). */
export const RETRY_AFTER_SECONDS = 5;
