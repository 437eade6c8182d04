/**
 * RFC 9162 Merkle log over a store of complete aligned subtrees.
 *
 * Node (level L, index i) is the root of the perfect subtree over leaves [i·2^L, (i+1)·2^L); level 0
 * holds the leaf hashes. Those nodes never change once complete, so a store only ever inserts.
 * Every subtree the RFC 9162 definitions need (MTH of D[a:b]) is either such a node or, on the
 * right edge of a tree, a partial subtree that is folded from its aligned decomposition. Any proof
 * or root therefore needs O(log n) stored nodes, which are fetched in one `getNodes` call.
 */
import { HASH_SIZE, emptyTreeRoot, nodeHash } from './merkle-hash';
import { LedgerError } from './ledger-error';

/** Address of a stored node: the complete aligned subtree (level, index). */
export interface NodeKey {
  readonly level: number;
  readonly index: number;
}

/** A stored node with its hash. */
export interface MerkleNode extends NodeKey {
  readonly hash: Buffer;
}

/** Reads stored nodes, keyed by {@link nodeKeyId} (`"level:index"`). Missing nodes are simply absent. */
export interface MerkleNodeReader {
  getNodes(keys: readonly NodeKey[]): Promise<ReadonlyMap<string, Buffer>>;
}

/** What {@link appendLeaves} produced. */
export interface AppendResult {
  /** Every newly completed aligned subtree, leaves (level 0) included, in creation order. */
  readonly nodes: readonly MerkleNode[];
  readonly treeSize: number;
  readonly root: Buffer;
  /** The perfect subtrees along the right edge of the new tree, largest (leftmost) first. */
  readonly frontier: readonly MerkleNode[];
}

/** A half-open leaf range [start, end) that RFC 9162 hashes as one subtree (MTH(D[start:end])). */
type LeafRange = readonly [start: number, end: number];

/** The map key of a node: `${level}:${index}`. */
export function nodeKeyId(key: NodeKey): string {
  return `${key.level}:${key.index}`;
}

/**
 * The stored nodes that make up the right edge of a tree of `treeSize` leaves (one per set bit of
 * the size, largest first). They are also exactly the nodes needed for the tree's root.
 */
export function frontierKeys(treeSize: number): NodeKey[] {
  requireSize(treeSize, 'treeSize');
  return treeSize === 0 ? [] : rangeKeys([0, treeSize]);
}

/**
 * Appends leaf hashes to a tree of `previousSize` leaves whose right edge is `frontier` (as returned
 * by the previous append or {@link loadFrontier}). Returns the nodes to store, the new size and
 * root, and the new frontier. Pure: nothing is read besides the arguments.
 */
export function appendLeaves(
  previousSize: number,
  frontier: readonly MerkleNode[],
  newLeafHashes: readonly Uint8Array[],
): AppendResult {
  const expected = frontierKeys(previousSize);
  if (frontier.length !== expected.length) {
    throw new LedgerError(
      'INVALID_ARGUMENT',
      `a tree of ${previousSize} leaves has a frontier of ${expected.length} nodes, got ${frontier.length}`,
    );
  }
  expected.forEach((key, i) => {
    const node = frontier[i];
    if (node.level !== key.level || node.index !== key.index || node.hash.length !== HASH_SIZE) {
      throw new LedgerError(
        'INVALID_ARGUMENT',
        `frontier[${i}] must be the 32-byte node ${nodeKeyId(key)}, got ${nodeKeyId(node)}`,
      );
    }
  });
  const stack: MerkleNode[] = [...frontier];
  const nodes: MerkleNode[] = [];
  let size = previousSize;
  for (const hash of newLeafHashes) {
    if (hash.length !== HASH_SIZE) {
      throw new LedgerError('INVALID_ARGUMENT', `leaf hash ${size} must be 32 bytes, got ${hash.length}`);
    }
    let node: MerkleNode = { level: 0, index: size, hash: Buffer.from(hash) };
    nodes.push(node);
    for (let top = stack.at(-1); top !== undefined && top.level === node.level; top = stack.at(-1)) {
      stack.pop();
      node = { level: node.level + 1, index: top.index / 2, hash: nodeHash(top.hash, node.hash) };
      nodes.push(node);
    }
    stack.push(node);
    size += 1;
  }
  requireSize(size, 'new tree size');
  return { nodes, treeSize: size, root: rootFromFrontier(stack), frontier: stack };
}

/** The root of a tree from its right-edge perfect subtrees (largest first); the empty-tree root for none. */
export function rootFromFrontier(frontier: readonly { readonly hash: Uint8Array }[]): Buffer {
  return foldRight(frontier.map((node) => node.hash));
}

/** The stored nodes needed for the inclusion proof of `leafIndex` in a tree of `treeSize` leaves. */
export function inclusionProofKeys(leafIndex: number, treeSize: number): NodeKey[] {
  return inclusionRanges(leafIndex, treeSize).flatMap(rangeKeys);
}

/** The stored nodes needed for the consistency proof between trees of `m` and `n` leaves. */
export function consistencyProofKeys(m: number, n: number): NodeKey[] {
  return consistencyRanges(m, n).flatMap(rangeKeys);
}

/**
 * RFC 9162 §2.1.3.1 inclusion proof (audit path) of leaf `leafIndex` in the tree of `treeSize`
 * leaves, bottom-up. Reads the O(log n) nodes it needs in one `getNodes` call.
 */
export async function inclusionProof(
  reader: MerkleNodeReader,
  leafIndex: number,
  treeSize: number,
): Promise<Buffer[]> {
  return foldRanges(reader, inclusionRanges(leafIndex, treeSize));
}

