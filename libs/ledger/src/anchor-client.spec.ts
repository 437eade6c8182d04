import { join } from 'node:path';
import { Contract, type Wallet, ZeroHash } from 'ethers';
import { AnchorClient } from './anchor-client';
import { ANCHOR_CONTRACT_ARTIFACT } from './anchor-contract';
import { ensureAnchorDeployment } from './anchor-deployment';
import { createProvider } from './chain-provider';
import { isLedgerError, toLedgerError } from './ledger-error';
import { EMPTY_TREE_ROOT_HEX } from './merkle-hash';
import {
  DEV_ACCOUNT_1_PRIVATE_KEY,
  type TestChain,
  send,
  startTestChain,
  testHash,
} from './testing/test-chain.fixture';

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (error: unknown) => error,
  );
}

describe('AnchorClient on anvil', () => {
  let t: TestChain;
  let client: AnchorClient;
  let contractAddress: string;

  const nonceOf = (wallet: Wallet): Promise<number> =>
    t.provider.getTransactionCount(wallet.address, 'latest');

  beforeAll(async () => {
    t = await startTestChain();
    const deployment = await ensureAnchorDeployment({
      provider: t.provider,
      signer: t.admin,
      deploymentFile: join(t.dataDir, 'chain', 'deployment.json'),
      admin: t.admin.address,
      anchorer: t.anchorer.address,
    });
    contractAddress = deployment.address;
    client = new AnchorClient({ provider: t.provider, signer: t.anchorer, contractAddress });
  }, 30_000);

  afterAll(async () => {
    await t.close();
  });

  it('starts from the genesis head (0, zero)', async () => {
    expect(await client.currentHead()).toEqual({ treeSize: 0, root: ZeroHash });
  });

  it('anchors a head and reports where: chain, contract, tx, block, log, gas', async () => {
    const receipt = await client.anchorHead({
      treeSize: 3,
      root: testHash('root-3'),
      previousSize: 0,
      previousRoot: EMPTY_TREE_ROOT_HEX, // the empty tree stands for the contract's zero genesis root
      manifestHash: testHash('manifest-3'),
    });
    expect(receipt).toMatchObject({
      chainId: '31337',
      contract: contractAddress,
      logIndex: 0,
      recovered: false,
    });
    expect(receipt.txHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(receipt.blockHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(receipt.gasUsed).toBeGreaterThan(21_000);
    const onChain = await t.provider.getTransactionReceipt(receipt.txHash);
    expect(onChain?.blockNumber).toBe(receipt.blockNumber);
    expect(await client.currentHead()).toEqual({ treeSize: 3, root: testHash('root-3') });
  });

  it('never anchors twice: asking again for the current head returns the earlier anchor and sends nothing', async () => {
    const first = await client.findAnchor(3, testHash('root-3'));
    const nonce = await nonceOf(t.anchorer);
    const again = await client.anchorHead({
      treeSize: 3,
      root: Buffer.from(testHash('root-3').slice(2), 'hex'),
      previousSize: 0,
      previousRoot: ZeroHash,
      manifestHash: testHash('manifest-3'),
    });
    expect(again).toEqual({ ...first, recovered: true });
    expect(await nonceOf(t.anchorer)).toBe(nonce);
  });

  it('serialises concurrent anchors from one client', async () => {
    const [a, b] = await Promise.all([
      client.anchorHead({
        treeSize: 5,
        root: testHash('root-5'),
        previousSize: 3,
        previousRoot: testHash('root-3'),
        manifestHash: ZeroHash,
      }),
      client.anchorHead({
        treeSize: 8,
        root: testHash('root-8'),
        previousSize: 5,
        previousRoot: testHash('root-5'),
        manifestHash: ZeroHash,
      }),
    ]);
    expect(b.blockNumber).toBeGreaterThan(a.blockNumber);
    expect(await client.currentHead()).toEqual({ treeSize: 8, root: testHash('root-8') });
  });

  it('reports a refused head with the contract error name, permanently, without spending gas', async () => {
    const nonce = await nonceOf(t.anchorer);
    const mismatch = await failureOf(
      client.anchorHead({
        treeSize: 9,
        root: testHash('root-9'),
        previousSize: 5,
        previousRoot: testHash('root-5'),
        manifestHash: ZeroHash,
      }),
    );
    expect(isLedgerError(mismatch, 'ANCHOR_REJECTED')).toBe(true);
    expect(mismatch).toMatchObject({
      retryable: false,
      details: { revert: 'PreviousHeadMismatch', revertArgs: `8, ${testHash('root-8')}` },
    });

    const stale = await failureOf(
      client.anchorHead({
        treeSize: 6,
        root: testHash('root-6'),
        previousSize: 8,
        previousRoot: testHash('root-8'),
        manifestHash: ZeroHash,
      }),
    );
    expect(stale).toMatchObject({
      code: 'ANCHOR_REJECTED',
      details: { revert: 'HeadDoesNotExtend', revertArgs: '8, 6' },
    });
    expect(await nonceOf(t.anchorer)).toBe(nonce);

    const outsider = new AnchorClient({ provider: t.provider, signer: t.outsider, contractAddress });
    const unauthorised = await failureOf(
      outsider.anchorHead({
        treeSize: 9,
        root: testHash('root-9'),
        previousSize: 8,
        previousRoot: testHash('root-8'),
        manifestHash: ZeroHash,
      }),
    );
    expect(unauthorised).toMatchObject({
      code: 'ANCHOR_REJECTED',
      details: { revert: 'AccessControlUnauthorizedAccount' },
    });
  });

  it('reports EnforcedPause while the contract is paused', async () => {
    const admin = new Contract(contractAddress, ANCHOR_CONTRACT_ARTIFACT.abi, t.admin);
    await send(admin, 'pause');
    try {
      const paused = await failureOf(
        client.anchorHead({
          treeSize: 9,
          root: testHash('root-9'),
          previousSize: 8,
          previousRoot: testHash('root-8'),
          manifestHash: ZeroHash,
        }),
      );
      expect(paused).toMatchObject({ code: 'ANCHOR_REJECTED', details: { revert: 'EnforcedPause' } });
    } finally {
      await send(admin, 'unpause');
    }
  });

  it('times out on a missing receipt (retryable), then recovers the landed anchor instead of resending', async () => {
    const impatient = new AnchorClient({
      provider: t.provider,
      privateKey: DEV_ACCOUNT_1_PRIVATE_KEY,
      contractAddress,
      receiptTimeoutMs: 150,
    });
    const request = {
      treeSize: 9,
      root: testHash('root-9'),
      previousSize: 8,
      previousRoot: testHash('root-8'),
      manifestHash: ZeroHash,
    };
    await t.provider.send('evm_setAutomine', [false]);
    let timedOut: unknown;
    try {
      timedOut = await failureOf(impatient.anchorHead(request));
    } finally {
      await t.provider.send('evm_setAutomine', [true]);
    }
    expect(isLedgerError(timedOut, 'RECEIPT_TIMEOUT')).toBe(true);
    expect(timedOut).toMatchObject({
      retryable: true,
      details: { txHash: expect.stringMatching(/^0x/) as unknown },
    });
    await t.provider.send('evm_mine', []); // the pending transaction lands after all
    const nonce = await nonceOf(t.anchorer);
    const recovered = await impatient.anchorHead(request);
    expect(recovered).toMatchObject({
      recovered: true,
      txHash: (timedOut as { details: { txHash: string } }).details.txHash,
    });
    expect(await nonceOf(t.anchorer)).toBe(nonce);
  });

  it('classifies an unreachable endpoint and a taken nonce as retryable', async () => {
    const nowhere = createProvider('http://127.0.0.1:9', { chainId: 31337 });
    try {
      const offline = await failureOf(
        new AnchorClient({
          provider: nowhere,
          privateKey: DEV_ACCOUNT_1_PRIVATE_KEY,
          contractAddress,
        }).currentHead(),
      );
      expect(offline).toMatchObject({ code: 'CHAIN_UNAVAILABLE', retryable: true });
    } finally {
      nowhere.destroy();
    }
    const signed = await t.anchorer.signTransaction({
      to: t.admin.address,
      nonce: 0,
      gasLimit: 21_000,
      chainId: 31337,
      maxFeePerGas: 10n ** 10n,
      maxPriorityFeePerGas: 1n,
    });
    const reused = toLedgerError(await failureOf(t.provider.broadcastTransaction(signed)), 'sending');
    expect(reused).toMatchObject({ code: 'NONCE_CONFLICT', retryable: true });
  });

  it('refuses arguments that are not hashes or sizes', async () => {
    await expect(
      client.anchorHead({
        treeSize: 10,
        root: '0x1234',
        previousSize: 9,
        previousRoot: testHash('root-9'),
        manifestHash: ZeroHash,
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(
      client.anchorHead({
        treeSize: -1,
        root: testHash('r'),
        previousSize: 9,
        previousRoot: testHash('root-9'),
        manifestHash: ZeroHash,
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(() => new AnchorClient({ provider: t.provider, contractAddress })).toThrow(
      'signer or a privateKey',
    );
  });
});
