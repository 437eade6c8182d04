import { join } from 'node:path';
import { Contract, ZeroHash, isError } from 'ethers';
import {
  ANCHORED_EVENT_TOPIC,
  ANCHOR_CONTRACT_ARTIFACT,
  ANCHOR_ROLES,
  anchorContractInterface,
} from './anchor-contract';
import { ensureAnchorDeployment } from './anchor-deployment';
import { type TestChain, send, startTestChain, testHash } from './testing/test-chain.fixture';

/**
 * The Solidity custom error behind a reverted ethers Contract call, with its arguments. Sending
 * fails in estimateGas, where ethers leaves `revert` null and keeps the raw `data`; decode that with
 * the contract's interface.
 */
async function revertOf(call: Promise<unknown>): Promise<{ name: string; args: unknown[] }> {
  try {
    await call;
  } catch (error) {
    if (isError(error, 'CALL_EXCEPTION')) {
      if (error.revert) {
        return { name: error.revert.name, args: [...(error.revert.args as unknown[])] };
      }
      const parsed = typeof error.data === 'string' ? anchorContractInterface.parseError(error.data) : null;
      if (parsed) {
        return { name: parsed.name, args: [...parsed.args] as unknown[] };
      }
    }
    throw error;
  }
  throw new Error('the call did not revert');
}

/** Calls a view function. */
async function read(contract: Contract, method: string, ...args: unknown[]): Promise<unknown> {
  return (await contract.getFunction(method).staticCall(...args)) as unknown;
}

/** A transaction that must revert: ethers' send path (estimateGas) fails before signing. */
function attempt(contract: Contract, method: string, ...args: unknown[]): Promise<unknown> {
  return contract.getFunction(method)(...args) as Promise<unknown>;
}

