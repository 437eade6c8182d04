/**
 * `@fhir-trail/fhir-client`: a FHIR R4 REST client for one source system (the EHR that sends us
 * notifications). It fetches what id-only and empty notifications leave out, recovers missed
 * events (`$events`), watches subscriptions (`$status`) and manages them, authenticating with
 * SMART Backend Services. Framework-free; it never logs and never requests a URL outside the
 * source's own base.
 */

export { SourceFhirClient } from './source-fhir.client';

export { type AccessTokens, smartTokenProvider } from './smart-token.provider';

export {
  isSourceFhirError,
  SourceFhirError,
  type SourceFhirErrorCode,
  type SourceFhirErrorDetails,
  type SourceFhirErrorOptions,
} from './source-fhir-error';

export type {
  BearerAuth,
  EventNumber,
  NoAuth,
  ReadOptions,
  ReadResult,
  SearchOptions,
  SearchParams,
  SearchResult,
  SinceParameter,
  SmartBackendAuth,
  SourceAuth,
  SourceFhirClientOptions,
  SubscriptionEventsOptions,
  SubscriptionGrant,
  SubscriptionStatusReport,
  SubscriptionWriteOptions,
  SubscriptionWriteResult,
} from './fhir-client.types';

export type { SourceResourceAddress } from './source-base-url';

export {
  ASSERTION_LIFETIME_SECONDS,
  importAssertionKey,
  signClientAssertion,
  type ClientAssertionAlgorithm,
  type ClientAssertionInput,
} from './client-assertion.signer';
