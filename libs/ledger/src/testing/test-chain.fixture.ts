/**
 * Test fixture (not exported by the library): a real anvil started by EmbeddedChain in a fresh temp
 * data dir on a free port, with three funded dev accounts in distinct roles.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Contract,
  type ContractTransactionReceipt,
  type ContractTransactionResponse,
  type JsonRpcProvider,
  Wallet,
} from 'ethers';
import { DEV_ACCOUNT_PRIVATE_KEY, createProvider } from '../chain-provider';
import { EmbeddedChain, findFreePort } from '../embedded-chain';

/** anvil dev accounts #1 and #2 (public "test … junk" mnemonic). */
export const DEV_ACCOUNT_1_PRIVATE_KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';
export const DEV_ACCOUNT_2_PRIVATE_KEY = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a';

export interface TestChain {
  readonly dataDir: string;
  readonly chain: EmbeddedChain;
  readonly provider: JsonRpcProvider;
  /** Account #0: admin, pauser (and anchorer) of contracts the tests deploy. */
  readonly admin: Wallet;
  /** Account #1: the anchorer. */
  readonly anchorer: Wallet;
  /** Account #2: holds no role. */
  readonly outsider: Wallet;
  /** Stops anvil, destroys the provider and deletes the data dir. */
  close(): Promise<void>;
}

export async function startTestChain(): Promise<TestChain> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fhir-trail-ledger-'));
  const chain = await EmbeddedChain.start({ dataDir, port: await findFreePort() });
  const provider = createProvider(chain.rpcUrl);
  return {
    dataDir,
    chain,
    provider,
    admin: new Wallet(DEV_ACCOUNT_PRIVATE_KEY, provider),
    anchorer: new Wallet(DEV_ACCOUNT_1_PRIVATE_KEY, provider),
    outsider: new Wallet(DEV_ACCOUNT_2_PRIVATE_KEY, provider),
    close: async () => {
      provider.destroy();
      await chain.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A deterministic 32-byte test hash (`0x` hex) from a label. */
export function testHash(label: string): string {
  return `0x${createHash('sha256').update(label).digest('hex')}`;
}

/** Sends a contract transaction and waits for it (ethers' Contract methods are typed `any`). */
export async function send(
  contract: Contract,
  method: string,
  ...args: unknown[]
): Promise<ContractTransactionReceipt> {
  const tx = (await contract.getFunction(method)(...args)) as ContractTransactionResponse;
  const receipt = await tx.wait();
  if (receipt === null) throw new Error(`${method}: no receipt`);
  return receipt;
}
