/**
 * Compiles the FHIR Trail Solidity contracts and writes the committed artifact
 * libs/ledger/contracts/artifacts/<Contract>.json (ABI + bytecode + compiler settings) for each of
 * FhirTrailAnchor and FhirTrailConsentRegistry.
 * Run after changing a contract: `npx tsx scripts/build-contracts.ts`. The library loads the
 * artifact as JSON and never compiles at run time; a unit spec fails when the artifact is stale.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
// Deliberately not '@fhir-trail/ledger': the library's index imports the artifact this script
// writes, so going through it would make a missing or broken artifact impossible to rebuild.
// eslint-disable-next-line no-restricted-imports -- see above: build tooling that must not load the artifact
import {
  LEDGER_CONTRACT_NAMES,
  compileLedgerContract,
  formatContractArtifact,
} from '../libs/ledger/src/contract-compiler';

async function main(): Promise<void> {
  const root = join(__dirname, '..');
  for (const name of LEDGER_CONTRACT_NAMES) {
    const target = join(root, 'libs', 'ledger', 'contracts', 'artifacts', `${name}.json`);
    const artifact = await compileLedgerContract(name);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, formatContractArtifact(artifact));
    const bytes = (hex: string): number => (hex.length - 2) / 2;
    process.stdout.write(
      `${relative(root, target)}: ${artifact.contractName}, solc ${artifact.solcVersion}, ` +
        `${bytes(artifact.bytecode)} bytes creation / ${bytes(artifact.deployedBytecode)} bytes runtime\n`,
    );
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `build-contracts: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
