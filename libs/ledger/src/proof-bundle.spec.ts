import { type LedgerEventRecord, eventLeafHash } from './event-record';
import { isLedgerError } from './ledger-error';
import {
  type ProofBundle,
  anchoredProofBundle,
  isAnchoredProofBundle,
  parseProofBundle,
} from './proof-bundle';

const EVENT: LedgerEventRecord = {
  v: 1,
  kind: 'provenance',
  eventId: 'evt-7',
  recorded: '2026-11-25T06:51:00.000Z',
  source: 'demo',
  subject: 'Patient',
  resourceDigest: `0x${'11'.repeat(32)}`,
  actor: 'source:demo',
};
const H = (byte: string): string => `0x${byte.repeat(32)}`;

const ANCHORED: ProofBundle = anchoredProofBundle({
  event: EVENT,
  leafHash: eventLeafHash(EVENT),
  leafIndex: 2,
  treeSize: 5,
  inclusionPath: [Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.alloc(32, 3)],
  root: Buffer.alloc(32, 9),
  anchor: {
    chainId: '31337',
    contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    txHash: H('aa'),
    blockNumber: 12,
    blockHash: H('bb'),
    logIndex: 0,
  },
});
const PENDING: ProofBundle = {
  ...ANCHORED,
  status: 'pending',
  leafIndex: null,
  treeSize: null,
  inclusionPath: [],
  root: null,
  anchor: null,
};

/** A deep copy of `bundle` with one change at a dotted path (`anchor.txHash`, `inclusionPath.1`). */
function changed(bundle: ProofBundle, path: string, value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(bundle)) as Record<string, unknown>;
  const keys = path.split('.');
  let target = copy;
  for (const key of keys.slice(0, -1)) target = target[key] as Record<string, unknown>;
  const last = keys.at(-1) as string;
  if (value === undefined) Reflect.deleteProperty(target, last);
  else target[last] = value;
  return copy;
}

function fieldOf(json: unknown): unknown {
  try {
    parseProofBundle(json);
  } catch (error) {
    expect(isLedgerError(error, 'INVALID_PROOF_BUNDLE')).toBe(true);
    return isLedgerError(error) ? error.details['field'] : undefined;
  }
  return 'accepted';
}

describe('parseProofBundle', () => {
  it('accepts anchored and pending bundles as JSON round-trips them', () => {
    const anchored = parseProofBundle(JSON.parse(JSON.stringify(ANCHORED)));
    expect(anchored).toEqual(ANCHORED);
    expect(isAnchoredProofBundle(anchored)).toBe(true);
    expect(anchored.leafHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(anchored.inclusionPath[0]).toBe(H('01'));
    expect(parseProofBundle(JSON.parse(JSON.stringify(PENDING)))).toEqual(PENDING);
    expect(fieldOf(changed(PENDING, 'leafIndex', 4))).toBe('accepted'); // sequenced, not yet anchored
    expect(fieldOf(changed(ANCHORED, 'anchor.contract', '0x5fbdb2315678afecb367f032d93f642f64180aa3'))).toBe(
      'accepted',
    );
  });

  it.each<[string, ProofBundle, string, unknown, string]>([
    ['an unknown format', ANCHORED, 'format', 'fhir-trail/proof-bundle@2', 'format'],
    ['an unknown status', ANCHORED, 'status', 'done', 'status'],
    ['a bad event field', ANCHORED, 'event.kind', 'delete', 'event.kind'],
    ['an extra event field', ANCHORED, 'event.name', 'Peter', 'event.name'],
    ['an uppercase leaf hash', ANCHORED, 'leafHash', H('AB'), 'leafHash'],
    ['a negative leaf index', ANCHORED, 'leafIndex', -1, 'leafIndex'],
    ['a fractional tree size', ANCHORED, 'treeSize', 2.5, 'treeSize'],
    ['an empty tree', ANCHORED, 'treeSize', 0, 'treeSize'],
    ['a short path element', ANCHORED, 'inclusionPath.1', '0x1234', 'inclusionPath[1]'],
    ['a path that is not a list', ANCHORED, 'inclusionPath', H('01'), 'inclusionPath'],
    ['a root without 0x', ANCHORED, 'root', '9'.repeat(64), 'root'],
    ['a numeric chain id', ANCHORED, 'anchor.chainId', 31337, 'anchor.chainId'],
    [
      'a bad address checksum',
      ANCHORED,
      'anchor.contract',
      '0x5FbDB2315678afecb367f032d93F642f64180aA3',
      'anchor.contract',
    ],
    ['a short tx hash', ANCHORED, 'anchor.txHash', '0xaa', 'anchor.txHash'],
    ['a block number as text', ANCHORED, 'anchor.blockNumber', '12', 'anchor.blockNumber'],
    ['a bad block hash', ANCHORED, 'anchor.blockHash', null, 'anchor.blockHash'],
    ['a negative log index', ANCHORED, 'anchor.logIndex', -1, 'anchor.logIndex'],
    ['an extra anchor field', ANCHORED, 'anchor.gasUsed', 1, 'anchor.gasUsed'],
    ['an extra top-level field', ANCHORED, 'note', 'hi', 'note'],
    ['an anchored bundle without root', ANCHORED, 'root', null, 'root'],
    ['an anchored bundle without anchor', ANCHORED, 'anchor', null, 'anchor'],
    ['a leaf outside the tree', ANCHORED, 'leafIndex', 5, 'leafIndex'],
    ['a pending bundle with an anchor', PENDING, 'anchor', ANCHORED.anchor, 'anchor'],
    ['a pending bundle with a path', PENDING, 'inclusionPath', [H('01')], 'inclusionPath'],
    ['a missing event', ANCHORED, 'event', undefined, 'event'],
  ])('refuses %s, naming the field', (_, bundle, path, value, field) => {
    expect(fieldOf(changed(bundle, path, value))).toBe(field);
  });

  it('says what is wrong in the message', () => {
    expect(() => parseProofBundle(changed(ANCHORED, 'anchor.txHash', '0xaa'))).toThrow(
      'anchor.txHash must be 0x-prefixed lowercase hex of 32 bytes',
    );
    expect(() => parseProofBundle('not json')).toThrow('bundle must be a JSON object');
  });
});
