import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ANCHOR_CONTRACT_ARTIFACT } from './anchor-contract';
import { compileAnchorContract, formatContractArtifact } from './contract-compiler';

const ARTIFACT_FILE = join(__dirname, '..', 'contracts', 'artifacts', 'FhirTrailAnchor.json');

// If this fails, the committed artifact is stale: run `npx tsx scripts/build-contracts.ts`.
describe('FhirTrailAnchor artifact', () => {
  it('equals a fresh compile of the Solidity source, byte for byte', async () => {
    const fresh = await compileAnchorContract();
    expect(fresh.solcVersion).toMatch(/^0\.8\.37\+/);
    expect(fresh.settings).toEqual({ optimizer: { enabled: true, runs: 200 }, evmVersion: 'cancun' });
    const committed = readFileSync(ARTIFACT_FILE, 'utf8');
    // Compare the parts first so a failure says which one drifted.
    expect(ANCHOR_CONTRACT_ARTIFACT.abi).toEqual(fresh.abi);
    expect(ANCHOR_CONTRACT_ARTIFACT.bytecode).toBe(fresh.bytecode);
    expect(ANCHOR_CONTRACT_ARTIFACT.deployedBytecode).toBe(fresh.deployedBytecode);
    expect(committed).toBe(formatContractArtifact(fresh));
    expect(committed.endsWith('}\n')).toBe(true);
  }, 30_000);

  it('exposes the functions, event and errors the ledger relies on', () => {
    const names = (type: string): string[] =>
      ANCHOR_CONTRACT_ARTIFACT.abi.filter((f) => f.type === type).map((f) => f.name ?? '');
    expect(names('function')).toEqual(
      expect.arrayContaining([
        'anchor',
        'pause',
        'unpause',
        'treeSize',
        'rootHash',
        'anchorCount',
        'ANCHORER_ROLE',
        'PAUSER_ROLE',
      ]),
    );
    expect(names('event')).toContain('Anchored');
    expect(names('error')).toEqual(
      expect.arrayContaining([
        'PreviousHeadMismatch',
        'HeadDoesNotExtend',
        'EmptyRoot',
        'AccessControlUnauthorizedAccount',
        'EnforcedPause',
      ]),
    );
  });
});
