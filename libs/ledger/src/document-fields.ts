/**
 * Shape checks shared by the JSON documents an auditor handles (proof bundles, checkpoints,
 * consistency proofs). Internal: each document's parser names its own error code, and every
 * failure names the first wrong field by its path (`anchor.txHash`, `consistencyPath[2]`).
 */
import { getAddress } from 'ethers';
import { isHashHex } from './hex-encoding';
import { LedgerError, type LedgerErrorCode } from './ledger-error';

/** Fields of an anchor reference (see `AnchorReference` in proof-bundle.ts). */
export const ANCHOR_FIELDS: ReadonlySet<string> = new Set([
  'chainId',
  'contract',
  'txHash',
  'blockNumber',
  'blockHash',
  'logIndex',
]);
export const HEX32 = 'must be 0x-prefixed lowercase hex of 32 bytes';
const CHAIN_ID = /^[1-9][0-9]{0,19}$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** Reports problems with one kind of document, under one error code. */
export class DocumentFields {
  constructor(private readonly code: LedgerErrorCode) {}

  /** Throws the document's error naming `field`. */
  fail(field: string, problem: string): never {
    throw new LedgerError(this.code, `${field} ${problem}`, { details: { field } });
  }

  object(value: unknown, field: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new LedgerError(this.code, `${field} must be a JSON object`, { details: { field } });
    }
    return value as Record<string, unknown>;
  }

  /** Refuses any field of `value` not in `known` (a typo must not pass silently). */
  onlyKnown(value: Record<string, unknown>, known: ReadonlySet<string>, prefix: string, what: string): void {
    for (const field of Object.keys(value)) {
      if (!known.has(field)) this.fail(`${prefix}${field}`, `is not a field of ${what}`);
    }
  }

  hash(value: unknown, field: string): string {
    if (!isHashHex(value)) this.fail(field, HEX32);
    return value;
  }

  count(value: unknown, field: string, minimum = 0): number {
    if (!isCount(value) || value < minimum) {
      this.fail(field, minimum === 0 ? 'must be a non-negative integer' : `must be an integer ≥ ${minimum}`);
    }
    return value;
  }

  hashList(value: unknown, field: string): string[] {
    if (!Array.isArray(value)) this.fail(field, 'must be an array of hashes');
    const list = value as unknown[];
    list.forEach((hash, i) => this.hash(hash, `${field}[${i}]`));
    return list as string[];
  }

  /** Checks an anchor reference (chain id, contract, tx hash, block, log index) at `prefix`. */
  anchor(value: unknown, prefix: string): void {
    const anchor = this.object(value, prefix);
    this.onlyKnown(anchor, ANCHOR_FIELDS, `${prefix}.`, 'an anchor reference');
    const chainId = anchor['chainId'];
    if (typeof chainId !== 'string' || !CHAIN_ID.test(chainId))
      this.fail(`${prefix}.chainId`, 'must be a decimal chain id string, e.g. "31337"');
    if (!isAddress(anchor['contract']))
      this.fail(`${prefix}.contract`, 'must be a 0x-prefixed 20-byte address (lowercase or EIP-55)');
    this.hash(anchor['txHash'], `${prefix}.txHash`);
    this.count(anchor['blockNumber'], `${prefix}.blockNumber`);
    this.hash(anchor['blockHash'], `${prefix}.blockHash`);
    this.count(anchor['logIndex'], `${prefix}.logIndex`);
  }
}

export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isAddress(value: unknown): boolean {
  if (typeof value !== 'string' || !ADDRESS.test(value)) {
    return false;
  }
  if (value === value.toLowerCase() || value === `0x${value.slice(2).toUpperCase()}`) {
    return true;
  }
  try {
    return getAddress(value) === value; // mixed case must be a valid EIP-55 checksum
  } catch {
    return false;
  }
}
