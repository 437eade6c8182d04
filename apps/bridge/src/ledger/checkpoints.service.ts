import { Inject, Injectable } from '@nestjs/common';
import {
  type AnchoredCheckpoint,
  type ConsistencyProofDocument,
  anchoredCheckpoint,
  consistencyProof,
  consistencyProofDocument,
  verifyConsistency,
} from '@fhir-trail/ledger';
import { STORE } from '@fhir-trail/runtime';
import type { StoredCheckpoint, Store } from '@fhir-trail/store';

/** What {@link CheckpointsService.consistency} found. */
export type ConsistencyLookup =
  | { readonly found: true; readonly proof: ConsistencyProofDocument }
  | { readonly found: false; readonly missing: readonly ('from' | 'to')[] };

/**
 * The history of anchored tree heads, and RFC 9162 consistency proofs between them, computed from
 * the stored complete subtrees in one `getNodes` round trip (O(log n) nodes).
 */
@Injectable()
export class CheckpointsService {
  constructor(@Inject(STORE) private readonly store: Store) {}

  /** The newest `limit` checkpoints, newest first. */
  async list(limit: number): Promise<AnchoredCheckpoint[]> {
    const checkpoints = await this.store.ledger.listCheckpoints(limit);
    return checkpoints.map(toDocument);
  }

  /**
   * The consistency proof from the checkpoint of `from` leaves to the one of `to` leaves
   * (from ≤ to); both must be anchored checkpoints. The proof is checked against both roots before
   * it is served: a failure means the stored log no longer matches what was anchored.
   */
  async consistency(from: number, to: number): Promise<ConsistencyLookup> {
    const found = await this.store.ledger.checkpointsAt(from === to ? [from] : [from, to]);
    const first = found.find((c) => c.treeSize === from);
    const second = found.find((c) => c.treeSize === to);
    if (first === undefined || second === undefined) {
      const missing: ('from' | 'to')[] = [];
      if (first === undefined) missing.push('from');
      if (second === undefined) missing.push('to');
      return { found: false, missing };
    }
    const path = await consistencyProof({ getNodes: (keys) => this.store.ledger.getNodes(keys) }, from, to);
    if (!verifyConsistency(from, to, path, first.root, second.root)) {
      throw new Error(
        `the stored Merkle nodes do not prove checkpoint ${from} consistent with checkpoint ${to}: the node store no longer matches the anchored heads`,
      );
    }
    return {
      found: true,
      proof: consistencyProofDocument({
        fromSize: from,
        fromRoot: first.root,
        toSize: to,
        toRoot: second.root,
        consistencyPath: path,
      }),
    };
  }
}

function toDocument(checkpoint: StoredCheckpoint): AnchoredCheckpoint {
  return anchoredCheckpoint({
    treeSize: checkpoint.treeSize,
    root: checkpoint.root,
    previousSize: checkpoint.previousSize,
    previousRoot: checkpoint.previousRoot,
    manifestHash: checkpoint.manifestHash,
    anchor: checkpoint,
    anchoredAt: checkpoint.anchoredAt,
  });
}
