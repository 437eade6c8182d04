/**
 * `verify`: checks FHIR Trail proof bundles offline, with nothing but a JSON-RPC endpoint.
 *
 *   tsx libs/ledger/src/cli/verify.ts FILE [--rpc URL] [--min-confirmations N] [--contract ADDRESS]
 *                                     [--checkpoint EARLIER.json [--consistency PROOF.json]]
 *
 * Exit status: 0 verified, 1 not verified, 2 usage error, unreadable file or unreachable endpoint.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  type ProofVerification,
  createProvider,
  endpointName,
  expandProofBundle,
  isLedgerError,
  readChainId,
  verifyProofBundle,
} from '../index';
import { errorMessage } from '../ledger-error';

const HELP = `Usage: verify FILE [--rpc URL] [--min-confirmations N] [--contract ADDRESS]
              [--checkpoint EARLIER.json [--consistency PROOF.json]]

Checks FHIR Trail proof bundles against an EVM JSON-RPC endpoint. No bridge and no database needed:
the event record must hash to the leaf, the inclusion path must lead to the anchored root, and the
anchor transaction, its Anchored event and its block must be on the chain.

FILE is a proof bundle (JSON, v1 or the compact v2 form), or a document with a "bundles" array
(what GET /ledger/proofs answers, with or without &encoding=compact; every bundle in it must
verify). Use - to read standard input.

With --checkpoint, the bundle's head must also extend an earlier head you saved: the consistency
proof must show that the earlier tree is a prefix of the bundle's tree (nothing was rewritten or
removed since), and the earlier head must itself have been anchored on the same chain and contract
(its Anchored event, previous size and manifest hash). The consistency proof comes from the bundle's
"consistency" field (GET /ledger/proofs?...&consistencyFrom=N) or from --consistency.

Options:
  --rpc URL                  JSON-RPC endpoint (default http://127.0.0.1:8545)
  --min-confirmations N      blocks required on top of the anchor's block, itself included (default 0)
  --contract ADDRESS         the anchor contract you trust; bundles naming another one fail
  --checkpoint FILE          an earlier checkpoint: one entry of GET /ledger/checkpoints (or that
                             document holding exactly one entry)
  --consistency FILE         the consistency proof from that checkpoint to the bundle's head, as
                             GET /ledger/consistency?from=N&to=M answers it (N = the checkpoint's
                             treeSize, M = the bundle's); not needed when N = M
  -h, --help                 show this help

Prints "verified" and a summary line per bundle (and one for the earlier checkpoint), or
"not verified: <reason>".
Exit status: 0 verified, 1 not verified, 2 usage error (a missing consistency proof included),
unreadable file or unreachable endpoint.
`;

const DEFAULT_RPC = 'http://127.0.0.1:8545';

class UsageError extends Error {}

interface Arguments {
  readonly file: string;
  readonly rpc: string;
  readonly minConfirmations: number;
  readonly contract: string | undefined;
  readonly checkpoint: string | undefined;
  readonly consistency: string | undefined;
}

async function main(argv: readonly string[]): Promise<number> {
  let args: Arguments;
  try {
    const parsed = parseArguments(argv);
    if (parsed === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    args = parsed;
  } catch (error) {
    process.stderr.write(`verify: ${errorMessage(error)}\n\n${HELP}`);
    return 2;
  }

  let bundles: unknown[];
  let earlierCheckpoint: unknown;
  let consistency: unknown;
  try {
    const document = readJson(args.file);
    bundles = isBundleList(document) ? document.bundles : [document];
    if (bundles.length === 0) {
      throw new Error(`cannot read ${args.file}: the document holds no bundles`);
    }
    if (args.checkpoint !== undefined) {
      earlierCheckpoint = singleCheckpoint(readJson(args.checkpoint), args.checkpoint);
    }
    if (args.consistency !== undefined) {
      consistency = readJson(args.consistency);
    }
  } catch (error) {
    process.stderr.write(`verify: ${errorMessage(error)}\n`);
    return 2;
  }
  if (earlierCheckpoint !== undefined && consistency === undefined) {
    const missing = bundles.map((b) => missingConsistency(b, earlierCheckpoint)).find(Boolean);
    if (missing) {
      process.stderr.write(`verify: ${missing}\n`);
      return 2;
    }
  }

  let chainId: bigint;
  try {
    chainId = await readChainId(args.rpc);
  } catch {
    process.stderr.write(`verify: no JSON-RPC answer from ${endpointName(args.rpc)}\n`);
    return 2;
  }
  const provider = createProvider(args.rpc, { chainId });
  try {
    const results: ProofVerification[] = [];
    for (const bundle of bundles) {
      results.push(
        await verifyProofBundle(bundle, provider, {
          minConfirmations: args.minConfirmations,
          ...(args.contract === undefined ? {} : { expectedContract: args.contract }),
          ...(earlierCheckpoint === undefined ? {} : { earlierCheckpoint }),
          ...(consistency === undefined ? {} : { consistency }),
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
      if (!r.verified) return;
      process.stdout.write(
        `${label(i)}${r.kind} event ${r.eventId} is leaf ${r.leafIndex} of the tree of ${r.treeSize} anchored on chain ` +
          `${r.chainId} by ${r.contract} in block ${r.blockNumber} (tx ${r.txHash}, ${r.confirmations} confirmation(s))\n`,
      );
      const earlier = r.consistentWith;
      if (earlier !== undefined) {
        process.stdout.write(
          `${label(i)}the tree of ${r.treeSize} extends the earlier checkpoint of ${earlier.treeSize} (root ${earlier.root}), ` +
            `anchored in block ${earlier.blockNumber} (tx ${earlier.txHash})\n`,
        );
      }
    });
    return 0;
  } catch (error) {
    const code = isLedgerError(error) ? error.code : 'ERROR';
    process.stderr.write(`verify: the chain could not be queried (${code}) at ${endpointName(args.rpc)}\n`);
    return 2;
  } finally {
    provider.destroy();
  }
}

function parseArguments(argv: readonly string[]): Arguments | 'help' {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      rpc: { type: 'string' },
      'min-confirmations': { type: 'string' },
      contract: { type: 'string' },
      checkpoint: { type: 'string' },
      consistency: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    return 'help';
  }
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'missing FILE' : 'give exactly one FILE');
  }
  const min = values['min-confirmations'] ?? '0';
  if (!/^\d{1,9}$/.test(min)) {
    throw new UsageError('--min-confirmations must be a non-negative integer');
  }
  const contract = values.contract;
  if (contract !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(contract)) {
    throw new UsageError('--contract must be a 0x-prefixed 20-byte address');
  }
  if (values.consistency !== undefined && values.checkpoint === undefined) {
    throw new UsageError('--consistency needs --checkpoint (the earlier head it starts from)');
  }
  const files = [positionals[0], values.checkpoint, values.consistency].filter((f) => f !== undefined);
  if (files.filter((f) => f === '-').length > 1) {
    throw new UsageError('only one of the files can be standard input (-)');
  }
  return {
    file: positionals[0],
    rpc: values.rpc ?? DEFAULT_RPC,
    minConfirmations: Number(min),
    contract,
    checkpoint: values.checkpoint,
    consistency: values.consistency,
  };
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8')) as unknown;
  } catch (error) {
    throw new Error(`cannot read ${file}: ${errorMessage(error)}`, { cause: error });
  }
}

/** A saved checkpoint entry, or the `GET /ledger/checkpoints` document when it holds exactly one. */
function singleCheckpoint(document: unknown, file: string): unknown {
  if (typeof document === 'object' && document !== null && 'checkpoints' in document) {
    const list = document.checkpoints;
    if (!Array.isArray(list) || list.length !== 1) {
      throw new Error(
        `cannot read ${file}: it lists ${Array.isArray(list) ? list.length : 'no'} checkpoints; save the one entry to check against`,
      );
    }
    return list[0] as unknown;
  }
  return document;
}

/**
 * Why the earlier checkpoint cannot be checked against this bundle for want of a consistency
 * proof, or undefined (sizes equal, the bundle carries one, or a malformed input the verifier
 * will report).
 */
function missingConsistency(document: unknown, checkpoint: unknown): string | undefined {
  let bundle = document;
  try {
    bundle = expandProofBundle(document);
  } catch {
    return undefined; // malformed: the verifier says how
  }
  const from = numberField(checkpoint, 'treeSize');
  const to = numberField(bundle, 'treeSize');
  const carried = typeof bundle === 'object' && bundle !== null && 'consistency' in bundle;
  if (from === undefined || to === undefined || from === to || carried) {
    return undefined;
  }
  return (
    `no consistency proof from the checkpoint's ${from} leaves to the bundle's ${to}: give --consistency FILE ` +
    `(GET /ledger/consistency?from=${from}&to=${to}) or a bundle fetched with &consistencyFrom=${from}`
  );
}

function numberField(value: unknown, field: string): number | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const found = (value as Record<string, unknown>)[field];
  return typeof found === 'number' ? found : undefined;
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
