import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Wallet } from 'ethers';
import { AnchorClient } from './anchor-client';
import { ensureAnchorDeployment } from './anchor-deployment';
import { DEV_ACCOUNT_PRIVATE_KEY, createProvider, readChainId } from './chain-provider';
import { EmbeddedChain, anvilBinaryPath, findFreePort } from './embedded-chain';
import { isLedgerError } from './ledger-error';
import { EMPTY_TREE_ROOT_HEX } from './merkle-hash';
import { testHash } from './testing/test-chain.fixture';

describe('EmbeddedChain', () => {
  let dataDir: string;
  const started: EmbeddedChain[] = [];

  async function start(port?: number): Promise<EmbeddedChain> {
    const chain = await EmbeddedChain.start({ dataDir, port: port ?? (await findFreePort()) });
    started.push(chain);
    return chain;
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'fhir-trail-chain-'));
  });

  afterAll(async () => {
    for (const chain of started) await chain.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('finds the anvil binary of this platform', () => {
    expect(existsSync(anvilBinaryPath())).toBe(true);
  });

  it('starts anvil (chain 31337), records it, logs to a file and keeps state across a restart', async () => {
    const port = await findFreePort();
    const first = await start(port);
    expect(first.owned).toBe(true);
    expect(first.rpcUrl).toBe(`http://127.0.0.1:${port}`);
    expect(await readChainId(first.rpcUrl)).toBe(31337n);
    const record = JSON.parse(await readFile(join(dataDir, 'chain', 'anvil.json'), 'utf8')) as {
      pid: number;
      port: number;
    };
    expect(record).toMatchObject({ pid: first.pid, port });
    expect(await readFile(join(dataDir, 'chain', 'anvil.log'), 'utf8')).toContain('Listening on');

    const provider = createProvider(first.rpcUrl);
    const signer = new Wallet(DEV_ACCOUNT_PRIVATE_KEY, provider);
    const deploymentFile = join(dataDir, 'chain', 'deployment.json');
    const options = { provider, signer, deploymentFile, admin: signer.address, anchorer: signer.address };
    const deployment = await ensureAnchorDeployment(options);
    expect(deployment.deployed).toBe(true);
    const client = new AnchorClient({ provider, signer, contractAddress: deployment.address });
    const anchored = await client.anchorHead({
      treeSize: 3,
      root: testHash('root-3'),
      previousSize: 0,
      previousRoot: EMPTY_TREE_ROOT_HEX,
      manifestHash: testHash('manifest-3'),
    });
    provider.destroy();

    await first.stop();
    expect(existsSync(join(dataDir, 'chain', 'anvil.json'))).toBe(false);
    expect(existsSync(join(dataDir, 'chain', 'anvil-state.json'))).toBe(true);
    await expect(readChainId(first.rpcUrl, 500)).rejects.toMatchObject({ code: 'CHAIN_UNAVAILABLE' });

    const second = await start(); // another port: state lives in the data dir, not the process
    const again = createProvider(second.rpcUrl);
    try {
      const reused = await ensureAnchorDeployment({
        ...options,
        provider: again,
        signer: signer.connect(again),
      });
      expect(reused).toMatchObject({ deployed: false, address: deployment.address });
      expect(await again.getCode(deployment.address)).not.toBe('0x');
      const head = await new AnchorClient({
        provider: again,
        signer,
        contractAddress: deployment.address,
      }).currentHead();
      expect(head).toEqual({ treeSize: 3, root: testHash('root-3') });
      const receipt = await again.getTransactionReceipt(anchored.txHash);
      expect(receipt?.blockHash).toBe(anchored.blockHash);
    } finally {
      again.destroy();
      await second.stop();
    }
  }, 20_000);

  it('attaches to the anvil another process started for the same data dir instead of starting a second', async () => {
    const owner = await start();
    const attached = await EmbeddedChain.start({ dataDir, port: await findFreePort() });
    expect(attached).toMatchObject({ owned: false, pid: owner.pid, rpcUrl: owner.rpcUrl });
    await attached.stop(); // leaves the owner's anvil running
    expect(await readChainId(owner.rpcUrl)).toBe(31337n);
    await owner.stop();
  }, 20_000);

  it('starts one anvil when two starts race for the same data dir (the lock file serialises them)', async () => {
    const raceDir = await mkdtemp(join(tmpdir(), 'fhir-trail-chain-'));
    try {
      const [a, b] = await Promise.all([
        EmbeddedChain.start({ dataDir: raceDir, port: await findFreePort() }),
        EmbeddedChain.start({ dataDir: raceDir, port: await findFreePort() }),
      ]);
      expect([a.owned, b.owned].sort()).toEqual([false, true]);
      expect(a.pid).toBe(b.pid);
      expect(a.rpcUrl).toBe(b.rpcUrl);
      await Promise.all([a.stop(), b.stop()]);
    } finally {
      await rm(raceDir, { recursive: true, force: true });
    }
  }, 20_000);

  it('keeps recent state through a hard kill, and starts afresh when the recorded anvil is dead', async () => {
    const chain = await start();
    const provider = createProvider(chain.rpcUrl);
    const signer = new Wallet(DEV_ACCOUNT_PRIVATE_KEY, provider);
    const tx = await signer.sendTransaction({ to: Wallet.createRandom().address, value: 1n });
    await tx.wait();
    provider.destroy();
    await sleep(1_300); // one --state-interval tick, plus margin
    process.kill(chain.pid, 'SIGKILL');
    await chain.stop();

    const revived = await start();
    expect(revived.owned).toBe(true);
    expect(revived.pid).not.toBe(chain.pid);
    const again = createProvider(revived.rpcUrl);
    try {
      expect((await again.getTransactionReceipt(tx.hash))?.status).toBe(1);
    } finally {
      again.destroy();
      await revived.stop();
    }
  }, 20_000);

  it("reports a port that is taken, with anvil's own words from its log", async () => {
    const blocker = await start();
    const otherDir = await mkdtemp(join(tmpdir(), 'fhir-trail-chain-'));
    try {
      const error: unknown = await EmbeddedChain.start({
        dataDir: otherDir,
        port: Number(new URL(blocker.rpcUrl).port),
      }).catch((e: unknown) => e);
      expect(isLedgerError(error, 'EMBEDDED_CHAIN_FAILED')).toBe(true);
      expect((error as Error).message).toMatch(/Address already in use/);
    } finally {
      await blocker.stop();
      await rm(otherDir, { recursive: true, force: true });
    }
  }, 20_000);

  it('removes a lock left by a dead process', async () => {
    await mkdir(join(dataDir, 'chain'), { recursive: true });
    await writeFile(join(dataDir, 'chain', 'anvil.lock'), '999999999');
    const chain = await start();
    expect(chain.owned).toBe(true);
    expect(existsSync(join(dataDir, 'chain', 'anvil.lock'))).toBe(false);
    await chain.stop();
  }, 20_000);
});
