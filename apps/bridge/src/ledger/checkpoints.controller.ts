import { Controller, Get, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import type { AnchoredCheckpoint, ConsistencyProofDocument } from '@fhir-trail/ledger';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import type { FastifyReply } from 'fastify';
import { CheckpointsService } from './checkpoints.service';
import { parseTreeSize } from './ledger-query';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1_000;

/** What `GET /ledger/checkpoints` answers; each entry can be saved for `verify --checkpoint`. */
export interface CheckpointsResponse {
  readonly checkpoints: readonly AnchoredCheckpoint[];
}

const HASH_SCHEMA = { type: 'string', pattern: '^0x[0-9a-f]{64}$' };
const OUTCOME_SCHEMA = { type: 'object', description: 'FHIR R4 OperationOutcome' };
const CHECKPOINT_SCHEMA = {
  type: 'object',
  required: ['format', 'treeSize', 'root', 'previousSize', 'previousRoot', 'manifestHash', 'anchor'],
  properties: {
    format: { type: 'string', enum: ['fhir-trail/checkpoint@1'] },
    treeSize: { type: 'integer', minimum: 1, description: 'leaves in the anchored tree' },
    root: { ...HASH_SCHEMA, description: 'RFC 9162 root of the tree' },
    previousSize: { type: 'integer', minimum: 0, description: 'size of the head this one extends' },
    previousRoot: { ...HASH_SCHEMA, description: 'root of that head (zero for the genesis head)' },
    manifestHash: { ...HASH_SCHEMA, description: 'SHA-256 of the batch manifest, as anchored' },
    anchor: {
      type: 'object',
      properties: {
        chainId: { type: 'string', example: '31337' },
        contract: { type: 'string', description: 'FhirTrailAnchor address' },
        txHash: HASH_SCHEMA,
        blockNumber: { type: 'integer' },
        blockHash: HASH_SCHEMA,
        logIndex: { type: 'integer', description: 'index of the Anchored log in its block' },
      },
    },
    anchoredAt: { type: 'string', format: 'date-time' },
  },
};
const CONSISTENCY_SCHEMA = {
  type: 'object',
  required: ['format', 'fromSize', 'fromRoot', 'toSize', 'toRoot', 'consistencyPath'],
  properties: {
    format: { type: 'string', enum: ['fhir-trail/consistency-proof@1'] },
    fromSize: { type: 'integer', minimum: 1 },
    fromRoot: HASH_SCHEMA,
    toSize: { type: 'integer', minimum: 1 },
    toRoot: HASH_SCHEMA,
    consistencyPath: {
      type: 'array',
      items: HASH_SCHEMA,
      description: 'RFC 9162 §2.1.4 PROOF(fromSize, D[toSize]), bottom-up; empty when the sizes are equal',
    },
  },
};

@ApiTags('ledger')
@Controller('ledger')
export class CheckpointsController {
  constructor(private readonly checkpoints: CheckpointsService) {}

  @Get('checkpoints')
  @ApiOperation({
    summary: 'The anchored tree heads of the ledger, newest first',
    description:
      'Each checkpoint is a head (tree size, root) published on chain by one `anchor()` transaction, with the head ' +
      'it extends, the manifest hash, and where it was anchored (chain id, contract, tx hash, block, log index). ' +
      'Save one to check later proofs against it: `npm run verify -- proof.json --checkpoint saved.json`.',
  })
  @ApiQuery({
    name: 'limit',
    required: false,
    schema: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT },
    description: 'most checkpoints to return',
  })
  @ApiResponse({
    status: 200,
    description: '{ checkpoints: Checkpoint[] }, newest first',
    schema: { type: 'object', properties: { checkpoints: { type: 'array', items: CHECKPOINT_SCHEMA } } },
  })
  @ApiResponse({ status: 400, description: 'malformed `limit` (OperationOutcome)', schema: OUTCOME_SCHEMA })
  async list(
    @Query('limit') limit: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<CheckpointsResponse> {
    let count = DEFAULT_LIMIT;
    if (limit !== undefined) {
      const parsed = parseTreeSize(limit);
      if (parsed === undefined || parsed > MAX_LIMIT) {
        throw badRequest([invalid('limit', `\`limit\` must be an integer from 1 to ${MAX_LIMIT}`)]);
      }
      count = parsed;
    }
    const checkpoints = await this.checkpoints.list(count);
    void reply.header('cache-control', 'no-store');
    return { checkpoints };
  }

  @Get('consistency')
  @ApiOperation({
    summary: 'RFC 9162 consistency proof between two anchored checkpoints',
    description:
      'Proves that the tree of `from` leaves is a prefix of the tree of `to` leaves: nothing anchored at `from` ' +
      'was changed or removed by `to`. Both sizes must be checkpoints (see `/ledger/checkpoints`). Check it with ' +
      '`npm run verify -- proof.json --checkpoint saved.json --consistency this.json`.',
  })
  // Decorators apply bottom-up: this order lists `from` before `to` in the OpenAPI document.
  @ApiQuery({ name: 'to', schema: { type: 'integer', minimum: 1 }, description: 'the later checkpoint size' })
  @ApiQuery({
    name: 'from',
    schema: { type: 'integer', minimum: 1 },
    description: 'the earlier checkpoint size',
  })
  @ApiResponse({ status: 200, description: 'the consistency proof', schema: CONSISTENCY_SCHEMA })
  @ApiResponse({
    status: 400,
    description: 'missing or malformed `from`/`to`, or `from` > `to` (OperationOutcome)',
    schema: OUTCOME_SCHEMA,
  })
  @ApiResponse({
    status: 404,
    description: '`from` or `to` is not the size of an anchored checkpoint (OperationOutcome)',
    schema: OUTCOME_SCHEMA,
  })
  async consistency(
    @Query('from') fromParameter: unknown,
    @Query('to') toParameter: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ConsistencyProofDocument> {
    const from = parseTreeSize(fromParameter);
    const to = parseTreeSize(toParameter);
    const issues: OperationOutcomeIssue[] = [];
    if (from === undefined) issues.push(required('from', fromParameter));
    if (to === undefined) issues.push(required('to', toParameter));
    if (from !== undefined && to !== undefined && from > to) {
      issues.push(
        invalid(
          'from',
          '`from` must not exceed `to`: a consistency proof goes from an earlier head to a later one',
        ),
      );
    }
    if (issues.length > 0 || from === undefined || to === undefined) throw badRequest(issues);

    const lookup = await this.checkpoints.consistency(from, to);
    if (!lookup.found) {
      throw new FhirRequestError(
        404,
        operationOutcome(
          lookup.missing.map((parameter) =>
            outcomeIssue({
              code: 'not-found',
              text: `\`${parameter}\` is not the tree size of an anchored checkpoint (see GET /ledger/checkpoints)`,
              expression: parameter,
            }),
          ),
        ),
      );
    }
    // Both heads are anchored and the log only grows: this proof never changes.
    void reply.header('cache-control', 'public, max-age=86400, immutable');
    return lookup.proof;
  }
}

function required(parameter: 'from' | 'to', value: unknown): OperationOutcomeIssue {
  return outcomeIssue({
    code: value === undefined ? 'required' : 'value',
    text: `query parameter \`${parameter}\` is required: a checkpoint tree size (a positive integer)`,
    expression: parameter,
  });
}

function invalid(parameter: string, text: string): OperationOutcomeIssue {
  return outcomeIssue({ code: 'value', text, expression: parameter });
}

function badRequest(issues: readonly OperationOutcomeIssue[]): FhirRequestError {
  return new FhirRequestError(400, operationOutcome(issues));
}
