import { bumpedFees } from './transaction-sender';

describe('bumpedFees (replacement of a stuck transaction)', () => {
  it('raises both fees by 12.5 %, rounded up, so nodes accept the replacement (they want at least 10 %)', () => {
    expect(
      bumpedFees(
        { type: 2, maxFeePerGas: 1_000_000_001n, maxPriorityFeePerGas: 1_000n },
        { type: 2, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n },
      ),
    ).toEqual({ type: 2, maxFeePerGas: 1_125_000_002n, maxPriorityFeePerGas: 1_125n });
  });

  it('takes the current fees when they rose more than that, and keeps max fee ≥ priority fee', () => {
    expect(
      bumpedFees(
        { type: 2, maxFeePerGas: 100n, maxPriorityFeePerGas: 10n },
        { type: 2, maxFeePerGas: 150n, maxPriorityFeePerGas: 200n },
      ),
    ).toEqual({ type: 2, maxFeePerGas: 200n, maxPriorityFeePerGas: 200n });
  });

  it('keeps the transaction type, and stays at zero on a free-gas network (nothing to bump)', () => {
    expect(
      bumpedFees(
        { type: 0, maxFeePerGas: 0n, maxPriorityFeePerGas: 0n },
        { type: 0, maxFeePerGas: 0n, maxPriorityFeePerGas: 0n },
      ),
    ).toEqual({ type: 0, maxFeePerGas: 0n, maxPriorityFeePerGas: 0n });
  });
});
