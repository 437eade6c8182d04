/**
 * Generates a 4-validator Hyperledger Besu QBFT network for docker/compose.yaml: a node key per
 * validator, the genesis (QBFT extraData naming the validators, zero base fee for free gas,
 * forks up to Cancun as the anchor contract is compiled for), static-nodes.json and the local
 * permissioning file (node and account allowlists). Nothing is downloaded: keys come from
 * ethers' CSPRNG wallet, the extraData is RLP-encoded with ethers.
 *
 *   tsx scripts/besu-network.ts [--out docker/besu/network] [--chain-id 20261128] [--validators 4]
 *                               [--account 0xADDRESS ...]
 *
 * docker/besu/generate-keys.sh runs it. DEV ONLY: the private keys are written in clear.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Wallet, decodeRlp, encodeRlp, getAddress, isHexString, zeroPadValue } from 'ethers';

/** Anvil/Hardhat account #0, the dev anchorer and admin docker/compose.yaml uses (public key!). */
export const DEV_ANCHORER_ADDRESS = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
/** The compose file's `besu` network: validator n listens on 172.16.239.(10 + n):30303. */
export const BESU_SUBNET = '172.16.239.0/24';
export const BESU_P2P_PORT = 30303;

export function validatorIp(n: number): string {
  return `172.16.239.${10 + n}`;
}

export interface BesuValidator {
  /** 1-based, as in the compose service names `besu-1`… */
  readonly n: number;
  /** `0x` hex, as Besu's `key` file holds it. */
  readonly privateKey: string;
  /** Uncompressed secp256k1 public key without the 04 prefix, `0x` hex (Besu's `key.pub`). */
  readonly publicKey: string;
  readonly address: string;
  readonly enode: string;
}

export interface BesuNetwork {
  readonly validators: readonly BesuValidator[];
  /** Relative path -> content. */
  readonly files: Readonly<Record<string, string>>;
}

export interface BesuNetworkOptions {
  readonly chainId?: number;
  readonly validators?: number;
  /** Funded in the genesis and allowed to send transactions (the anchorer, the admin). */
  readonly accounts?: readonly string[];
  /** Keys to use instead of fresh ones (tests). */
  readonly privateKeys?: readonly string[];
}

/**
 * QBFT extraData as Besu writes it for a genesis block:
 * RLP([32-byte vanity, [validator addresses], vote (empty list), round (0 = empty bytes), seals (empty list)]).
 */
export function encodeQbftExtraData(validators: readonly string[]): string {
  return encodeRlp([
    zeroPadValue('0x', 32),
    validators.map((a) => getAddress(a).toLowerCase()),
    [],
    '0x',
    [],
  ]);
}

/** The validator addresses (EIP-55) in a QBFT genesis extraData; throws when it is not one. */
export function decodeQbftExtraData(extraData: string): string[] {
  const decoded = decodeRlp(extraData);
  if (!Array.isArray(decoded) || decoded.length !== 5) {
    throw new Error('QBFT extraData is an RLP list of 5 items (vanity, validators, vote, round, seals)');
  }
  const [vanity, validators, vote, round, seals] = decoded;
  if (typeof vanity !== 'string' || vanity.length !== 66) throw new Error('vanity must be 32 bytes');
  if (!Array.isArray(validators)) throw new Error('validators must be a list');
  if (!Array.isArray(vote) || vote.length !== 0) throw new Error('a genesis has no vote');
  if (round !== '0x') throw new Error('a genesis is round 0');
  if (!Array.isArray(seals) || seals.length !== 0) throw new Error('a genesis has no seals');
  return validators.map((v) => {
    if (typeof v !== 'string' || !isHexString(v, 20)) throw new Error('a validator is a 20-byte address');
    return getAddress(v);
  });
}

