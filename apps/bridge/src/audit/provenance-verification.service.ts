import { Inject, Injectable, Logger } from '@nestjs/common';
import type { OperationOutcome, Parameters } from '@medplum/fhirtypes';
import { operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import {
  type CheckpointVerification,
  type LedgerEventRecord,
  type ProofBundle,
  anchoredCheckpoint,
  anchoredProofBundle,
  isLedgerError,
  toHashHex,
  verifyCheckpoint,
} from '@fhir-trail/ledger';
import {
  type EventVerification,
  LEDGER,
  type LedgerConnection,
  LedgerAuditor,
  type Mismatch,
  STORE,
} from '@fhir-trail/runtime';
import type { StoredCheckpoint, Store } from '@fhir-trail/store';

/** What `$verify` concluded, as the `status` parameter says it. */
export type VerifyOutcome = 'verified' | 'tampered' | 'key-destroyed' | 'pending';

/** How many on-chain checkpoint checks are remembered (by the whole checkpoint, so an altered row misses). */
const CHECKPOINT_CACHE_SIZE = 64;

/**
 * `$verify` of one Provenance: the stored rows against the keyed digests and the leaf (the
 * {@link LedgerAuditor}), the inclusion proof from the stored nodes against the newest anchored
 * checkpoint, and that checkpoint against the chain itself — the stored checkpoint row is not
 * trusted, since whoever could alter the other tables could alter it too.
 */
@Injectable()
export class ProvenanceVerificationService {
  private readonly logger = new Logger(ProvenanceVerificationService.name);
  private readonly onChain = new Map<string, CheckpointVerification>();

  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(LEDGER) private readonly ledger: LedgerConnection,
  ) {}

  /** The `$verify` answer, or undefined when no ledger event has this id. */
  async verify(provenanceId: string): Promise<Parameters | undefined> {
    const verification = await new LedgerAuditor(this.store).verifyEvent(provenanceId);
    // Another kind of event (an erasure, a disclosure) is not a Provenance, unless its row was altered.
    if (!verification || (verification.kind !== 'provenance' && verification.status !== 'tampered')) {
      return undefined;
    }
    const mismatches = [...verification.mismatches];
    let chainWarning: string | undefined;
    if (verification.checkpoint) {
      const checked = await this.checkOnChain(verification.checkpoint);
      if (checked === 'unavailable') {
        chainWarning =
          'the chain endpoint could not be reached: the checkpoint was checked against the stored copy only';
      } else if (!checked.verified) {
        mismatches.push({
          table: 'checkpoints',
          row: `tree_size=${verification.checkpoint.treeSize}`,
          problem: `the checkpoint does not match the chain (${checked.check}: ${checked.reason})`,
        });
      }
    }
    const status: VerifyOutcome = mismatches.length > 0 ? 'tampered' : verification.status;
    const outcome = outcomeOf(status, mismatches, chainWarning);
    const bundle = proofBundle(verification);
    return {
      resourceType: 'Parameters',
      parameter: [
        { name: 'status', valueCode: status },
        { name: 'outcome', resource: outcome },
        ...(bundle
          ? [
              {
                name: 'proof',
                valueAttachment: {
                  contentType: 'application/json',
                  data: Buffer.from(JSON.stringify(bundle), 'utf8').toString('base64'),
                },
              },
            ]
          : []),
      ],
    };
  }

  private async checkOnChain(checkpoint: StoredCheckpoint): Promise<CheckpointVerification | 'unavailable'> {
    const document = anchoredCheckpoint({
      treeSize: checkpoint.treeSize,
      root: checkpoint.root,
      previousSize: checkpoint.previousSize,
      previousRoot: checkpoint.previousRoot,
      manifestHash: checkpoint.manifestHash,
      anchor: checkpoint,
    });
    const cacheKey = JSON.stringify(document);
    const cached = this.onChain.get(cacheKey);
    if (cached) return cached;
    try {
      const result = await verifyCheckpoint(document, this.ledger.provider, {
        expectedContract: this.ledger.contractAddress,
      });
      if (this.onChain.size >= CHECKPOINT_CACHE_SIZE) this.onChain.clear();
      this.onChain.set(cacheKey, result);
      return result;
    } catch (error) {
      if (!isLedgerError(error, 'CHAIN_UNAVAILABLE')) throw error;
      this.logger.warn({ msg: 'checkpoint not checked on chain: endpoint unavailable' });
      return 'unavailable';
    }
  }
}

const STATUS_TEXT: Readonly<Record<VerifyOutcome, string>> = {
  verified:
    'verified: the resource version and Provenance match their keyed digests, the leaf is in the anchored checkpoint, and the checkpoint is on chain',
  tampered: 'tampered: stored records no longer match what the ledger committed to',
  'key-destroyed':
    "key destroyed: the patient was erased (their key destroyed), so the digests can no longer be checked; the event's leaf and proof still hold",
  pending: 'pending: the event is recorded but not yet in an anchored checkpoint',
};

function outcomeOf(
  status: VerifyOutcome,
  mismatches: readonly Mismatch[],
  chainWarning: string | undefined,
): OperationOutcome {
  const issues = [
    outcomeIssue({
      severity: status === 'tampered' ? 'error' : status === 'verified' ? 'information' : 'warning',
      code: status === 'tampered' ? 'processing' : 'informational',
      text: STATUS_TEXT[status],
    }),
    ...mismatches.map((m) => outcomeIssue({ code: 'processing', text: `${m.table} ${m.row}: ${m.problem}` })),
    ...(chainWarning ? [outcomeIssue({ severity: 'warning', code: 'transient', text: chainWarning })] : []),
  ];
  return operationOutcome(issues);
}

function proofBundle(verification: EventVerification): ProofBundle | undefined {
  const { checkpoint, inclusionPath, leafIndex, leafHash } = verification;
  let event: LedgerEventRecord;
  try {
    event = JSON.parse(verification.record) as LedgerEventRecord;
  } catch {
    return undefined; // a record that is not even JSON: the outcome says tampered, there is no proof
  }
  if (checkpoint && inclusionPath && leafIndex !== null) {
    return anchoredProofBundle({
      event,
      leafHash,
      leafIndex,
      treeSize: checkpoint.treeSize,
      inclusionPath,
      root: checkpoint.root,
      anchor: checkpoint,
    });
  }
  return {
    format: 'fhir-trail/proof-bundle@1',
    status: 'pending',
    event,
    leafHash: toHashHex(leafHash),
    leafIndex,
    treeSize: null,
    inclusionPath: [],
    root: null,
    anchor: null,
  };
}
