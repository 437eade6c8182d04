import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Transaction, ZeroHash } from 'ethers';
import { type AnchorClientOptions, type AnchorHeadRequest, AnchorClient } from './anchor-client';
import { ANCHORED_EVENT_TOPIC } from './anchor-contract';
import { InMemoryAnchorOutbox, type OutboxTransaction } from './anchor-outbox';
import { ensureAnchorDeployment } from './anchor-deployment';
import { isLedgerError } from './ledger-error';
import { type TestChain, startTestChain, testHash } from './testing/test-chain.fixture';

/** The head of size `n` in these tests, extending the head of size `previous`. */
function head(n: number, previous: number): AnchorHeadRequest {
  return {
    treeSize: n,
    root: testHash(`root-${n}`),
    previousSize: previous,
    previousRoot: previous === 0 ? ZeroHash : testHash(`root-${previous}`),
    manifestHash: testHash(`manifest-${n}`),
  };
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * The anchoring client's delivery guarantees on a real anvil: every transaction is outboxed before
 * it is sent, re-sent byte for byte, replaced with higher fees when stuck, followed to the finality
 * depth, and never duplicated.
 */
describe('AnchorClient outbox, re-sending and replacement on anvil', () => {
  let t: TestChain;
  let contractAddress: string;

  const client = (outbox: InMemoryAnchorOutbox, options: Partial<AnchorClientOptions> = {}): AnchorClient =>
    new AnchorClient({
      provider: t.provider,
      signer: t.anchorer,
      contractAddress,
      outbox,
      receiptPollIntervalMs: 10,
      ...options,
    });
  const nonce = (): Promise<number> => t.provider.getTransactionCount(t.anchorer.address, 'latest');
  const automine = (on: boolean): Promise<unknown> => t.provider.send('evm_setAutomine', [on]);
  const inPool = async (txHash: string): Promise<boolean> =>
    (await t.provider.send('eth_getTransactionByHash', [txHash])) !== null;
  /** Every Anchored event the contract emitted for the head of size `n`. */
  const anchorsOf = async (n: number): Promise<number> =>
    (
      await t.provider.getLogs({
        address: contractAddress,
        topics: [ANCHORED_EVENT_TOPIC, `0x${n.toString(16).padStart(64, '0')}`],
        fromBlock: 0,
      })
    ).length;

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
  }, 30_000);

  afterEach(async () => {
    await automine(true);
  });

  afterAll(async () => {
    await t.close();
  });

  it('outboxes the signed transaction with an explicit nonce and fees before sending, and settles it as mined', async () => {
    const outbox = new InMemoryAnchorOutbox();
    const before = await nonce();
    const receipt = await client(outbox).anchorHead(head(2, 0));
    const [row] = outbox.all();
    expect(outbox.all()).toHaveLength(1);
    expect(row).toMatchObject({
      txHash: receipt.txHash,
      nonce: before,
      signer: t.anchorer.address.toLowerCase(),
      chainId: '31337',
      treeSize: 2,
      root: testHash('root-2'),
      replaces: null,
      status: 'mined',
    });
    const signed = Transaction.from(row.rawTransaction);
    expect(signed.hash).toBe(receipt.txHash);
    expect(signed.nonce).toBe(before);
    expect(signed.maxFeePerGas?.toString()).toBe(row.maxFeePerGas);
    expect(BigInt(row.maxFeePerGas)).toBeGreaterThan(0n);
    expect(await nonce()).toBe(before + 1);
  });

  it('re-sends the same signed bytes when the node lost the transaction, and anchors once', async () => {
    const outbox = new InMemoryAnchorOutbox();
    const before = await nonce();
    await automine(false);
    const anchoring = client(outbox, { resendAfterMs: 50, replaceAfterMs: 60_000 }).anchorHead(head(4, 2));
    const sent = await until('the outboxed transaction', () => outbox.all()[0]);
    await until('the transaction in the pool', async () => ((await inPool(sent.txHash)) ? true : undefined));
    await t.provider.send('anvil_dropTransaction', [sent.txHash]); // the node forgets it (restart, eviction)
    expect(await inPool(sent.txHash)).toBe(false);
    await until('the re-sent transaction', async () => ((await inPool(sent.txHash)) ? true : undefined));
    await t.provider.send('evm_mine', []);
    const receipt = await anchoring;
    expect(receipt.txHash).toBe(sent.txHash);
    expect(outbox.all()).toEqual([expect.objectContaining({ txHash: sent.txHash, status: 'mined' })]);
    expect(await nonce()).toBe(before + 1);
    expect(await anchorsOf(4)).toBe(1);
  });

  it('after a timeout and a restart, follows the outboxed transaction instead of anchoring the head again', async () => {
    const outbox = new InMemoryAnchorOutbox(); // shared by both "processes", as PostgreSQL is
    const before = await nonce();
    await automine(false);
    const first = await client(outbox, { receiptTimeoutMs: 200 })
      .anchorHead(head(6, 4))
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(isLedgerError(first, 'RECEIPT_TIMEOUT')).toBe(true);
    const [sent] = outbox.all();
    expect(sent.status).toBe('pending');
    // The process dies; the node loses its pool too.
    await t.provider.send('anvil_dropTransaction', [sent.txHash]);
    await automine(true);

    const restarted = client(outbox);
    const receipt = await restarted.anchorHead(head(6, 4));
    expect(receipt).toMatchObject({ txHash: sent.txHash, recovered: true });
    expect(outbox.all()).toEqual([expect.objectContaining({ txHash: sent.txHash, status: 'mined' })]);
    expect(await nonce()).toBe(before + 1);
    expect(await anchorsOf(6)).toBe(1);
    expect(await restarted.currentHead()).toEqual({ treeSize: 6, root: testHash('root-6') });
  });

  it('replaces a stuck transaction with a fee-bumped one with the same nonce, and records both', async () => {
    const outbox = new InMemoryAnchorOutbox();
    const before = await nonce();
    await automine(false);
    const anchoring = client(outbox, { resendAfterMs: 40, replaceAfterMs: 150 }).anchorHead(head(8, 6));
    const replacement = await until('a replacement', () => outbox.all().find((r) => r.replaces !== null));
    await until('the replacement in the pool', async () =>
      (await inPool(replacement.txHash)) ? true : undefined,
    );
    await t.provider.send('evm_mine', []);
    const receipt = await anchoring;

    const rows = outbox.all();
    const original = rows.find((r) => r.replaces === null) as OutboxTransaction;
    expect(replacement.replaces).toBe(original.txHash);
    expect(replacement.nonce).toBe(original.nonce);
    expect(BigInt(replacement.maxFeePerGas) * 1000n).toBeGreaterThanOrEqual(
      BigInt(original.maxFeePerGas) * 1125n,
    );
    expect(BigInt(replacement.maxPriorityFeePerGas) * 1000n).toBeGreaterThanOrEqual(
      BigInt(original.maxPriorityFeePerGas) * 1125n,
    );
    const mined = rows.filter((r) => r.status === 'mined');
    expect(mined).toHaveLength(1);
    expect(receipt.txHash).toBe(mined[0].txHash);
    expect(rows.filter((r) => r.status === 'replaced').map((r) => r.txHash)).toEqual(
      rows.filter((r) => r.txHash !== mined[0].txHash).map((r) => r.txHash),
    );
    expect(await nonce()).toBe(before + 1);
    expect(await anchorsOf(8)).toBe(1);
  });

  it('detects that another transaction took the nonce, settles ours as replaced, and anchors with the next nonce', async () => {
    const outbox = new InMemoryAnchorOutbox();
    const before = await nonce();
    await automine(false);
    const timedOut = await client(outbox, { receiptTimeoutMs: 150 })
      .anchorHead(head(10, 8))
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(isLedgerError(timedOut, 'RECEIPT_TIMEOUT')).toBe(true);
    const [ours] = outbox.all();
    // Someone with the same key sends something else at that nonce, paying more (an operator's
    // manual cancel, say); it displaces ours and is mined.
    const fees = Transaction.from(ours.rawTransaction);
    const cancel = await t.anchorer.sendTransaction({
      to: t.anchorer.address,
      value: 0,
      nonce: ours.nonce,
      gasLimit: 21_000,
      maxFeePerGas: (fees.maxFeePerGas ?? 0n) * 2n,
      maxPriorityFeePerGas: (fees.maxPriorityFeePerGas ?? 0n) * 2n,
    });
    await t.provider.send('evm_mine', []);
    await automine(true);
    expect((await t.provider.getTransactionReceipt(cancel.hash))?.status).toBe(1);

    const receipt = await client(outbox).anchorHead(head(10, 8));
    const rows = outbox.all();
    expect(rows).toEqual([
      expect.objectContaining({ txHash: ours.txHash, status: 'replaced' }),
      expect.objectContaining({ txHash: receipt.txHash, status: 'mined', nonce: ours.nonce + 1 }),
    ]);
    expect(receipt.recovered).toBe(false);
    expect(await nonce()).toBe(before + 2);
    expect(await anchorsOf(10)).toBe(1);
  });

  it('waits for the configured finality depth before it reports the anchor', async () => {
    const outbox = new InMemoryAnchorOutbox();
    let settled = false;
    const anchoring = client(outbox, { finalityDepth: 3 })
      .anchorHead(head(12, 10))
      .finally(() => {
        settled = true;
      });
    const sent = await until('the outboxed transaction', () => outbox.all()[0]);
    const mined = await until(
      'the receipt',
      async () => (await t.provider.getTransactionReceipt(sent.txHash)) ?? undefined,
    );
    for (let block = 1; block <= 3; block += 1) {
      await sleep(60);
      expect(settled).toBe(false);
      expect(outbox.all()[0].status).toBe('pending');
      await t.provider.send('evm_mine', []);
    }
    const receipt = await anchoring;
    expect(receipt.blockNumber).toBe(mined.blockNumber);
    expect(await t.provider.getBlockNumber()).toBe(mined.blockNumber + 3);
    expect(outbox.all()[0].status).toBe('mined');
    expect(client(outbox, { finalityDepth: 3 }).finalityDepth).toBe(3);
    expect(() => client(outbox, { finalityDepth: -1 })).toThrow('finalityDepth');
  });
});
