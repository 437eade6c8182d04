/**
 * `verify`: checks FHIR Trail proof bundles offline, with nothing but a JSON-RPC endpoint.
 *
 *   tsx libs/ledger/src/cli/verify.ts FILE [--rpc URL] [--min-confirmations N] [--contract ADDRESS]
 *
 * Exit status: 0 verified, 1 not verified, 2 usage error, unreadable file or unreachable endpoint.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  type ProofVerification,
  createProvider,
  endpointName,
  isLedgerError,
  readChainId,
  verifyProofBundle,
} from '../index';
import { errorMessage } from '../ledger-error';

const HELP = `Usage: verify FILE [--rpc URL] [--min-confirmations N] [--contract ADDRESS]

Checks FHIR Trail proof bundles against an EVM JSON-RPC endpoint. No bridge and no database needed:
the event record must hash to the leaf, the inclusion path must lead to the anchored root, and the
anchor transaction, its Anchored event and its block must be on the chain.

FILE is a proof bundle (JSON), or a document with a "bundles" array (what GET /ledger/proofs
answers; every bundle in it must verify). Use - to read standard input.

Options:
  --rpc URL                  JSON-RPC endpoint (default http://127.0.0.1:8545)
  --min-confirmations N      blocks required on top of the anchor's block, itself included (default 0)
  --contract ADDRESS         the anchor contract you trust; bundles naming another one fail
  -h, --help                 show this help

Prints "verified" and a summary line per bundle, or "not verified: <reason>".
Exit status: 0 verified, 1 not verified, 2 usage error, unreadable file or unreachable endpoint.
`;

const DEFAULT_RPC = 'http://127.0.0.1:8545';

class UsageError extends Error {}

async function main(argv: readonly string[]): Promise<number> {
  let file: string;
  let rpc: string;
  let minConfirmations: number;
  let contract: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        rpc: { type: 'string' },
        'min-confirmations': { type: 'string' },
        contract: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    if (positionals.length !== 1) {
      throw new UsageError(positionals.length === 0 ? 'missing FILE' : 'give exactly one FILE');
    }
    file = positionals[0];
    rpc = values.rpc ?? DEFAULT_RPC;
    const min = values['min-confirmations'] ?? '0';
    if (!/^\d{1,9}$/.test(min)) {
      throw new UsageError('--min-confirmations must be a non-negative integer');
    }
    minConfirmations = Number(min);
    contract = values.contract;
    if (contract !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(contract)) {
      throw new UsageError('--contract must be a 0x-prefixed 20-byte address');
    }
  } catch (error) {
    process.stderr.write(`verify: ${errorMessage(error)}\n\n${HELP}`);
    return 2;
  }

  let bundles: unknown[];
  try {
    const document: unknown = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));
    bundles = isBundleList(document) ? document.bundles : [document];
    if (bundles.length === 0) {
      throw new Error('the document holds no bundles');
    }
  } catch (error) {
    process.stderr.write(`verify: cannot read ${file}: ${errorMessage(error)}\n`);
    return 2;
  }

  let chainId: bigint;
  try {
    chainId = await readChainId(rpc);
  } catch {
    process.stderr.write(`verify: no JSON-RPC answer from ${endpointName(rpc)}\n`);
    return 2;
  }
  const provider = createProvider(rpc, { chainId });
  try {
    const results: ProofVerification[] = [];
    for (const bundle of bundles) {
      results.push(
        await verifyProofBundle(bundle, provider, {
          minConfirmations,
          ...(contract === undefined ? {} : { expectedContract: contract }),
        }),
      );
    }
    const label = (i: number): string => (bundles.length > 1 ? `bundle ${i + 1}: ` : '');
    for (const [i, result] of results.entries()) {
      if (!result.verified) {
        process.stdout.write(`not verified: ${label(i)}${result.reason}\n`);
        return 1;
      }
    }
    process.stdout.write('verified\n');
    results.forEach((r, i) => {
      if (r.verified) {
        process.stdout.write(
          `${label(i)}${r.kind} event ${r.eventId} is leaf ${r.leafIndex} of the tree of ${r.treeSize} anchored on chain ` +
            `${r.chainId} by ${r.contract} in block ${r.blockNumber} (tx ${r.txHash}, ${r.confirmations} confirmation(s))\n`,
        );
      }
    });
    return 0;
  } catch (error) {
    const code = isLedgerError(error) ? error.code : 'ERROR';
    process.stderr.write(`verify: the chain could not be queried (${code}) at ${endpointName(rpc)}\n`);
    return 2;
  } finally {
    provider.destroy();
  }
}

function isBundleList(value: unknown): value is { bundles: unknown[] } {
  return typeof value === 'object' && value !== null && 'bundles' in value && Array.isArray(value.bundles);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`verify: ${errorMessage(error)}\n`);
    process.exitCode = 2;
  },
);
