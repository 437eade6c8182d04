import { Inject, Injectable } from '@nestjs/common';
import { inclusionProof, type LedgerEventRecord, type ProofBundle, toHashHex } from '@fhir-trail/ledger';
import { type Checkpoint, type LedgerEventRow, Store } from '@fhir-trail/store';
import { STORE } from '@fhir-trail/runtime';

/**
 * Proof bundles for the ledger events about one resource: `pending` until a checkpoint covering
 * the leaf is anchored, then `anchored` with the inclusion path to the newest anchored head.
 */
@Injectable()
export class ProofsService {
  constructor(@Inject(STORE) private readonly store: Store) {}

  async forResource(sourceId: string, resourceType: string, resourceId: string): Promise<ProofBundle[]> {
    const [events, checkpoint] = await Promise.all([
      this.store.ledger.eventsForResource(sourceId, resourceType, resourceId),
      this.store.ledger.latestCheckpoint(),
    ]);
    return Promise.all(events.map((event) => this.bundle(event, checkpoint)));
  }

  private async bundle(event: LedgerEventRow, checkpoint: Checkpoint | undefined): Promise<ProofBundle> {
    const base = {
      format: 'fhir-trail/proof-bundle@1' as const,
      event: JSON.parse(event.record) as LedgerEventRecord,
      leafHash: toHashHex(event.leafHash),
      leafIndex: event.leafIndex,
    };
    if (event.leafIndex === null || !checkpoint || event.leafIndex >= checkpoint.treeSize) {
      return { ...base, status: 'pending', treeSize: null, inclusionPath: [], root: null, anchor: null };
    }
    const path = await inclusionProof(
      { getNodes: (keys) => this.store.ledger.getNodes(keys) },
      event.leafIndex,
      checkpoint.treeSize,
    );
    return {
      ...base,
      status: 'anchored',
      treeSize: checkpoint.treeSize,
      inclusionPath: path.map(toHashHex),
      root: toHashHex(checkpoint.root),
      anchor: {
        chainId: checkpoint.chainId,
        contract: checkpoint.contract,
        txHash: checkpoint.txHash,
        blockNumber: checkpoint.blockNumber,
        blockHash: checkpoint.blockHash,
        logIndex: checkpoint.logIndex,
      },
    };
  }
}
