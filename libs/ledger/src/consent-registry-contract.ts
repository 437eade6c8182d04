import {
  ContractFactory,
  Interface,
  ZeroHash,
  getAddress,
  id,
  type Signer,
  type TypedDataDomain,
  type TypedDataField,
} from 'ethers';
import artifactJson from '../contracts/artifacts/FhirTrailConsentRegistry.json';
import type { ContractArtifact } from './contract-compiler';
import { LedgerError, toLedgerError } from './ledger-error';

/**
 * The compiled FhirTrailConsentRegistry contract (ABI and bytecode), loaded from the committed
 * artifact that `scripts/build-contracts.ts` writes. Nothing is compiled at run time.
 */
export const CONSENT_REGISTRY_ARTIFACT: ContractArtifact = artifactJson;

/** ethers `Interface` of FhirTrailConsentRegistry: encodes calls, decodes logs and custom errors. */
export const consentRegistryInterface = new Interface(CONSENT_REGISTRY_ARTIFACT.abi);

/** AccessControl role ids of FhirTrailConsentRegistry. */
export const CONSENT_REGISTRY_ROLES = {
  DEFAULT_ADMIN_ROLE: ZeroHash,
  /** The bridge: mirrors grants and revocations read from FHIR Consent resources, binds patient signers. */
  REGISTRAR_ROLE: id('REGISTRAR_ROLE'),
  /** Submits grants and revocations signed by a patient or a delegate (EIP-712). */
  RELAYER_ROLE: id('RELAYER_ROLE'),
  PAUSER_ROLE: id('PAUSER_ROLE'),
} as const;

/**
 * The scope of one grant, as the contract's `GrantScope` struct. Keys are pseudonymous 32-byte
 * values (`0x` hex), never identifiers; the bitmaps are numbered off chain (purposes of use and
 * FHIR resource types); times are unix seconds, `validUntil` 0 = open-ended.
 */
export interface ConsentGrantScope {
  readonly patientKey: string;
  readonly recipientKey: string;
  readonly purposes: bigint;
  readonly dataClasses: bigint;
  readonly validFrom: bigint;
  readonly validUntil: bigint;
}

/** EIP-712 types of a signed grant (primary type `ConsentGrant`). */
export const CONSENT_GRANT_TYPES: Record<string, TypedDataField[]> = {
  ConsentGrant: [
    { name: 'patientKey', type: 'bytes32' },
    { name: 'recipientKey', type: 'bytes32' },
    { name: 'purposes', type: 'uint256' },
    { name: 'dataClasses', type: 'uint256' },
    { name: 'validFrom', type: 'uint64' },
    { name: 'validUntil', type: 'uint64' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
};

/** EIP-712 types of a signed revocation (primary type `ConsentRevoke`). */
export const CONSENT_REVOKE_TYPES: Record<string, TypedDataField[]> = {
  ConsentRevoke: [
    { name: 'patientKey', type: 'bytes32' },
    { name: 'recipientKey', type: 'bytes32' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
};

/** The EIP-712 domain of a deployed registry. */
export function consentRegistryDomain(chainId: bigint, address: string): TypedDataDomain {
  return { name: 'FhirTrailConsentRegistry', version: '1', chainId, verifyingContract: getAddress(address) };
}

/** A patient's (or delegate's) EIP-712 signature over a grant, for `grantWithSignature`. */
export function signConsentGrant(
  signer: Signer,
  domain: TypedDataDomain,
  scope: ConsentGrantScope,
  nonce: bigint,
  deadline: bigint,
): Promise<string> {
  return signer.signTypedData(domain, CONSENT_GRANT_TYPES, { ...scope, nonce, deadline });
}

/** A patient's (or delegate's) EIP-712 signature over a revocation, for `revokeWithSignature`. */
export function signConsentRevoke(
  signer: Signer,
  domain: TypedDataDomain,
  pair: { readonly patientKey: string; readonly recipientKey: string },
  nonce: bigint,
  deadline: bigint,
): Promise<string> {
  return signer.signTypedData(domain, CONSENT_REVOKE_TYPES, { ...pair, nonce, deadline });
}

export interface ConsentRegistryDeployment {
  readonly address: string;
  readonly txHash: string;
  readonly blockNumber: number;
  readonly gasUsed: number;
}

/** Deploys a FhirTrailConsentRegistry with the given role holders and waits for its receipt. */
export async function deployConsentRegistry(
  deployer: Signer,
  roles: { readonly admin: string; readonly registrar: string; readonly relayer: string },
): Promise<ConsentRegistryDeployment> {
  const factory = new ContractFactory(
    CONSENT_REGISTRY_ARTIFACT.abi,
    CONSENT_REGISTRY_ARTIFACT.bytecode,
    deployer,
  );
  try {
    const contract = await factory.deploy(
      getAddress(roles.admin),
      getAddress(roles.registrar),
      getAddress(roles.relayer),
    );
    const receipt = await contract.deploymentTransaction()?.wait();
    if (!receipt || receipt.status !== 1 || receipt.contractAddress === null) {
      throw new LedgerError('UNEXPECTED_CHAIN_DATA', 'the consent registry deployment failed');
    }
    return {
      address: getAddress(receipt.contractAddress),
      txHash: receipt.hash,
      blockNumber: receipt.blockNumber,
      gasUsed: Number(receipt.gasUsed),
    };
  } catch (error) {
    throw toLedgerError(error, 'deploying the consent registry');
  }
}
