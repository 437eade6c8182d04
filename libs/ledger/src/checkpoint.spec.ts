import { type AnchoredCheckpoint, anchoredCheckpoint, parseAnchoredCheckpoint } from './checkpoint';
import {
  type ConsistencyProofDocument,
  consistencyProofDocument,
  parseConsistencyProof,
} from './consistency-proof';
import { type LedgerEventRecord, eventLeafHash } from './event-record';
import { isLedgerError } from './ledger-error';
import { anchoredProofBundle, parseProofBundle } from './proof-bundle';

const H = (byte: string): string => `0x${byte.repeat(32)}`;
const ANCHOR = {
  chainId: '31337',
  contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
  txHash: H('aa'),
  blockNumber: 12,
  blockHash: H('bb'),
  logIndex: 0,
};
const CHECKPOINT: AnchoredCheckpoint = anchoredCheckpoint({
  treeSize: 9,
  root: Buffer.alloc(32, 9),
  previousSize: 4,
  previousRoot: Buffer.alloc(32, 4),
  manifestHash: Buffer.alloc(32, 0xcc),
  // An AnchorReceipt has more fields than a reference: only the reference's are kept.
  anchor: { ...ANCHOR, gasUsed: 38_435, recovered: false } as typeof ANCHOR,
  anchoredAt: new Date('2026-11-25T06:51:00.000Z'),
});
const CONSISTENCY: ConsistencyProofDocument = consistencyProofDocument({
  fromSize: 4,
  fromRoot: Buffer.alloc(32, 4),
  toSize: 9,
  toRoot: Buffer.alloc(32, 9),
  consistencyPath: [Buffer.alloc(32, 1), Buffer.alloc(32, 2)],
});

/** A deep copy of `document` with one change at a dotted path (`anchor.txHash`); undefined deletes. */
function changed(document: object, path: string, value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(document)) as Record<string, unknown>;
  const keys = path.split('.');
  let target = copy;
  for (const key of keys.slice(0, -1)) target = target[key] as Record<string, unknown>;
  const last = keys.at(-1) as string;
  if (value === undefined) Reflect.deleteProperty(target, last);
  else target[last] = value;
  return copy;
}

function failure(parse: () => unknown): { code: string; field: unknown; message: string } {
  try {
    parse();
  } catch (error) {
    if (isLedgerError(error)) return { code: error.code, field: error.details.field, message: error.message };
    throw error;
  }
  throw new Error('expected the parse to fail');
}

describe('checkpoint documents', () => {
  it('writes hashes as 0x-hex, keeps only the anchor reference fields, and parses back', () => {
    expect(CHECKPOINT).toEqual({
      format: 'fhir-trail/checkpoint@1',
      treeSize: 9,
      root: H('09'),
      previousSize: 4,
      previousRoot: H('04'),
      manifestHash: H('cc'),
      anchor: ANCHOR,
      anchoredAt: '2026-11-25T06:51:00.000Z',
    });
    const json: unknown = JSON.parse(JSON.stringify(CHECKPOINT));
    expect(parseAnchoredCheckpoint(json)).toEqual(CHECKPOINT);
    expect(parseAnchoredCheckpoint(changed(CHECKPOINT, 'anchoredAt', undefined))).toBeDefined();
  });

  it.each<[string, unknown, string]>([
    ['format', 'fhir-trail/checkpoint@2', 'format'],
    ['treeSize', 0, 'treeSize'],
    ['treeSize', '9', 'treeSize'],
    ['root', H('AB'), 'root'],
    ['previousSize', 9, 'previousSize'],
    ['previousRoot', undefined, 'previousRoot'],
    ['manifestHash', 'cc', 'manifestHash'],
    ['anchor.txHash', H('a'), 'anchor.txHash'],
    ['anchor.chainId', 31337, 'anchor.chainId'],
    ['anchor.contract', '0x5FbDB2315678afecb367f032d93F642f64180aA3', 'anchor.contract'],
    ['anchor.gasUsed', 1, 'anchor.gasUsed'],
    ['anchoredAt', 'yesterday', 'anchoredAt'],
    ['extra', true, 'extra'],
  ])('refuses a checkpoint with a bad %s (%p)', (path, value, field) => {
    expect(failure(() => parseAnchoredCheckpoint(changed(CHECKPOINT, path, value)))).toMatchObject({
      code: 'INVALID_CHECKPOINT',
      field,
    });
  });

  it('refuses what is not an object', () => {
    expect(failure(() => parseAnchoredCheckpoint([CHECKPOINT]))).toMatchObject({
      code: 'INVALID_CHECKPOINT',
      message: 'checkpoint must be a JSON object',
    });
  });
});