/**
 * RFC 9162 §2.1.4.1 consistency proof between the trees of `m` and `n` leaves (0 ≤ m ≤ n). Empty
 * when m is 0 or m equals n. Reads the nodes it needs in one `getNodes` call.
 */
export async function consistencyProof(reader: MerkleNodeReader, m: number, n: number): Promise<Buffer[]> {
  return foldRanges(reader, consistencyRanges(m, n));
}

/** The root of the tree of the first `size` leaves (any size up to the log's), in one `getNodes` call. */
export async function treeRoot(reader: MerkleNodeReader, size: number): Promise<Buffer> {
  const keys = frontierKeys(size);
  if (keys.length === 0) {
    return emptyTreeRoot();
  }
  const found = await reader.getNodes(keys);
  return foldRight(keys.map((key) => requireNode(found, key)));
}

/** Reads the frontier of a tree of `size` leaves, ready for {@link appendLeaves}. */
export async function loadFrontier(reader: MerkleNodeReader, size: number): Promise<MerkleNode[]> {
  const keys = frontierKeys(size);
  if (keys.length === 0) {
    return [];
  }
  const found = await reader.getNodes(keys);
  return keys.map((key) => ({ ...key, hash: requireNode(found, key) }));
}

/** PATH(m, D[n]) as leaf ranges, bottom-up (RFC 9162 §2.1.3.1, unrolled). */
function inclusionRanges(leafIndex: number, treeSize: number): LeafRange[] {
  requireSize(treeSize, 'treeSize');
  requireSize(leafIndex, 'leafIndex');
  if (leafIndex >= treeSize) {
    throw new LedgerError(
      'INVALID_ARGUMENT',
      `leafIndex ${leafIndex} is not in a tree of ${treeSize} leaves`,
    );
  }
  const topDown: LeafRange[] = [];
  let start = 0;
  let end = treeSize;
  while (end - start > 1) {
    const split = start + largestPowerOfTwoBelow(end - start);
    if (leafIndex < split) {
      topDown.push([split, end]);
      end = split;
    } else {
      topDown.push([start, split]);
      start = split;
    }
  }
  return topDown.reverse();
}

/** PROOF(m, D[n]) as leaf ranges, bottom-up (RFC 9162 §2.1.4.1 SUBPROOF, unrolled). */
function consistencyRanges(m: number, n: number): LeafRange[] {
  requireSize(n, 'n');
  requireSize(m, 'm');
  if (m > n) {
    throw new LedgerError('INVALID_ARGUMENT', `no consistency proof from ${m} leaves to fewer (${n})`);
  }
  if (m === 0 || m === n) {
    return [];
  }
  const topDown: LeafRange[] = [];
  let start = 0;
  let end = n;
  let complete = true; // SUBPROOF's flag b: still on the left edge, where D[m] itself is known
  for (;;) {
    const width = end - start;
    const relative = m - start;
    if (relative === width) {
      if (!complete) {
        topDown.push([start, end]);
      }
      break;
    }
    const k = largestPowerOfTwoBelow(width);
    if (relative <= k) {
      topDown.push([start + k, end]);
      end = start + k;
    } else {
      topDown.push([start, start + k]);
      start += k;
      complete = false;
    }
  }
  return topDown.reverse();
}

/**
 * The aligned perfect subtrees that make up MTH(D[start:end]), left to right. Ranges produced by
 * the RFC 9162 recursion start on a multiple of the next power of two ≥ their width, so greedy
 * decomposition yields stored nodes.
 */
function rangeKeys([start, end]: LeafRange): NodeKey[] {
  const keys: NodeKey[] = [];
  let position = start;
  while (position < end) {
    let width = 1;
    let level = 0;
    while (width * 2 <= end - position) {
      width *= 2;
      level += 1;
    }
    keys.push({ level, index: position / width });
    position += width;
  }
  return keys;
}

async function foldRanges(reader: MerkleNodeReader, ranges: readonly LeafRange[]): Promise<Buffer[]> {
  if (ranges.length === 0) {
    return [];
  }
  const keysPerRange = ranges.map(rangeKeys);
  const found = await reader.getNodes(keysPerRange.flat());
  return keysPerRange.map((keys) => foldRight(keys.map((key) => requireNode(found, key))));
}

/** Hash of a left-to-right list of adjacent subtrees, folded from the right (how RFC 9162 splits). */
function foldRight(hashes: readonly Uint8Array[]): Buffer {
  const last = hashes.at(-1);
  if (last === undefined) {
    return emptyTreeRoot();
  }
  let acc: Buffer = Buffer.from(last);
  for (let i = hashes.length - 2; i >= 0; i -= 1) {
    acc = nodeHash(hashes[i], acc);
  }
  return acc;
}

function requireNode(found: ReadonlyMap<string, Buffer>, key: NodeKey): Buffer {
  const hash = found.get(nodeKeyId(key));
  if (hash === undefined || hash.length !== HASH_SIZE) {
    throw new LedgerError('MISSING_NODE', `Merkle node ${nodeKeyId(key)} is not in the node store`, {
      details: { level: key.level, index: key.index },
    });
  }
  return hash;
}

/** Largest power of two strictly below `n` (n ≥ 2). Arithmetic, not bit operators: sizes may exceed 2^31. */
function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) {
    k *= 2;
  }
  return k;
}

function requireSize(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new LedgerError('INVALID_ARGUMENT', `${name} must be a non-negative safe integer, got ${value}`);
  }
}
