import { Interface, id, ZeroHash } from 'ethers';
import artifactJson from '../contracts/artifacts/FhirTrailAnchor.json';
import type { ContractArtifact } from './contract-compiler';

/**
 * The compiled FhirTrailAnchor contract (ABI and bytecode), loaded from the committed artifact
 * that `scripts/build-contracts.ts` writes. Nothing is compiled at run time.
 */
export const ANCHOR_CONTRACT_ARTIFACT: ContractArtifact = artifactJson;

/** ethers `Interface` of FhirTrailAnchor: encodes calls, decodes logs and custom errors. */
export const anchorContractInterface = new Interface(ANCHOR_CONTRACT_ARTIFACT.abi);

/** AccessControl role ids of FhirTrailAnchor. */
export const ANCHOR_ROLES = {
  DEFAULT_ADMIN_ROLE: ZeroHash,
  ANCHORER_ROLE: id('ANCHORER_ROLE'),
  PAUSER_ROLE: id('PAUSER_ROLE'),
} as const;

/** topic0 of `Anchored(uint64 indexed treeSize, bytes32 indexed root, uint64 previousSize, bytes32 manifestHash)`. */
export const ANCHORED_EVENT_TOPIC =
  anchorContractInterface.getEvent('Anchored')?.topicHash ?? missingAbiEntry('Anchored');

function missingAbiEntry(name: string): never {
  throw new Error(
    `the FhirTrailAnchor artifact has no ${name} entry: rebuild it with scripts/build-contracts.ts`,
  );
}
