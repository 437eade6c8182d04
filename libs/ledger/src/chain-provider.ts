import { FetchRequest, JsonRpcProvider, Network } from 'ethers';
import { LedgerError } from './ledger-error';

/**
 * Private key of anvil's (and Hardhat's) dev account #0, from the public "test … junk" mnemonic.
 * For the embedded dev chain only: it signs and administers there, and is worthless anywhere else.
 */
export const DEV_ACCOUNT_PRIVATE_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

/** Chain id of the embedded dev chain. */
export const EMBEDDED_CHAIN_ID = 31337;

/** Tuning for {@link createProvider}. */
export interface ProviderOptions {
  /** Known chain id: skips the first `eth_chainId` read (and ethers' retry loop if the node is down). */
  readonly chainId?: bigint | number;
  /** How often ethers polls for new blocks/events. ethers' 4 s default is far too slow for automine. */
  readonly pollingIntervalMs?: number;
  /** Per-request HTTP timeout. */
  readonly requestTimeoutMs?: number;
}

const DEFAULT_POLLING_INTERVAL_MS = 50;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * A JSON-RPC provider set up for anchoring (see toolchain-spike.md §5):
 * - `cacheTimeout: -1`: ethers otherwise caches identical calls for 250 ms, which returns stale
 *   nonces and block numbers on an automining chain;
 * - `staticNetwork`: the chain id is read once (or taken from `options.chainId`) and never again;
 * - `batchMaxCount: 1`: requests go out at once instead of after a 10 ms batching stall;
 * - a short polling interval and a bounded request timeout.
 */
export function createProvider(rpcUrl: string, options: ProviderOptions = {}): JsonRpcProvider {
  const request = new FetchRequest(rpcUrl);
  request.timeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const network = options.chainId === undefined ? undefined : Network.from(BigInt(options.chainId));
  return new JsonRpcProvider(request, network, {
    staticNetwork: network ?? true,
    cacheTimeout: -1,
    batchMaxCount: 1,
    pollingInterval: options.pollingIntervalMs ?? DEFAULT_POLLING_INTERVAL_MS,
  });
}

/**
 * Reads `eth_chainId` with one plain HTTP request, failing fast (no ethers retry loop): the way to
 * check an endpoint before building a provider for it. Throws `CHAIN_UNAVAILABLE`.
 */
export async function readChainId(rpcUrl: string, timeoutMs = 5_000): Promise<bigint> {
  const result = await jsonRpcCall(rpcUrl, 'eth_chainId', [], timeoutMs);
  if (typeof result !== 'string' || !/^0x[0-9a-f]+$/i.test(result)) {
    throw new LedgerError(
      'CHAIN_UNAVAILABLE',
      `${endpointName(rpcUrl)} answered eth_chainId with something that is not a quantity`,
    );
  }
  return BigInt(result);
}

/** One JSON-RPC call over fetch. Throws `CHAIN_UNAVAILABLE` on any transport or protocol failure. */
export async function jsonRpcCall(
  rpcUrl: string,
  method: string,
  params: readonly unknown[],
  timeoutMs: number,
): Promise<unknown> {
  let body: unknown;
  try {
    const response = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    body = await response.json();
  } catch (error) {
    throw new LedgerError(
      'CHAIN_UNAVAILABLE',
      `no JSON-RPC answer from ${endpointName(rpcUrl)} to ${method}`,
      { cause: error },
    );
  }
  if (typeof body !== 'object' || body === null || !('result' in body)) {
    throw new LedgerError('CHAIN_UNAVAILABLE', `${endpointName(rpcUrl)} answered ${method} without a result`);
  }
  return body.result;
}

/**
 * An endpoint's origin, for messages: RPC URLs often carry an API key in the path or query, which
 * must not end up in logs.
 */
export function endpointName(rpcUrl: string): string {
  try {
    return new URL(rpcUrl).origin;
  } catch {
    return 'the JSON-RPC endpoint';
  }
}