describe('FhirTrailAnchor on anvil', () => {
  let t: TestChain;
  let asAnchorer: Contract;
  let asAdmin: Contract;
  let asOutsider: Contract;
  const gas: Record<string, number> = {};

  beforeAll(async () => {
    t = await startTestChain();
    const deployment = await ensureAnchorDeployment({
      provider: t.provider,
      signer: t.admin,
      deploymentFile: join(t.dataDir, 'chain', 'deployment.json'),
      admin: t.admin.address,
      anchorer: t.anchorer.address,
    });
    gas['deploy'] = deployment.gasUsed ?? 0;
    asAnchorer = new Contract(deployment.address, ANCHOR_CONTRACT_ARTIFACT.abi, t.anchorer);
    asAdmin = new Contract(deployment.address, ANCHOR_CONTRACT_ARTIFACT.abi, t.admin);
    asOutsider = new Contract(deployment.address, ANCHOR_CONTRACT_ARTIFACT.abi, t.outsider);
  }, 30_000);

  afterAll(async () => {
    // The numbers the design and the benchmarks quote; printed on every run.
    process.stdout.write(
      `FhirTrailAnchor gas: deploy ${gas['deploy']}, first anchor ${gas['first']}, later anchor ${gas['later']}\n`,
    );
    await t.close();
  });

  it('grants the admin every role and the anchorer ANCHORER_ROLE only', async () => {
    const has = (role: string, who: string): Promise<unknown> => read(asAdmin, 'hasRole', role, who);
    expect(await has(ANCHOR_ROLES.DEFAULT_ADMIN_ROLE, t.admin.address)).toBe(true);
    expect(await has(ANCHOR_ROLES.ANCHORER_ROLE, t.admin.address)).toBe(true);
    expect(await has(ANCHOR_ROLES.PAUSER_ROLE, t.admin.address)).toBe(true);
    expect(await has(ANCHOR_ROLES.ANCHORER_ROLE, t.anchorer.address)).toBe(true);
    expect(await has(ANCHOR_ROLES.PAUSER_ROLE, t.anchorer.address)).toBe(false);
    expect(await has(ANCHOR_ROLES.DEFAULT_ADMIN_ROLE, t.anchorer.address)).toBe(false);
    expect(await read(asAdmin, 'ANCHORER_ROLE')).toBe(ANCHOR_ROLES.ANCHORER_ROLE);
  });

  it('lets the anchorer publish a head that extends the last one, and emits Anchored', async () => {
    const receipt = await send(
      asAnchorer,
      'anchor',
      4,
      testHash('root-4'),
      0,
      ZeroHash,
      testHash('manifest-4'),
    );
    gas['first'] = Number(receipt.gasUsed);
    expect(receipt.logs).toHaveLength(1);
    const log = receipt.logs[0];
    expect(log.topics[0]).toBe(ANCHORED_EVENT_TOPIC);
    const event = asAnchorer.interface.parseLog(log);
    expect(event?.name).toBe('Anchored');
    expect(event?.args.toObject()).toEqual({
      treeSize: 4n,
      root: testHash('root-4'),
      previousSize: 0n,
      manifestHash: testHash('manifest-4'),
    });
    expect(await read(asAnchorer, 'treeSize')).toBe(4n);
    expect(await read(asAnchorer, 'rootHash')).toBe(testHash('root-4'));
    expect(await read(asAnchorer, 'anchorCount')).toBe(1n);

    const next = await send(
      asAnchorer,
      'anchor',
      9,
      testHash('root-9'),
      4,
      testHash('root-4'),
      testHash('m-9'),
    );
    gas['later'] = Number(next.gasUsed);
    expect(await read(asAnchorer, 'anchorCount')).toBe(2n);
  });

  it('refuses an account without ANCHORER_ROLE with AccessControlUnauthorizedAccount', async () => {
    const revert = await revertOf(
      attempt(asOutsider, 'anchor', 10, testHash('x'), 9, testHash('root-9'), ZeroHash),
    );
    expect(revert).toEqual({
      name: 'AccessControlUnauthorizedAccount',
      args: [t.outsider.address, ANCHOR_ROLES.ANCHORER_ROLE],
    });
  });

  it('refuses a stale or replayed head with HeadDoesNotExtend', async () => {
    // The exact call that published (9, root-9), replayed.
    const replay = await revertOf(
      attempt(asAnchorer, 'anchor', 9, testHash('root-9'), 4, testHash('root-4'), testHash('m-9')),
    );
    expect(replay).toEqual({ name: 'HeadDoesNotExtend', args: [9n, 9n] });
    // A smaller head that names the current one as its predecessor.
    const stale = await revertOf(
      attempt(asAnchorer, 'anchor', 5, testHash('root-5'), 9, testHash('root-9'), ZeroHash),
    );
    expect(stale).toEqual({ name: 'HeadDoesNotExtend', args: [9n, 5n] });
  });

  it('refuses a head whose previous head is not the current one with PreviousHeadMismatch', async () => {
    const wrongSize = await revertOf(
      attempt(asAnchorer, 'anchor', 12, testHash('root-12'), 4, testHash('root-4'), ZeroHash),
    );
    expect(wrongSize).toEqual({ name: 'PreviousHeadMismatch', args: [9n, testHash('root-9')] });
    const wrongRoot = await revertOf(
      attempt(asAnchorer, 'anchor', 12, testHash('root-12'), 9, testHash('other'), ZeroHash),
    );
    expect(wrongRoot.name).toBe('PreviousHeadMismatch');
  });

  it('refuses a zero root with EmptyRoot', async () => {
    expect(
      (await revertOf(attempt(asAnchorer, 'anchor', 12, ZeroHash, 9, testHash('root-9'), ZeroHash))).name,
    ).toBe('EmptyRoot');
  });

  it('refuses anchors while paused with EnforcedPause; only the pauser can pause', async () => {
    expect((await revertOf(attempt(asAnchorer, 'pause'))).name).toBe('AccessControlUnauthorizedAccount');
    await send(asAdmin, 'pause');
    expect(
      (
        await revertOf(
          attempt(asAnchorer, 'anchor', 12, testHash('root-12'), 9, testHash('root-9'), ZeroHash),
        )
      ).name,
    ).toBe('EnforcedPause');
    await send(asAdmin, 'unpause');
    await send(asAnchorer, 'anchor', 12, testHash('root-12'), 9, testHash('root-9'), ZeroHash);
    expect(await read(asAnchorer, 'treeSize')).toBe(12n);
  });

  it('lets only the admin grant and revoke roles; a revoked anchorer is refused by name', async () => {
    // The anchorer cannot make itself (or anyone) anything.
    expect(
      await revertOf(attempt(asAnchorer, 'grantRole', ANCHOR_ROLES.ANCHORER_ROLE, t.outsider.address)),
    ).toEqual({
      name: 'AccessControlUnauthorizedAccount',
      args: [t.anchorer.address, ANCHOR_ROLES.DEFAULT_ADMIN_ROLE],
    });
    await send(asAdmin, 'grantRole', ANCHOR_ROLES.ANCHORER_ROLE, t.outsider.address);
    await send(asOutsider, 'anchor', 13, testHash('root-13'), 12, testHash('root-12'), ZeroHash);
    await send(asAdmin, 'revokeRole', ANCHOR_ROLES.ANCHORER_ROLE, t.outsider.address);
    expect(
      await revertOf(
        attempt(asOutsider, 'anchor', 14, testHash('root-14'), 13, testHash('root-13'), ZeroHash),
      ),
    ).toEqual({
      name: 'AccessControlUnauthorizedAccount',
      args: [t.outsider.address, ANCHOR_ROLES.ANCHORER_ROLE],
    });
    expect((await revertOf(attempt(asOutsider, 'unpause'))).name).toBe('AccessControlUnauthorizedAccount');
    expect(await read(asAdmin, 'treeSize')).toBe(13n);
  });

  it('costs what the design expects', () => {
    expect(gas['deploy']).toBeLessThan(1_000_000);
    expect(gas['first']).toBeLessThan(100_000);
    expect(gas['later']).toBeLessThan(45_000);
  });
});
