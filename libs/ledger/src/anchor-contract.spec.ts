import { join } from 'node:path';
import { Contract, ZeroHash, isError } from 'ethers';
import { ANCHORED_EVENT_TOPIC, ANCHOR_CONTRACT_ARTIFACT, ANCHOR_ROLES, anchorContractInterface } from './anchor-contract';
import { ensureAnchorDeployment } from './anchor-deployment';
import { type TestChain, startTestChain, testHash } from './testing/test-chain.fixture';

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
        return { name: error.revert.name, args: [...error.revert.args] as unknown[] };
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
    asAdmin = asAnchorer.connect(t.admin) as Contract;
    asOutsider = asAnchorer.connect(t.outsider) as Contract;
  }, 30_000);

  afterAll(async () => {
    console.log(`FhirTrailAnchor gas: deploy ${gas['deploy']}, first anchor ${gas['first']}, later anchor ${gas['later']}`);
    await t.close();
  });

  it('grants the admin every role and the anchorer ANCHORER_ROLE only', async () => {
    const has = (role: string, who: string): Promise<boolean> => asAdmin.getFunction('hasRole')(role, who) as Promise<boolean>;
    expect(await has(ANCHOR_ROLES.DEFAULT_ADMIN_ROLE, t.admin.address)).toBe(true);
    expect(await has(ANCHOR_ROLES.ANCHORER_ROLE, t.admin.address)).toBe(true);
    expect(await has(ANCHOR_ROLES.PAUSER_ROLE, t.admin.address)).toBe(true);
    expect(await has(ANCHOR_ROLES.ANCHORER_ROLE, t.anchorer.address)).toBe(true);
    expect(await has(ANCHOR_ROLES.PAUSER_ROLE, t.anchorer.address)).toBe(false);
    expect(await has(ANCHOR_ROLES.DEFAULT_ADMIN_ROLE, t.anchorer.address)).toBe(false);
    expect(await asAdmin.getFunction('ANCHORER_ROLE')()).toBe(ANCHOR_ROLES.ANCHORER_ROLE);
  });

  it('lets the anchorer publish a head that extends the last one, and emits Anchored', async () => {
    const tx = await asAnchorer.getFunction('anchor')(4, testHash('root-4'), 0, ZeroHash, testHash('manifest-4'));
    const receipt = await tx.wait();
    gas['first'] = Number(receipt.gasUsed);
    const [log] = receipt.logs;
    expect(log.topics[0]).toBe(ANCHORED_EVENT_TOPIC);
    const event = asAnchorer.interface.parseLog(log);
    expect(event?.name).toBe('Anchored');
    expect(event?.args.toObject()).toEqual({
      treeSize: 4n,
      root: testHash('root-4'),
      previousSize: 0n,
      manifestHash: testHash('manifest-4'),
    });
    expect(await asAnchorer.getFunction('treeSize')()).toBe(4n);
    expect(await asAnchorer.getFunction('rootHash')()).toBe(testHash('root-4'));
    expect(await asAnchorer.getFunction('anchorCount')()).toBe(1n);

    const next = await asAnchorer.getFunction('anchor')(9, testHash('root-9'), 4, testHash('root-4'), testHash('m-9'));
    gas['later'] = Number((await next.wait()).gasUsed);
    expect(await asAnchorer.getFunction('anchorCount')()).toBe(2n);
  });

  it('refuses an account without ANCHORER_ROLE with AccessControlUnauthorizedAccount', async () => {
    const revert = await revertOf(asOutsider.getFunction('anchor')(10, testHash('x'), 9, testHash('root-9'), ZeroHash));
    expect(revert).toEqual({ name: 'AccessControlUnauthorizedAccount', args: [t.outsider.address, ANCHOR_ROLES.ANCHORER_ROLE] });
  });

  it('refuses a stale or replayed head with HeadDoesNotExtend', async () => {
    // The exact call that published (9, root-9), replayed.
    const replay = await revertOf(asAnchorer.getFunction('anchor')(9, testHash('root-9'), 4, testHash('root-4'), testHash('m-9')));
    expect(replay).toEqual({ name: 'HeadDoesNotExtend', args: [9n, 9n] });
    // A smaller head that names the current one as its predecessor.
    const stale = await revertOf(asAnchorer.getFunction('anchor')(5, testHash('root-5'), 9, testHash('root-9'), ZeroHash));
    expect(stale).toEqual({ name: 'HeadDoesNotExtend', args: [9n, 5n] });
  });

  it('refuses a head whose previous head is not the current one with PreviousHeadMismatch', async () => {
    const wrongSize = await revertOf(asAnchorer.getFunction('anchor')(12, testHash('root-12'), 4, testHash('root-4'), ZeroHash));
    expect(wrongSize).toEqual({ name: 'PreviousHeadMismatch', args: [9n, testHash('root-9')] });
    const wrongRoot = await revertOf(asAnchorer.getFunction('anchor')(12, testHash('root-12'), 9, testHash('other'), ZeroHash));
    expect(wrongRoot.name).toBe('PreviousHeadMismatch');
  });

  it('refuses a zero root with EmptyRoot', async () => {
    expect((await revertOf(asAnchorer.getFunction('anchor')(12, ZeroHash, 9, testHash('root-9'), ZeroHash))).name).toBe('EmptyRoot');
  });

  it('refuses anchors while paused with EnforcedPause; only the pauser can pause', async () => {
    expect((await revertOf(asAnchorer.getFunction('pause')())).name).toBe('AccessControlUnauthorizedAccount');
    await (await asAdmin.getFunction('pause')()).wait();
    expect((await revertOf(asAnchorer.getFunction('anchor')(12, testHash('root-12'), 9, testHash('root-9'), ZeroHash))).name).toBe(
      'EnforcedPause',
    );
    await (await asAdmin.getFunction('unpause')()).wait();
    await (await asAnchorer.getFunction('anchor')(12, testHash('root-12'), 9, testHash('root-9'), ZeroHash)).wait();
    expect(await asAnchorer.getFunction('treeSize')()).toBe(12n);
  });

  it('costs what the design expects', () => {
    expect(gas['deploy']).toBeLessThan(1_000_000);
    expect(gas['first']).toBeLessThan(100_000);
    expect(gas['later']).toBeLessThan(45_000);
  });
});
