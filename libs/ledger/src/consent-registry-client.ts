import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  type JsonRpcProvider,
  type Signer,
  type TypedDataDomain,
  concat,
  getAddress,
  id,
  isError,
} from 'ethers';
import {
  CONSENT_REGISTRY_ARTIFACT,
  consentRegistryDomain,
  consentRegistryInterface,
  type ConsentGrantScope,
} from './consent-registry-contract';
import { LedgerError, toLedgerError } from './ledger-error';
import { sendRawTransaction } from './transaction-sender';

/** A pair's grant as the registry holds it (times in unix seconds, 0 = unbounded). */
export interface RegistryGrant {
  readonly active: boolean;
  readonly purposes: bigint;
  readonly dataClasses: bigint;
  readonly validFrom: number;
  readonly validUntil: number;
}

/** A grant or revocation signed by a patient or delegate (EIP-712), to relay. */
export type SignedRegistryCall =
  | {
      readonly kind: 'grant';
      readonly scope: ConsentGrantScope;
      readonly nonce: bigint;
      readonly deadline: bigint;
      readonly signature: string;
    }
  | {
      readonly kind: 'revoke';
      readonly patientKey: string;
      readonly recipientKey: string;
      readonly nonce: bigint;
      readonly deadline: bigint;
      readonly signature: string;
    };

export interface ConsentRegistryClientOptions {
  readonly provider: JsonRpcProvider;
  /** Holds REGISTRAR_ROLE. Use a key no other process signs with: nonces are read as `pending`. */
  readonly signer: Signer;
  readonly contractAddress: string;
  /** Blocks on top of (and including) a block before its state counts as final; 1 on an instant-finality chain. */
  readonly confirmations?: number;
  readonly pollIntervalMs?: number;
  readonly receiptTimeoutMs?: number;
}

/** Sends of one transaction when another process took its nonce first. */
const NONCE_RACE_ATTEMPTS = 3;

/** A broadcast refused because the nonce was already used (or is pending) by another transaction of the key. */
function isNonceRace(error: unknown): boolean {
  if (error instanceof LedgerError && error.code === 'NONCE_CONFLICT') return true;
  const cause = error instanceof LedgerError ? (error.cause ?? error) : error;
  if (isError(cause, 'NONCE_EXPIRED') || isError(cause, 'REPLACEMENT_UNDERPRICED')) return true;
  return (
    cause instanceof Error &&
    /nonce too low|already known|replacement transaction underpriced/i.test(cause.message)
  );
}

/** A grant is at most three new storage slots plus an event; a fixed limit skips estimateGas. */
const WRITE_GAS_LIMIT = 250_000n;

/**
 * The bridge's registrar side of FhirTrailConsentRegistry: brings a pair's grant to a wanted state
 * (grant or revoke, simulated first so a refusal carries its Solidity error) and reads grants at a
 * finalised block. Calls are serialised: one registrar key, one transaction at a time.
 */
