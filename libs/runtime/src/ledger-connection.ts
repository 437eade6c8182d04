import { join } from 'node:path';
import type { AppConfig } from '@fhir-trail/config';
import {
  AnchorClient,
  type AnchorOutbox,
  ConsentRegistryClient,
  createProvider,
  DEV_ACCOUNT_PRIVATE_KEY,
  EmbeddedChain,
  ensureAnchorDeployment,
  ensureConsentRegistryDeployment,
} from '@fhir-trail/ledger';
import { type JsonRpcProvider, Wallet } from 'ethers';
import { withFileLock } from './file-lock';

/** What both apps need of the chain: where it is, which contract, and (worker) a client to anchor. */
export interface LedgerConnection {
  readonly provider: JsonRpcProvider;
  readonly rpcUrl: string;
  readonly chainId: string;
  readonly contractAddress: string;
  readonly embedded: boolean;
  readonly anchorClient: AnchorClient;
  /** The consent registry's registrar client; undefined when no registrar key is configured. */
  readonly consentRegistry?: ConsentRegistryClient;
  close(): Promise<void>;
}

/**
 * Connects to the configured EVM network, or — when LEDGER_RPC_URL is unset — starts (or attaches
 * to) the embedded dev chain under DATA_DIR, and makes sure the anchor contract is deployed once.
 * Pass the PostgreSQL `outbox` (the apps do) so signed anchor transactions survive a restart.
 */
export async function openLedgerConnection(
  config: AppConfig,
  options: { readonly outbox?: AnchorOutbox } = {},
): Promise<LedgerConnection> {
  const chain = config.ledger.rpcUrl
    ? undefined
    : await EmbeddedChain.start({ dataDir: config.dataDir, port: config.ledger.embeddedPort });
  const embedded = chain !== undefined;
  const rpcUrl = chain?.rpcUrl ?? config.ledger.rpcUrl ?? '';
  const provider = createProvider(rpcUrl);
  try {
    const network = await provider.getNetwork();
    const chainId = network.chainId.toString();
    const signer = new Wallet(config.ledger.privateKey ?? DEV_ACCOUNT_PRIVATE_KEY, provider);
    let contractAddress = config.ledger.contractAddress;
    if (!contractAddress) {
      const deploymentFile = join(config.dataDir, 'chain', `deployment-${chainId}.json`);
      const deployment = await withFileLock(`${deploymentFile}.lock`, () =>
        ensureAnchorDeployment({
          provider,
          signer,
          deploymentFile,
          admin: signer.address,
          anchorer: signer.address,
        }),
      );
      contractAddress = deployment.address;
    }
    const anchorClient = new AnchorClient({
      provider,
      signer,
      contractAddress,
      outbox: options.outbox,
      finalityDepth: config.ledger.finalityDepth,
      receiptTimeoutMs: config.ledger.receiptTimeoutMs,
      resendAfterMs: config.ledger.resendAfterMs,
      replaceAfterMs: config.ledger.replaceAfterMs,
    });
    const consentRegistry = await openConsentRegistry(config, provider, signer, chainId);
    return {
      provider,
      rpcUrl,
      chainId,
      contractAddress,
      embedded,
      anchorClient,
      consentRegistry,
      close: async () => {
        provider.destroy();
        await chain?.stop();
      },
    };
  } catch (error) {
    provider.destroy();
    await chain?.stop();
    throw new Error(`could not connect to the ledger at ${embedded ? 'the embedded chain' : rpcUrl}`, {
      cause: error,
    });
  }
}

/**
 * The consent registry client, signing with its own registrar key (nonces are read as `pending`,
 * so the registrar must not share the anchorer's key). Deployed once, like the anchor contract.
 */
async function openConsentRegistry(
  config: AppConfig,
  provider: JsonRpcProvider,
  admin: Wallet,
  chainId: string,
): Promise<ConsentRegistryClient | undefined> {
  const key = config.ledger.consentPrivateKey;
  if (!key) return undefined;
  const registrar = new Wallet(key, provider);
  let address = config.ledger.consentRegistryAddress;
  if (!address) {
    const deploymentFile = join(config.dataDir, 'chain', `consent-registry-${chainId}.json`);
    address = await withFileLock(`${deploymentFile}.lock`, () =>
      ensureConsentRegistryDeployment({
        provider,
        deployer: admin,
        deploymentFile,
        admin: admin.address,
        registrar: registrar.address,
        // The registrar also relays grants and revocations patients sign (EIP-712).
        relayer: registrar.address,
      }),
    );
  }
  return new ConsentRegistryClient({
    provider,
    signer: registrar,
    contractAddress: address,
    // The anchor's finality rule: its own block plus LEDGER_FINALITY_DEPTH on top.
    confirmations: config.ledger.finalityDepth + 1,
  });
}
