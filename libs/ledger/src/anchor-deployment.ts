import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Provider, type Signer, concat, getAddress } from 'ethers';
import { ANCHOR_CONTRACT_ARTIFACT, anchorContractInterface } from './anchor-contract';
import { LedgerError, systemErrorCode, toLedgerError } from './ledger-error';
import { sendRawTransaction } from './transaction-sender';

/** What the deployment file remembers about the anchor contract. */
export interface AnchorDeploymentRecord {
  /** Decimal chain id. */
  readonly chainId: string;
  /** EIP-55 address of the contract. */
  readonly address: string;
  readonly txHash: string;
  readonly blockNumber: number;
}

/** The anchor contract in use, and whether this call deployed it. */
export interface AnchorDeployment extends AnchorDeploymentRecord {
  /** True when this call deployed the contract, false when it reused the remembered one. */
  readonly deployed: boolean;
  /** Gas used by the deployment (only when `deployed`). */
  readonly gasUsed: number | null;
}

export interface EnsureAnchorDeploymentOptions {
  readonly provider: Provider;
  /** Pays for the deployment. */
  readonly signer: Signer;
  /** JSON file remembering the deployment, e.g. `<dataDir>/chain/deployment-31337.json`. */
  readonly deploymentFile: string;
  /** Receives DEFAULT_ADMIN_ROLE, PAUSER_ROLE and ANCHORER_ROLE. */
  readonly admin: string;
  /** Receives ANCHORER_ROLE. */
  readonly anchorer: string;
  readonly receiptTimeoutMs?: number;
  readonly pollIntervalMs?: number;
}

/**
 * Deployment gas limit: the measured deployment uses about 0.64M gas; a fixed limit saves the
 * estimateGas round trip and unused gas is not charged.
 */
const DEPLOY_GAS_LIMIT = 2_000_000n;

/**
 * Returns the FhirTrailAnchor deployment remembered in `deploymentFile` when it is on this chain
 * and its address holds code; otherwise deploys the contract (constructor `(admin, anchorer)`) and
 * writes the file. Throws `DEPLOYMENT_MISMATCH` when the remembered address holds different code
 * (an older build of the contract, or something else): silently deploying a second anchor contract
 * would split the checkpoint history, so that is left to a person.
 * Not safe against concurrent callers on its own: callers across processes hold a file lock.
 */
export async function ensureAnchorDeployment(
  options: EnsureAnchorDeploymentOptions,
): Promise<AnchorDeployment> {
  const { provider, signer } = options;
  let chainId: string;
  try {
    chainId = (await provider.getNetwork()).chainId.toString();
  } catch (error) {
    throw toLedgerError(error, 'reading the chain id');
  }
  const remembered = await readDeploymentRecord(options.deploymentFile);
  if (remembered?.chainId === chainId) {
    let code: string;
    try {
      code = await provider.getCode(remembered.address);
    } catch (error) {
      throw toLedgerError(error, 'reading the anchor contract code');
    }
    if (code !== '0x') {
      if (code.toLowerCase() !== ANCHOR_CONTRACT_ARTIFACT.deployedBytecode.toLowerCase()) {
        throw new LedgerError(
          'DEPLOYMENT_MISMATCH',
          `${remembered.address} (from ${options.deploymentFile}) holds code that is not this build of FhirTrailAnchor; ` +
            'remove the file to deploy a new contract, or configure the address to use',
          { details: { address: remembered.address, chainId } },
        );
      }
      return { ...remembered, deployed: false, gasUsed: null };
    }
  }

  const data = concat([
    ANCHOR_CONTRACT_ARTIFACT.bytecode,
    anchorContractInterface.encodeDeploy([getAddress(options.admin), getAddress(options.anchorer)]),
  ]);
  const receipt = await sendRawTransaction(
    { provider, signer, to: null, data, gasLimit: DEPLOY_GAS_LIMIT },
    {
      pollIntervalMs: options.pollIntervalMs ?? 50,
      timeoutMs: options.receiptTimeoutMs ?? 120_000,
      confirmations: 1,
    },
  );
  if (receipt.status !== 1 || receipt.contractAddress === null) {
    throw new LedgerError('UNEXPECTED_CHAIN_DATA', `the deployment transaction ${receipt.hash} failed`, {
      details: { txHash: receipt.hash },
    });
  }
  const record: AnchorDeploymentRecord = {
    chainId,
    address: getAddress(receipt.contractAddress),
    txHash: receipt.hash,
    blockNumber: receipt.blockNumber,
  };
  await mkdir(dirname(options.deploymentFile), { recursive: true });
  const temporary = `${options.deploymentFile}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`);
  await rename(temporary, options.deploymentFile);
  return { ...record, deployed: true, gasUsed: Number(receipt.gasUsed) };
}

/** Reads a deployment file: undefined when there is none; a file we cannot read is an error, not a reason to redeploy. */
async function readDeploymentRecord(file: string): Promise<AnchorDeploymentRecord | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') {
      return undefined;
    }
    throw new LedgerError('DEPLOYMENT_MISMATCH', `cannot read the deployment file ${file}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new LedgerError('DEPLOYMENT_MISMATCH', `the deployment file ${file} is not JSON`, { cause: error });
  }
  const record = (typeof value === 'object' && value !== null ? value : {}) as Partial<
    Record<keyof AnchorDeploymentRecord, unknown>
  >;
  if (
    typeof record.chainId !== 'string' ||
    typeof record.address !== 'string' ||
    !/^0x[0-9a-fA-F]{40}$/.test(record.address) ||
    typeof record.txHash !== 'string' ||
    typeof record.blockNumber !== 'number'
  ) {
    throw new LedgerError(
      'DEPLOYMENT_MISMATCH',
      `the deployment file ${file} lacks chainId, address, txHash or blockNumber`,
    );
  }
  return {
    chainId: record.chainId,
    address: getAddress(record.address.toLowerCase()),
    txHash: record.txHash,
    blockNumber: record.blockNumber,
  };
}
