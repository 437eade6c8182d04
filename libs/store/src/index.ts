export * from './admin-keys.repository';
export * from './anchor-outbox.repository';
export * from './consents.repository';
export * from './database';
export * from './database-errors';
export * from './dead-letters.repository';
export * from './inbox.repository';
export { type KeyWrapper, LocalKeyWrapper } from './key-wrapper';
export * from './ledger.repository';
export * from './mapping-profiles.repository';
export * from './patient-keys.repository';
export * from './processed-events.repository';
export * from './resources.repository';
export * from './sharing.repository';
export type {
  DeadLetterInputContext,
  DeadLetterStatus,
  ConsentOrigin,
  DestinationSmartSettings,
  DeleteStyle,
  DeliveryMode,
  SharingDecisionKind,
  AccessDecisionKind,
  EventCounter,
  EventGapStatus,
  FhirAuthSettings,
  InboxStatus,
  SenderAuthKind,
  SenderProfile,
  SignatureKind,
  SmartSigningAlgorithm,
  SourceOrganisation,
} from './schema';
export * from './sources.repository';
export * from './store';
export * from './subscriptions.repository';
