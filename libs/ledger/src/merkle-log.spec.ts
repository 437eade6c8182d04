import { createHash } from 'node:crypto';
import { InMemoryMerkleLog } from './in-memory-merkle-log';
import { isLedgerError } from './ledger-error';
import { EMPTY_TREE_ROOT_HEX, emptyTreeRoot, leafHash, nodeHash } from './merkle-hash';
import {
  type MerkleNodeReader,
  type NodeKey,
  appendLeaves,
  consistencyProof,
  consistencyProofKeys,
  frontierKeys,
  inclusionProof,
  inclusionProofKeys,
  loadFrontier,
  nodeKeyId,
  rootFromFrontier,
  treeRoot,
} from './merkle-log';
import { verifyConsistency, verifyInclusion } from './merkle-proof';

const hex = (h: string): Buffer => Buffer.from(h, 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/**
 * Known-answer vectors from an independent implementation: transparency-dev/merkle (Go, the
 * library behind Trillian and the Go checksum database), RFC 6962/9162 hashing.
 *   testonly/constants.go @ 582a6ad190b6848f1d26f8bf08ddef29955d9db1: LeafInputs, NodeHashes, RootHashes
 *   proof/verify_test.go @ 02194e9afb6c1d95b5381350007963aa70fff472: inclusionProofs (leaf numbers
 *   there are 1-based), consistencyProofs
 */
const LEAF_INPUTS = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(hex);
const NODE_HASHES: readonly (readonly string[])[] = [
  [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
    '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
  ],
  [
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
  ],
  [
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ],
  ['5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'],
];
/** Indexed by tree size, 0..8. */
const ROOT_HASHES = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
/** [leafIndex (0-based), treeSize, path]. */
const INCLUSION_VECTORS: readonly [number, number, readonly string[]][] = [
  [0, 1, []],
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [
    1,
    5,
    [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
];
/** [size1, size2, proof]. */
const CONSISTENCY_VECTORS: readonly [number, number, readonly string[]][] = [
  [1, 1, []],
  [
    1,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    6,
    8,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [
    2,
    5,
    [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
  [
    6,
    7,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
];

function knownAnswerLog(): InMemoryMerkleLog {
  const log = new InMemoryMerkleLog();
  log.append(LEAF_INPUTS.map((entry) => leafHash(entry)));
  return log;
}

function sameHashes(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  return a.length === b.length && a.every((h, i) => h.equals(b[i]));
}

function flipped(hash: Uint8Array, byte = 0): Buffer {
  const copy = Buffer.from(hash);
  copy[byte] = (copy[byte] ?? 0) ^ 0x10;
  return copy;
}

describe('RFC 9162 hashing', () => {
  it('hashes leaves as SHA-256(0x00 || entry) and nodes as SHA-256(0x01 || l || r)', () => {
    expect(toHex(leafHash(Buffer.alloc(0)))).toBe(NODE_HASHES[0]?.[0]);
    const [l, r] = [leafHash(LEAF_INPUTS[0]), leafHash(LEAF_INPUTS[1])];
    expect(toHex(nodeHash(l, r))).toBe(NODE_HASHES[1]?.[0]);
    const manual = createHash('sha256')
      .update(Buffer.from([1]))
      .update(l)
      .update(r)
      .digest();
    expect(nodeHash(l, r).equals(manual)).toBe(true);
  });

  it('gives SHA-256("") for the empty tree', () => {
    expect(`0x${toHex(emptyTreeRoot())}`).toBe(EMPTY_TREE_ROOT_HEX);
    expect(toHex(rootFromFrontier([]))).toBe(ROOT_HASHES[0]);
  });
});

describe('Merkle log against transparency-dev/merkle vectors', () => {
  it('stores every complete aligned subtree with the reference node hashes', async () => {
    const log = knownAnswerLog();
    const keys: NodeKey[] = NODE_HASHES.flatMap((level, l) => level.map((_, index) => ({ level: l, index })));
    const found = await log.getNodes(keys);
    expect(log.nodeCount).toBe(15);
    for (const key of keys) {
      expect(toHex(found.get(nodeKeyId(key)) as Buffer)).toBe(NODE_HASHES[key.level]?.[key.index]);
    }
  });

  it('reproduces the root of every size 0..8, appending one leaf at a time and reading back', async () => {
    const log = new InMemoryMerkleLog();
    expect(toHex(await treeRoot(log, 0))).toBe(ROOT_HASHES[0]);
    for (const [i, entry] of LEAF_INPUTS.entries()) {
      expect(toHex(log.append([leafHash(entry)]).root)).toBe(ROOT_HASHES[i + 1]);
    }
    for (let size = 0; size <= 8; size += 1) {
      expect(toHex(await treeRoot(log, size))).toBe(ROOT_HASHES[size]);
    }
  });

  it.each(INCLUSION_VECTORS)('inclusion proof of leaf %i in tree %i', async (index, size, expected) => {
    const log = knownAnswerLog();
    const proof = await inclusionProof(log, index, size);
    expect(proof.map(toHex)).toEqual(expected);
    const leaf = leafHash(LEAF_INPUTS[index]);
    const root = hex(ROOT_HASHES[size]);
    expect(verifyInclusion(leaf, index, size, proof, root)).toBe(true);
    // The corruptions transparency-dev/merkle probes (verify_test.go, corruptInclusionProof).
    expect(verifyInclusion(leaf, index + 1, size, proof, root)).toBe(false);
    expect(verifyInclusion(leaf, index ^ 2, size, proof, root)).toBe(false);
    expect(verifyInclusion(leaf, index, size * 2, proof, root)).toBe(false);
    expect(verifyInclusion(leaf, index, Math.floor(size / 2), proof, root)).toBe(false);
    expect(verifyInclusion(flipped(leaf), index, size, proof, root)).toBe(false);
    expect(verifyInclusion(leaf, index, size, proof, emptyTreeRoot())).toBe(false);
    expect(verifyInclusion(leaf, index, size, [...proof, root], root)).toBe(false);
    expect(verifyInclusion(leaf, index, size, [root, ...proof], root)).toBe(false);
    expect(verifyInclusion(leaf, index, size, [...proof, Buffer.alloc(0)], root)).toBe(false);
    proof.forEach((_, i) => {
      const bad = proof.map((p, j) => (i === j ? flipped(p) : p));
      expect(verifyInclusion(leaf, index, size, bad, root)).toBe(false);
    });
    if (proof.length > 0) {
      expect(verifyInclusion(leaf, index, size, proof.slice(0, -1), root)).toBe(false);
    }
  });

  it.each(CONSISTENCY_VECTORS)('consistency proof from %i to %i', async (m, n, expected) => {
    const log = knownAnswerLog();
    const proof = await consistencyProof(log, m, n);
    expect(proof.map(toHex)).toEqual(expected);
    const [root1, root2] = [hex(ROOT_HASHES[m]), hex(ROOT_HASHES[n])];
    expect(verifyConsistency(m, n, proof, root1, root2)).toBe(true);
    if (proof.length > 0) {
      expect(verifyConsistency(m - 1, n, proof, root1, root2)).toBe(false);
      expect(verifyConsistency(m + 1, n, proof, root1, root2)).toBe(false);
      expect(verifyConsistency(m, n * 2, proof, root1, root2)).toBe(false);
      expect(verifyConsistency(m, n, proof, root2, root1)).toBe(false);
      expect(verifyConsistency(m, n, [], root1, root2)).toBe(false);
      expect(verifyConsistency(m, n, [...proof, root1], root1, root2)).toBe(false);
      expect(verifyConsistency(m, n, [root2, ...proof], root1, root2)).toBe(false);
      expect(verifyConsistency(m, n, proof.slice(0, -1), root1, root2)).toBe(false);
    }
  });

  it('treats the degenerate consistency cases like RFC 9162', () => {
    const [root1, root2] = [hex(ROOT_HASHES[1]), hex(ROOT_HASHES[2])];
    expect(verifyConsistency(0, 0, [], root1, root1)).toBe(true);
    expect(verifyConsistency(0, 5, [], root1, root2)).toBe(true);
    expect(verifyConsistency(1, 1, [], root1, root2)).toBe(false);
    expect(verifyConsistency(2, 1, [], root1, root2)).toBe(false);
    expect(verifyConsistency(1, 1, [root1], root1, root1)).toBe(false);
    expect(verifyConsistency(1, 2, [], root1, root2)).toBe(false);
  });
});

/** RFC 9162 §2.1 definitions written out recursively: the slow, obviously-correct reference. */
class ReferenceTree {
  private readonly memo = new Map<string, Buffer>();

  constructor(private readonly leaves: readonly Buffer[]) {}

  mth(start: number, end: number): Buffer {
    const key = `${start}-${end}`;
    let hash = this.memo.get(key);
    if (hash === undefined) {
      const n = end - start;
      if (n === 0) {
        hash = emptyTreeRoot();
      } else if (n === 1) {
        hash = this.leaves[start];
      } else {
        const k = split(n);
        hash = nodeHash(this.mth(start, start + k), this.mth(start + k, end));
      }
      this.memo.set(key, hash);
    }
    return hash;
  }

  path(m: number, start: number, end: number): Buffer[] {
    const n = end - start;
    if (n === 1) {
      return [];
    }
    const k = split(n);
    return m < k
      ? [...this.path(m, start, start + k), this.mth(start + k, end)]
      : [...this.path(m - k, start + k, end), this.mth(start, start + k)];
  }

  subproof(m: number, start: number, end: number, b: boolean): Buffer[] {
    const n = end - start;
    if (m === n) {
      return b ? [] : [this.mth(start, end)];
    }
    const k = split(n);
    return m <= k
      ? [...this.subproof(m, start, start + k, b), this.mth(start + k, end)]
      : [...this.subproof(m - k, start + k, end, false), this.mth(start, start + k)];
  }
}

function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Deterministic pseudo-random sizes (LCG), so failures reproduce. */
function* chunkSizes(seed: number): Generator<number> {
  let state = seed;
  for (;;) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    yield 1 + (state % 9);
  }
}

describe('Merkle log properties, all sizes 1..70', () => {
  const MAX = 70;
  const leaves = Array.from({ length: MAX }, (_, i) => leafHash(Buffer.from(`event-${i}`)));
  const reference = new ReferenceTree(leaves);
  const log = new InMemoryMerkleLog();
  log.append(leaves);

  it('computes the reference root for every size, and append agrees however leaves are batched', async () => {
    const batched = new InMemoryMerkleLog();
    const sizes = chunkSizes(42);
    while (batched.treeSize < MAX) {
      const take = Math.min(sizes.next().value as number, MAX - batched.treeSize);
      const result = batched.append(leaves.slice(batched.treeSize, batched.treeSize + take));
      expect(result.root.equals(reference.mth(0, result.treeSize))).toBe(true);
      expect(result.frontier.map(nodeKeyId)).toEqual(frontierKeys(result.treeSize).map(nodeKeyId));
    }
    expect(batched.nodeCount).toBe(log.nodeCount);
    for (let size = 0; size <= MAX; size += 1) {
      expect((await treeRoot(log, size)).equals(reference.mth(0, size))).toBe(true);
      expect((await treeRoot(batched, size)).equals(reference.mth(0, size))).toBe(true);
    }
  });

  // These loops check thousands of cases; they collect failures instead of calling expect() for
  // each one, which keeps the suite fast and the failure message readable.
  it('proves every leaf in every later tree size with O(log n) nodes read in one call', async () => {
    const failures: string[] = [];
    const check = (ok: boolean, what: string): void => {
      if (!ok) failures.push(what);
    };
    for (let size = 1; size <= MAX; size += 1) {
      const root = reference.mth(0, size);
      for (let index = 0; index < size; index += 1) {
        const at = `leaf ${index} of ${size}`;
        const reads = log.readCount;
        const proof = await inclusionProof(log, index, size);
        check(log.readCount - reads === (size === 1 ? 0 : 1), `${at}: one getNodes call`);
        check(sameHashes(proof, reference.path(index, 0, size)), `${at}: path equals the RFC definition`);
        check(
          inclusionProofKeys(index, size).length <= 2 * Math.ceil(Math.log2(size)),
          `${at}: O(log n) nodes`,
        );
        const leaf = leaves[index];
        check(verifyInclusion(leaf, index, size, proof, root), `${at}: verifies`);
        check(!verifyInclusion(flipped(leaf, 31), index, size, proof, root), `${at}: flipped leaf fails`);
        check(!verifyInclusion(leaf, index, size, proof, flipped(root, 7)), `${at}: flipped root fails`);
        proof.forEach((_, i) => {
          const bad = proof.map((p, j) => (i === j ? flipped(p, (index + i) % 32) : p));
          check(!verifyInclusion(leaf, index, size, bad, root), `${at}: flipped path[${i}] fails`);
        });
        if (size > 1) {
          check(!verifyInclusion(leaf, (index + 1) % size, size, proof, root), `${at}: wrong index fails`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('proves consistency between every pair of sizes 0 <= m <= n <= 70', async () => {
    const failures: string[] = [];
    const check = (ok: boolean, what: string): void => {
      if (!ok) failures.push(what);
    };
    for (let n = 0; n <= MAX; n += 1) {
      const root2 = reference.mth(0, n);
      for (let m = 0; m <= n; m += 1) {
        const at = `${m} -> ${n}`;
        const root1 = reference.mth(0, m);
        const proof = await consistencyProof(log, m, n);
        check(
          sameHashes(proof, m === 0 ? [] : reference.subproof(m, 0, n, true)),
          `${at}: equals the RFC definition`,
        );
        check(
          consistencyProofKeys(m, n).length <= 2 * Math.ceil(Math.log2(Math.max(n, 2))),
          `${at}: O(log n) nodes`,
        );
        check(verifyConsistency(m, n, proof, root1, root2), `${at}: verifies`);
        if (m > 0 && m < n) {
          check(!verifyConsistency(m, n, proof, flipped(root1, 3), root2), `${at}: flipped root1 fails`);
          check(!verifyConsistency(m, n, proof, root1, flipped(root2, 3)), `${at}: flipped root2 fails`);
          proof.forEach((_, i) => {
            const bad = proof.map((p, j) => (i === j ? flipped(p, (m + i) % 32) : p));
            check(!verifyConsistency(m, n, bad, root1, root2), `${at}: flipped proof[${i}] fails`);
          });
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('reads the frontier back from storage and continues appending from it', async () => {
    const frontier = await loadFrontier(log, 37);
    const continued = appendLeaves(37, frontier, leaves.slice(37));
    expect(continued.root.equals(reference.mth(0, MAX))).toBe(true);
    const stored = await log.getNodes(continued.nodes);
    for (const node of continued.nodes) {
      expect(stored.get(nodeKeyId(node))?.equals(node.hash)).toBe(true);
    }
  });
});

describe('Merkle log errors', () => {
  const log = knownAnswerLog();

  it('rejects a leaf index outside the tree and a shrinking consistency proof', async () => {
    await expect(inclusionProof(log, 8, 8)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(inclusionProof(log, -1, 8)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(consistencyProof(log, 5, 4)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(() => inclusionProofKeys(1.5, 8)).toThrow(/safe integer/);
  });

  it('reports a node missing from the store by its key', async () => {
    const holey: MerkleNodeReader = {
      getNodes: async (keys) => {
        const found = new Map(await log.getNodes(keys));
        found.delete('1:1');
        return found;
      },
    };
    const error: unknown = await inclusionProof(holey, 0, 8).catch((e: unknown) => e);
    expect(isLedgerError(error, 'MISSING_NODE')).toBe(true);
    expect(isLedgerError(error) && error.details).toEqual({ level: 1, index: 1 });
  });

  it('refuses a frontier that does not belong to the previous size', () => {
    const good = appendLeaves(0, [], [leafHash(Buffer.from('a')), leafHash(Buffer.from('b'))]);
    expect(() => appendLeaves(3, good.frontier, [])).toThrow(/frontier of 2 nodes/);
    expect(() => appendLeaves(2, [{ level: 0, index: 0, hash: good.root }], [])).toThrow(/frontier\[0\]/);
    expect(() => appendLeaves(2, good.frontier, [Buffer.alloc(31)])).toThrow(/32 bytes/);
  });
});
