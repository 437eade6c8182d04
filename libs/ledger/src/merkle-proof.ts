/**
 * RFC 9162 proof verification (§2.1.3.2 inclusion, §2.1.4.2 consistency). Pure, no I/O. Both
 * functions answer a boolean: a malformed proof (wrong length, wrong hash size) is just invalid.
 */
import { HASH_SIZE, nodeHash } from './merkle-hash';

/**
 * RFC 9162 §2.1.3.2: true when `path` proves that the leaf with hash `leafHash` is at `index` in
 * the tree of `size` leaves whose root is `root`.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isHash(root)) {
    return false;
  }
  return rootFromInclusionPath(leafHash, index, size, path)?.equals(root) ?? false;
}

/**
 * RFC 9162 §2.1.3.2 without the final comparison: the root that `path` leads to from the leaf at
 * `index` in a tree of `size` leaves, or null when the path cannot belong to such a tree (wrong
 * length, wrong hash size). Compact proof bundles leave the root out and recompute it with this.
 */
export function rootFromInclusionPath(
  leafHash: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
): Buffer | null {
  if (!isSize(index) || !isSize(size) || index >= size) {
    return null;
  }
  if (!isHash(leafHash) || !path.every(isHash)) {
    return null;
  }
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leafHash);
  for (const p of path) {
    if (sn === 0) {
      return null;
    }
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : null;
}

/**
 * RFC 9162 §2.1.4.2: true when `proof` shows that the tree of `m` leaves with root `root1` is a
 * prefix of the tree of `n` leaves with root `root2`. For m = n the proof must be empty and the
 * roots equal; for m = 0 the proof must be empty (every tree extends the empty one).
 */
export function verifyConsistency(
  m: number,
  n: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean {
  if (!isSize(m) || !isSize(n) || m > n || !isHash(root1) || !isHash(root2) || !proof.every(isHash)) {
    return false;
  }
  if (m === n) {
    return proof.length === 0 && Buffer.from(root1).equals(root2);
  }
  if (m === 0) {
    return proof.length === 0;
  }
  // 1. An empty proof cannot link two different sizes.
  if (proof.length === 0) {
    return false;
  }
  // 2. If m is an exact power of 2, D[m] is a node of the larger tree and the proof omits it.
  const path = isPowerOfTwo(m) ? [root1, ...proof] : [...proof];
  // 3-4.
  let fn = m - 1;
  let sn = n - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // 5.
  let fr: Buffer = Buffer.from(path[0]);
  let sr: Buffer = Buffer.from(fr);
  // 6.
  for (const c of path.slice(1)) {
    if (sn === 0) {
      return false;
    }
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // 7.
  return fr.equals(root1) && sr.equals(root2) && sn === 0;
}

function isHash(value: Uint8Array): boolean {
  return value.length === HASH_SIZE;
}

function isSize(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

// Arithmetic rather than bit operators: tree sizes may exceed 2^31.
function isOdd(value: number): boolean {
  return value % 2 === 1;
}

function half(value: number): number {
  return Math.floor(value / 2);
}

function isPowerOfTwo(value: number): boolean {
  let v = value;
  while (v > 1 && !isOdd(v)) {
    v = half(v);
  }
  return v === 1;
}
