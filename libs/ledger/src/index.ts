/**
 * `@fhir-trail/ledger`: the RFC 9162 Merkle log, event records and proof bundles, the
 * FhirTrailAnchor contract and its ethers client, the embedded dev chain and the offline verifier.
 * Framework-free and storage-free: it knows hashes and ids, never FHIR resources or PHI.
 * (The Solidity compiler wrapper, `contract-compiler.ts`, is build tooling and not exported.)
 */

// Errors
export {
  type LedgerErrorCode,
  type LedgerErrorDetails,
  LedgerError,
  isLedgerError,
  toLedgerError,
} from './ledger-error';

// Hashes and the Merkle log
export { fromHashHex, isHashHex, toHashHex } from './hex-encoding';
export { EMPTY_TREE_ROOT_HEX, HASH_SIZE, emptyTreeRoot, leafHash, nodeHash } from './merkle-hash';
export {
  type AppendResult,
  type MerkleNode,
  type MerkleNodeReader,
  type NodeKey,
  appendLeaves,
  consistencyProof,
  consistencyProofKeys,
  frontierKeys,
  inclusionProof,
  inclusionProofKeys,
  loadFrontier,
  nodeKeyId,
  rootFromFrontier,
  treeRoot,
} from './merkle-log';
export { rootFromInclusionPath, verifyConsistency, verifyInclusion } from './merkle-proof';
export { InMemoryMerkleLog } from './in-memory-merkle-log';

// Event records and proof bundles
export {
  CONSENT_DECISIONS,
  DISCLOSURE_DECISIONS,
  LEDGER_EVENT_KINDS,
  type ConsentDecision,
  type DisclosureDecision,
  type LedgerEventDecision,
  type LedgerEventKind,
  type LedgerEventRecord,
  canonicalRecordJson,
  eventLeafEntry,
  eventLeafHash,
  parseLedgerEventRecord,
} from './event-record';
export {
  type ConsentEventInput,
  type DisclosureEventInput,
  type ErasureEventInput,
  type ProvenanceEventInput,
  accessEvent,
  consentEvent,
  erasureEvent,
  provenanceEvent,
  sharingEvent,
} from './event-builders';
export {
  PROOF_BUNDLE_FORMAT,
  type AnchorReference,
  type AnchoredProofBundle,
  type ProofBundle,
  anchoredProofBundle,
  isAnchoredProofBundle,
  parseProofBundle,
} from './proof-bundle';
export {
  type CompactProofBundle,
  COMPACT_PROOF_BUNDLE_FORMAT,
  compactProofBundle,
  expandProofBundle,
  isCompactProofBundle,
} from './proof-bundle-compact';
export {
  CHECKPOINT_FORMAT,
  type AnchoredCheckpoint,
  anchoredCheckpoint,
  parseAnchoredCheckpoint,
} from './checkpoint';
export {
  CONSISTENCY_PROOF_FORMAT,
  type ConsistencyProofDocument,
  consistencyProofDocument,
  parseConsistencyProof,
} from './consistency-proof';

// The anchor contract and the chain
export type { CompilerSettings, ContractArtifact } from './contract-compiler';
export {
  ANCHORED_EVENT_TOPIC,
  ANCHOR_CONTRACT_ARTIFACT,
  ANCHOR_ROLES,
  anchorContractInterface,
} from './anchor-contract';
export {
  DEV_ACCOUNT_PRIVATE_KEY,
  EMBEDDED_CHAIN_ID,
  type ProviderOptions,
  createProvider,
  endpointName,
  readChainId,
} from './chain-provider';
export { type EmbeddedChainOptions, EmbeddedChain, anvilBinaryPath, findFreePort } from './embedded-chain';
export {
  type AnchorDeployment,
  type AnchorDeploymentRecord,
  type EnsureAnchorDeploymentOptions,
  ensureAnchorDeployment,
} from './anchor-deployment';
export {
  type AnchorClientOptions,
  type AnchorHeadRequest,
  type AnchorReceipt,
  type HashInput,
  type ResumedAnchor,
  type TreeHead,
  AnchorClient,
  decodeRevert,
  isAnchoredLog,
} from './anchor-client';
export {
  type AnchorOutbox,
  type OutboxStatus,
  type OutboxTransaction,
  InMemoryAnchorOutbox,
} from './anchor-outbox';

// Offline verification
export {
  type CheckpointVerification,
  type EarlierHead,
  type ProofCheck,
  type ProofVerification,
  type RejectedProof,
  type VerifiedCheckpoint,
  type VerifiedProof,
  type VerifyCheckpointOptions,
  type VerifyProofBundleOptions,
  verifyCheckpoint,
  verifyProofBundle,
} from './proof-bundle-verifier';

// The consent registry contract
export {
  CONSENT_GRANT_TYPES,
  CONSENT_REGISTRY_ARTIFACT,
  CONSENT_REGISTRY_ROLES,
  CONSENT_REVOKE_TYPES,
  type ConsentGrantScope,
  type ConsentRegistryDeployment,
  consentRegistryDomain,
  consentRegistryInterface,
  deployConsentRegistry,
  signConsentGrant,
  signConsentRevoke,
} from './consent-registry-contract';
export {
  type ConsentRegistryClientOptions,
  type EnsureConsentRegistryOptions,
  type RegistryGrant,
  type SignedRegistryCall,
  ConsentRegistryClient,
  decodeRegistryRevert,
  ensureConsentRegistryDeployment,
} from './consent-registry-client';