export class ConsentRegistryClient {
  readonly contractAddress: string;
  private readonly confirmations: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: ConsentRegistryClientOptions) {
    this.contractAddress = getAddress(options.contractAddress);
    this.confirmations = options.confirmations ?? 1;
  }

  /** The newest block whose state is final under the configured confirmation depth. */
  async finalisedBlock(): Promise<number> {
    try {
      const latest = await this.options.provider.getBlockNumber();
      return Math.max(0, latest - (this.confirmations - 1));
    } catch (error) {
      throw toLedgerError(error, 'reading the block number');
    }
  }

  /** The pair's grant at `blockTag` (default: the finalised block). */
  async readGrant(patientKey: string, recipientKey: string, blockTag?: number): Promise<RegistryGrant> {
    const block = blockTag ?? (await this.finalisedBlock());
    try {
      const data = await this.options.provider.call({
        to: this.contractAddress,
        data: consentRegistryInterface.encodeFunctionData('grantOf', [patientKey, recipientKey]),
        blockTag: block,
      });
      const [g] = consentRegistryInterface.decodeFunctionResult('grantOf', data) as unknown as [
        { purposes: bigint; dataClasses: bigint; validFrom: bigint; validUntil: bigint; active: boolean },
      ];
      return {
        active: g.active,
        purposes: g.purposes,
        dataClasses: g.dataClasses,
        validFrom: Number(g.validFrom),
        validUntil: Number(g.validUntil),
      };
    } catch (error) {
      throw toLedgerError(error, 'reading a consent grant');
    }
  }

  /**
   * Makes the chain hold `wanted` for the pair: `grant` when active (replacing any grant), `revoke`
   * when inactive and the chain still has an active grant. Returns the transaction hash, or null
   * when the chain already matched. Waits for the configured confirmations.
   */
  apply(patientKey: string, recipientKey: string, wanted: RegistryGrant): Promise<string | null> {
    const run = this.queue.then(() => this.applyNow(patientKey, recipientKey, wanted));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyNow(
    patientKey: string,
    recipientKey: string,
    wanted: RegistryGrant,
  ): Promise<string | null> {
    const current = await this.readGrant(
      patientKey,
      recipientKey,
      await this.options.provider.getBlockNumber(),
    );
    if (sameGrant(current, wanted)) return null;
    if (!wanted.active && !current.active) return null;
    const data = wanted.active
      ? consentRegistryInterface.encodeFunctionData('grant', [
          {
            patientKey,
            recipientKey,
            purposes: wanted.purposes,
            dataClasses: wanted.dataClasses,
            validFrom: BigInt(wanted.validFrom),
            validUntil: BigInt(wanted.validUntil),
          } satisfies ConsentGrantScope,
        ])
      : consentRegistryInterface.encodeFunctionData('revoke', [patientKey, recipientKey]);
    return this.simulateAndSend(data);
  }

  /** The registry's EIP-712 domain (what a patient app signs against). */
  async domain(): Promise<TypedDataDomain> {
    try {
      const { chainId } = await this.options.provider.getNetwork();
      return consentRegistryDomain(chainId, this.contractAddress);
    } catch (error) {
      throw toLedgerError(error, 'reading the chain id');
    }
  }

  /** The nonce the next signed grant or revocation of this patient must carry (latest block). */
  async nonceOf(patientKey: string): Promise<bigint> {
    const [nonce] = await this.view('nonces', [patientKey]);
    return nonce as bigint;
  }

  /** Who `signer` is for the patient: their bound signer, one of their delegates, or neither (latest block). */
  async signerRole(patientKey: string, signer: string): Promise<'patient' | 'delegate' | undefined> {
    const [[bound], [delegate]] = await Promise.all([
      this.view('patientSigner', [patientKey]),
      this.view('isDelegate', [patientKey, signer]),
    ]);
    if ((bound as string).toLowerCase() === signer.toLowerCase()) return 'patient';
    return delegate === true ? 'delegate' : undefined;
  }

  /** Binds the address that signs for a patient (registrar only); waits for the configured confirmations. */
  bindPatientSigner(patientKey: string, signer: string): Promise<string> {
    return this.serialised(() =>
      this.simulateAndSend(
        consentRegistryInterface.encodeFunctionData('bindPatientSigner', [patientKey, getAddress(signer)]),
      ),
    );
  }

  /**
   * Relays a grant or revocation signed by the patient or a delegate (`grantWithSignature` /
   * `revokeWithSignature`; the signing key needs RELAYER_ROLE). Simulated first, so a refusal is a
   * `CONSENT_REGISTRY_REJECTED` LedgerError whose `details.revert` names the Solidity error
   * (`SignatureExpired`, `InvalidNonce`, `UnauthorizedSigner`...). Waits for the configured
   * confirmations; returns the transaction hash.
   */
  relaySigned(signed: SignedRegistryCall): Promise<string> {
    const data =
      signed.kind === 'grant'
        ? consentRegistryInterface.encodeFunctionData('grantWithSignature', [
            signed.scope,
            signed.nonce,
            signed.deadline,
            signed.signature,
          ])
        : consentRegistryInterface.encodeFunctionData('revokeWithSignature', [
            signed.patientKey,
            signed.recipientKey,
            signed.nonce,
            signed.deadline,
            signed.signature,
          ]);
    return this.serialised(() => this.simulateAndSend(data));
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async view(name: string, args: readonly unknown[]): Promise<readonly unknown[]> {
    try {
      const data = await this.options.provider.call({
        to: this.contractAddress,
        data: consentRegistryInterface.encodeFunctionData(name, args),
        blockTag: 'latest',
      });
      return consentRegistryInterface.decodeFunctionResult(name, data);
    } catch (error) {
      throw toLedgerError(error, `reading ${name} from the consent registry`);
    }
  }

  private async simulateAndSend(data: string): Promise<string> {
    const from = await this.options.signer.getAddress();
    try {
      await this.options.provider.call({ to: this.contractAddress, from, data });
    } catch (error) {
      const revert = decodeRegistryRevert(error);
      if (revert) {
        throw new LedgerError('CONSENT_REGISTRY_REJECTED', `the consent registry refused: ${revert}`, {
          cause: error,
          details: { revert },
        });
      }
      throw toLedgerError(error, 'simulating the consent registry call');
    }
    // The bridge (relaying signed grants) and the worker (mirroring consents) sign with the same
    // registrar key: a transaction that lost the race for a nonce never entered the pool, so it is
    // signed again with the next one.
    let receipt: Awaited<ReturnType<typeof sendRawTransaction>> | undefined;
    for (let attempt = 1; receipt === undefined; attempt++) {
      try {
        receipt = await sendRawTransaction(
          {
            provider: this.options.provider,
            signer: this.options.signer,
            to: this.contractAddress,
            data,
            gasLimit: WRITE_GAS_LIMIT,
          },
          {
            pollIntervalMs: this.options.pollIntervalMs ?? 50,
            timeoutMs: this.options.receiptTimeoutMs ?? 120_000,
            confirmations: this.confirmations,
          },
        );
      } catch (error) {
        if (attempt >= NONCE_RACE_ATTEMPTS || !isNonceRace(error)) throw error;
      }
    }
    if (receipt.status !== 1) {
      throw new LedgerError(
        'CONSENT_REGISTRY_REJECTED',
        `the consent registry transaction ${receipt.hash} reverted`,
        {
          details: { txHash: receipt.hash },
        },
      );
    }
    return receipt.hash;
  }
}

function sameGrant(a: RegistryGrant, b: RegistryGrant): boolean {
  if (!a.active || !b.active) return a.active === b.active;
  return (
    a.purposes === b.purposes &&
    a.dataClasses === b.dataClasses &&
    a.validFrom === b.validFrom &&
    a.validUntil === b.validUntil
  );
}

/** `Name(args)` of a registry custom error behind a failed call, if there is one. */
export function decodeRegistryRevert(error: unknown): string | undefined {
  if (!isError(error, 'CALL_EXCEPTION') || typeof error.data !== 'string' || error.data.length < 10)
    return undefined;
  const parsed = consentRegistryInterface.parseError(error.data);
  return parsed ? `${parsed.name}(${parsed.args.map((a: unknown) => String(a)).join(', ')})` : undefined;
}

export interface EnsureConsentRegistryOptions {
  readonly provider: JsonRpcProvider;
  readonly deployer: Signer;
  /** Remembers the deployment (chain id, address) between runs. */
  readonly deploymentFile: string;
  readonly admin: string;
  readonly registrar: string;
  readonly relayer: string;
}

/**
 * The registry remembered in `deploymentFile` when it is still on this chain with this build's
 * code; otherwise deploys one and remembers it. (The caller holds a file lock: bridge and worker
 * start together.)
 */
export async function ensureConsentRegistryDeployment(
  options: EnsureConsentRegistryOptions,
): Promise<string> {
  const chainId = (await options.provider.getNetwork()).chainId.toString();
  const remembered = await readRemembered(options.deploymentFile);
  if (remembered?.chainId === chainId) {
    const code = await options.provider.getCode(remembered.address);
    if (code !== '0x') {
      // EIP712 keeps its domain in immutables, so the runtime code differs from the artifact's
      // per deployment; the typehash constant identifies the contract instead.
      if (await hasGrantTypehash(options.provider, remembered.address)) return remembered.address;
      throw new LedgerError(
        'DEPLOYMENT_MISMATCH',
        `${remembered.address} holds code that is not FhirTrailConsentRegistry`,
        { details: { address: remembered.address, chainId } },
      );
    }
  }
  const data = concat([
    CONSENT_REGISTRY_ARTIFACT.bytecode,
    consentRegistryInterface.encodeDeploy([
      getAddress(options.admin),
      getAddress(options.registrar),
      getAddress(options.relayer),
    ]),
  ]);
  const receipt = await sendRawTransaction(
    { provider: options.provider, signer: options.deployer, to: null, data, gasLimit: 3_000_000n },
    { pollIntervalMs: 50, timeoutMs: 120_000, confirmations: 1 },
  );
  if (receipt.status !== 1 || receipt.contractAddress === null) {
    throw new LedgerError('UNEXPECTED_CHAIN_DATA', `the consent registry deployment ${receipt.hash} failed`);
  }
  const address = getAddress(receipt.contractAddress);
  await mkdir(dirname(options.deploymentFile), { recursive: true });
  const temporary = `${options.deploymentFile}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify({ chainId, address, txHash: receipt.hash }, null, 2)}\n`);
  await rename(temporary, options.deploymentFile);
  return address;
}

async function readRemembered(file: string): Promise<{ chainId: string; address: string } | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const value = JSON.parse(text) as { chainId?: unknown; address?: unknown };
  return typeof value.chainId === 'string' && typeof value.address === 'string'
    ? { chainId: value.chainId, address: value.address }
    : undefined;
}

const GRANT_TYPEHASH = id(
  'ConsentGrant(bytes32 patientKey,bytes32 recipientKey,uint256 purposes,uint256 dataClasses,uint64 validFrom,uint64 validUntil,uint256 nonce,uint256 deadline)',
);

async function hasGrantTypehash(provider: JsonRpcProvider, address: string): Promise<boolean> {
  try {
    const data = await provider.call({
      to: address,
      data: consentRegistryInterface.encodeFunctionData('GRANT_TYPEHASH'),
    });
    return consentRegistryInterface.decodeFunctionResult('GRANT_TYPEHASH', data)[0] === GRANT_TYPEHASH;
  } catch {
    return false;
  }
}
