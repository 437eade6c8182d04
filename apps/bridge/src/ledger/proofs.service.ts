import { Inject, Injectable } from '@nestjs/common';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import {
  type ConsistencyProofDocument,
  inclusionProof,
  type LedgerEventRecord,
  type ProofBundle,
  toHashHex,
} from '@fhir-trail/ledger';
import { type Checkpoint, type LedgerEventRow, Store } from '@fhir-trail/store';
import { STORE } from '@fhir-trail/runtime';
import { CheckpointsService } from './checkpoints.service';

/**
 * Proof bundles for the ledger events about one resource: `pending` until a checkpoint covering
 * the leaf is anchored, then `anchored` with the inclusion path to the newest anchored head and,
 * on request, the consistency proof from an earlier checkpoint to that head.
 */
@Injectable()
export class ProofsService {
  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly checkpoints: CheckpointsService,
  ) {}

  /**
   * @param consistencyFrom an earlier checkpoint size: anchored bundles then carry the consistency
   * proof from it to their head (404 when it is not a checkpoint, 400 when it is past the head).
   */
  async forResource(
    sourceId: string,
    resourceType: string,
    resourceId: string,
    consistencyFrom?: number,
  ): Promise<ProofBundle[]> {
    const [events, checkpoint] = await Promise.all([
      this.store.ledger.eventsForResource(sourceId, resourceType, resourceId),
      this.store.ledger.latestCheckpoint(),
    ]);
    const consistency =
      consistencyFrom === undefined || checkpoint === undefined || events.length === 0
        ? undefined
        : await this.consistencyTo(consistencyFrom, checkpoint);
    return Promise.all(events.map((event) => this.bundle(event, checkpoint, consistency)));
  }

  /** Proof bundles of the given ledger events against the newest anchored checkpoint. */
  async forEvents(events: readonly LedgerEventRow[]): Promise<ProofBundle[]> {
    const checkpoint = await this.store.ledger.latestCheckpoint();
    return Promise.all(events.map((event) => this.bundle(event, checkpoint, undefined)));
  }

  private async consistencyTo(from: number, head: Checkpoint): Promise<ConsistencyProofDocument> {
    if (from > head.treeSize) {
      throw new FhirRequestError(
        400,
        operationOutcome([
          outcomeIssue({
            code: 'value',
            text: `\`consistencyFrom\` is past the newest anchored checkpoint (${head.treeSize} leaves)`,
            expression: 'consistencyFrom',
          }),
        ]),
      );
    }
    const lookup = await this.checkpoints.consistency(from, head.treeSize);
    if (!lookup.found) {
      throw new FhirRequestError(
        404,
        operationOutcome([
          outcomeIssue({
            code: 'not-found',
            text: '`consistencyFrom` is not the tree size of an anchored checkpoint (see GET /ledger/checkpoints)',
            expression: 'consistencyFrom',
          }),
        ]),
      );
    }
    return lookup.proof;
  }

  private async bundle(
    event: LedgerEventRow,
    checkpoint: Checkpoint | undefined,
    consistency: ConsistencyProofDocument | undefined,
  ): Promise<ProofBundle> {
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
      ...(consistency === undefined ? {} : { consistency }),
    };
  }
}