describe('consistency proof documents', () => {
  it('writes hashes as 0x-hex and parses back', () => {
    expect(CONSISTENCY).toEqual({
      format: 'fhir-trail/consistency-proof@1',
      fromSize: 4,
      fromRoot: H('04'),
      toSize: 9,
      toRoot: H('09'),
      consistencyPath: [H('01'), H('02')],
    });
    expect(parseConsistencyProof(JSON.parse(JSON.stringify(CONSISTENCY)))).toEqual(CONSISTENCY);
  });

  it.each<[string, unknown, string, RegExp]>([
    ['format', undefined, 'format', /must be "fhir-trail\/consistency-proof@1"/],
    ['fromSize', 0, 'fromSize', /must be an integer ≥ 1/],
    ['fromSize', 10, 'fromSize', /must not exceed toSize \(9\)/],
    ['toSize', 2 ** 53, 'toSize', /integer/],
    ['toRoot', null, 'toRoot', /0x-prefixed lowercase hex/],
    ['consistencyPath', H('01'), 'consistencyPath', /must be an array of hashes/],
    ['consistencyPath', [H('01'), 'x'], 'consistencyPath[1]', /0x-prefixed/],
    ['consistencyPath', Array.from({ length: 131 }, () => H('01')), 'consistencyPath', /at most 130/],
    ['proof', [], 'proof', /is not a field of a consistency proof/],
  ])('refuses a proof with a bad %s', (path, value, field, message) => {
    const problem = failure(() => parseConsistencyProof(changed(CONSISTENCY, path, value)));
    expect(problem).toMatchObject({ code: 'INVALID_CONSISTENCY_PROOF', field });
    expect(problem.message).toMatch(message);
  });
});

describe('proof bundles carrying a consistency proof', () => {
  const event: LedgerEventRecord = {
    v: 1,
    kind: 'provenance',
    eventId: 'evt-7',
    recorded: '2026-11-25T06:51:00.000Z',
    source: 'demo',
    subject: 'Patient',
    actor: 'source:demo',
  };
  const bundle = {
    ...anchoredProofBundle({
      event,
      leafHash: eventLeafHash(event),
      leafIndex: 7,
      treeSize: 9,
      inclusionPath: [Buffer.alloc(32, 1)],
      root: Buffer.alloc(32, 9),
      anchor: ANCHOR,
    }),
    consistency: CONSISTENCY,
  };

  it('accepts one that ends at the bundle head', () => {
    expect(parseProofBundle(JSON.parse(JSON.stringify(bundle)))).toEqual(bundle);
  });

  it.each<[string, unknown, string]>([
    ['consistency.toSize', 8, 'consistency.toSize'],
    ['consistency.toRoot', H('08'), 'consistency.toRoot'],
    ['consistency.fromRoot', 'nope', 'consistency.fromRoot'],
    ['consistency.steps', 1, 'consistency.steps'],
    ['consistency', 'yes', 'consistency'],
  ])('refuses one with a bad %s', (path, value, field) => {
    expect(failure(() => parseProofBundle(changed(bundle, path, value)))).toMatchObject({
      code: 'INVALID_PROOF_BUNDLE',
      field,
    });
  });

  it('refuses one in a pending bundle', () => {
    const pending = {
      ...bundle,
      status: 'pending',
      leafIndex: null,
      treeSize: null,
      inclusionPath: [],
      root: null,
      anchor: null,
    };
    expect(failure(() => parseProofBundle(pending))).toMatchObject({ field: 'consistency' });
  });
});
