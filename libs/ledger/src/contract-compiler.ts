import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { JsonFragment } from 'ethers';
import { LedgerError, errorMessage } from './ledger-error';

/** Solidity compiler settings used for the anchor contract; stored in the artifact for reproducibility. */
export interface CompilerSettings {
  readonly optimizer: { readonly enabled: boolean; readonly runs: number };
  readonly evmVersion: string;
}

/** A compiled contract: what the library needs at run time, plus how it was produced. */
export interface ContractArtifact {
  readonly contractName: string;
  readonly sourceName: string;
  readonly solcVersion: string;
  readonly settings: CompilerSettings;
  readonly abi: readonly JsonFragment[];
  /** Creation bytecode, `0x`-prefixed. */
  readonly bytecode: string;
  /** Runtime bytecode (what `eth_getCode` returns after deployment), `0x`-prefixed. */
  readonly deployedBytecode: string;
}

/** The contracts of this library; each lives in `contracts/<name>.sol` and compiles to `artifacts/<name>.json`. */
export const LEDGER_CONTRACT_NAMES = ['FhirTrailAnchor', 'FhirTrailConsentRegistry'] as const;
export type LedgerContractName = (typeof LEDGER_CONTRACT_NAMES)[number];

/** The settings the committed artifacts are built with (see toolchain-spike.md, section 5). */
export const ANCHOR_COMPILER_SETTINGS: CompilerSettings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
};

/** The part of solc-js we use; its own typings are `any`. */
interface SolcCompiler {
  compile(
    input: string,
    callbacks: { import: (path: string) => { contents: string } | { error: string } },
  ): string;
  version(): string;
}

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts?: Record<
    string,
    Record<
      string,
      { abi: JsonFragment[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }
    >
  >;
}

/**
 * Compiles `contracts/FhirTrailAnchor.sol` with solc-js (standard JSON, optimizer 200 runs, cancun),
 * resolving `@openzeppelin/...` imports from node_modules. Used by `scripts/build-contracts.ts` and
 * by the spec that guards the committed artifact; the library itself never compiles at run time.
 * Line endings are normalised to LF so a CRLF checkout produces the same bytecode.
 */
export async function compileAnchorContract(): Promise<ContractArtifact> {
  return compileLedgerContract('FhirTrailAnchor');
}

/**
 * Compiles `contracts/<name>.sol` the same way as {@link compileAnchorContract}. The source unit
 * name (`contracts/<name>.sol`) is part of the metadata hash, so it is never an absolute path.
 */
export async function compileLedgerContract(name: LedgerContractName): Promise<ContractArtifact> {
  const SOURCE_NAME = `contracts/${name}.sol`;
  const CONTRACT_NAME = name;
  const solc = (await import('solc')).default as unknown as SolcCompiler;
  const source = normaliseSource(readFileSync(join(__dirname, '..', 'contracts', `${name}.sol`), 'utf8'));
  const input = {
    language: 'Solidity',
    sources: { [SOURCE_NAME]: { content: source } },
    settings: {
      ...ANCHOR_COMPILER_SETTINGS,
      outputSelection: {
        [SOURCE_NAME]: { [CONTRACT_NAME]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: resolveImport })) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    throw new LedgerError('COMPILE_FAILED', errors.map((e) => e.formattedMessage).join('\n'));
  }
  const compiled = output.contracts?.[SOURCE_NAME]?.[CONTRACT_NAME];
  if (compiled === undefined) {
    throw new LedgerError('COMPILE_FAILED', `solc produced no output for ${CONTRACT_NAME}`);
  }
  return {
    contractName: CONTRACT_NAME,
    sourceName: SOURCE_NAME,
    solcVersion: solc.version(),
    settings: ANCHOR_COMPILER_SETTINGS,
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
    deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
  };
}

/**
 * The committed form of an artifact: fixed top-level order, sorted keys below it, two-space
 * indentation and a trailing newline, so a rebuild without changes gives a byte-identical file.
 */
export function formatContractArtifact(artifact: ContractArtifact): string {
  const ordered = {
    contractName: artifact.contractName,
    sourceName: artifact.sourceName,
    solcVersion: artifact.solcVersion,
    settings: sortKeys(artifact.settings),
    abi: sortKeys(artifact.abi),
    bytecode: artifact.bytecode,
    deployedBytecode: artifact.deployedBytecode,
  };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

function resolveImport(path: string): { contents: string } | { error: string } {
  if (!path.startsWith('@openzeppelin/')) {
    return { error: `unsupported import ${path}: only @openzeppelin/... is resolved` };
  }
  try {
    // createRequire rather than require.resolve: bundlers leave it alone and it resolves from here.
    const file = createRequire(__filename).resolve(path);
    return { contents: normaliseSource(readFileSync(file, 'utf8')) };
  } catch (error) {
    return { error: `cannot read ${path}: ${errorMessage(error)}` };
  }
}

function normaliseSource(text: string): string {
  return text.replace(/\r\n/g, '\n');
}
