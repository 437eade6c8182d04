import { join } from 'node:path';
import type { AppConfig } from '@fhir-trail/config';
import {
  AnchorClient,
  type AnchorOutbox,
  createProvider,
  DEV_ACCOUNT_PRIVATE_KEY,
  EmbeddedChain,
  ensureAnchorDeployment,
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
    return {
      provider,
      rpcUrl,
      chainId,
      contractAddress,
      embedded,
      anchorClient,
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