/** Builds the network's files in memory. */
export function besuNetwork(options: BesuNetworkOptions = {}): BesuNetwork {
  const count = options.validators ?? 4;
  const chainId = options.chainId ?? 20261128;
  const accounts = (options.accounts ?? [DEV_ANCHORER_ADDRESS]).map((a) => getAddress(a));
  const validators: BesuValidator[] = Array.from({ length: count }, (_, i) => {
    const wallet =
      options.privateKeys?.[i] !== undefined ? new Wallet(options.privateKeys[i]) : Wallet.createRandom();
    const publicKey = `0x${wallet.signingKey.publicKey.slice(4)}`; // drop 0x04
    return {
      n: i + 1,
      privateKey: wallet.privateKey,
      publicKey,
      address: wallet.address,
      enode: `enode://${publicKey.slice(2)}@${validatorIp(i + 1)}:${BESU_P2P_PORT}`,
    };
  });
  const genesis = {
    config: {
      chainId,
      homesteadBlock: 0,
      eip150Block: 0,
      eip155Block: 0,
      eip158Block: 0,
      byzantiumBlock: 0,
      constantinopleBlock: 0,
      petersburgBlock: 0,
      istanbulBlock: 0,
      berlinBlock: 0,
      londonBlock: 0,
      // The anchor contract is compiled for cancun (PUSH0, MCOPY): both forks from block 0.
      shanghaiTime: 0,
      cancunTime: 0,
      // Free gas: base fee 0 here, --min-gas-price=0 on every node.
      zeroBaseFee: true,
      contractSizeLimit: 2147483647,
      qbft: { blockperiodseconds: 2, epochlength: 30000, requesttimeoutseconds: 4 },
    },
    nonce: '0x0',
    timestamp: '0x0',
    gasLimit: '0x1fffffffffffff',
    difficulty: '0x1',
    // QBFT's fixed mixHash ("Istanbul" BFT marker, as Besu's own QBFT genesis files use).
    mixHash: '0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365',
    coinbase: '0x0000000000000000000000000000000000000000',
    alloc: Object.fromEntries(
      accounts.map((a) => [
        a.slice(2).toLowerCase(),
        { balance: '0x200000000000000000000000000000000000000000000000000000000000000' },
      ]),
    ),
    extraData: encodeQbftExtraData(validators.map((v) => v.address)),
  };
  const allowlist = (items: readonly string[]): string => `[${items.map((i) => `"${i}"`).join(',\n  ')}]`;
  const files: Record<string, string> = {
    'genesis.json': `${JSON.stringify(genesis, null, 2)}\n`,
    'static-nodes.json': `${JSON.stringify(
      validators.map((v) => v.enode),
      null,
      2,
    )}\n`,
    'permissions_config.toml': [
      '# Local permissioning (Besu --permissions-*-config-file): only these nodes may peer, and only',
      '# these accounts may send transactions. Generated by scripts/besu-network.ts.',
      `nodes-allowlist=${allowlist(validators.map((v) => v.enode))}`,
      `accounts-allowlist=${allowlist(accounts)}`,
      '',
    ].join('\n'),
  };
  for (const v of validators) {
    files[`validator-${v.n}/key`] = `${v.privateKey}\n`;
    files[`validator-${v.n}/key.pub`] = `${v.publicKey}\n`;
    files[`validator-${v.n}/address`] = `${v.address}\n`;
  }
  return { validators, files };
}

/** Writes the network's files under `dir`. */
export async function writeBesuNetwork(dir: string, network: BesuNetwork): Promise<void> {
  for (const [path, content] of Object.entries(network.files)) {
    const target = join(dir, path);
    await mkdir(resolve(target, '..'), { recursive: true });
    await writeFile(target, content, { mode: path.endsWith('/key') ? 0o600 : 0o644 });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: join(__dirname, '..', 'docker', 'besu', 'network') },
      'chain-id': { type: 'string', default: '20261128' },
      validators: { type: 'string', default: '4' },
      account: { type: 'string', multiple: true },
    },
  });
  const network = besuNetwork({
    chainId: Number(values['chain-id']),
    validators: Number(values.validators),
    ...(values.account === undefined ? {} : { accounts: values.account }),
  });
  await writeBesuNetwork(values.out, network);
  process.stdout.write(
    `wrote a ${network.validators.length}-validator QBFT network to ${values.out}\n` +
      network.validators.map((v) => `  validator-${v.n} ${v.address} ${v.enode}\n`).join('') +
      `extraData ${(JSON.parse(network.files['genesis.json']) as { extraData: string }).extraData}\n`,
  );
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`besu-network: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
