import {
  type AppendResult,
  type MerkleNode,
  type MerkleNodeReader,
  type NodeKey,
  appendLeaves,
  nodeKeyId,
} from './merkle-log';

/**
 * A Merkle log kept in a Map, for tests, benchmarks and the CLI. It stores exactly the nodes a
 * database-backed store would (every complete aligned subtree) and serves them through the same
 * {@link MerkleNodeReader} interface, so proofs are computed the same way.
 */
export class InMemoryMerkleLog implements MerkleNodeReader {
  private readonly nodes = new Map<string, Buffer>();
  private frontier: readonly MerkleNode[] = [];
  private size = 0;
  /** How many `getNodes` calls were made (lets tests check the one-round-trip promise). */
  readCount = 0;

  /** Number of leaves in the log. */
  get treeSize(): number {
    return this.size;
  }

  /** Number of stored nodes (leaves included). */
  get nodeCount(): number {
    return this.nodes.size;
  }

  /** Appends leaf hashes (32 bytes each) and returns what a store would persist. */
  append(leafHashes: readonly Uint8Array[]): AppendResult {
    const result = appendLeaves(this.size, this.frontier, leafHashes);
    for (const node of result.nodes) {
      this.nodes.set(nodeKeyId(node), node.hash);
    }
    this.frontier = result.frontier;
    this.size = result.treeSize;
    return result;
  }

  /** {@link MerkleNodeReader.getNodes}: the stored hashes among `keys` (copies). */
  getNodes(keys: readonly NodeKey[]): Promise<ReadonlyMap<string, Buffer>> {
    this.readCount += 1;
    const found = new Map<string, Buffer>();
    for (const key of keys) {
      const id = nodeKeyId(key);
      const hash = this.nodes.get(id);
      if (hash !== undefined) {
        found.set(id, Buffer.from(hash));
      }
    }
    return Promise.resolve(found);
  }
}
