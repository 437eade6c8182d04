import { Controller, Get, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import {
  type CompactProofBundle,
  type ProofBundle,
  compactProofBundle,
  isAnchoredProofBundle,
} from '@fhir-trail/ledger';
import type { FastifyReply } from 'fastify';
import { parseTreeSize } from './ledger-query';
import { ProofsService } from './proofs.service';

const SOURCE_ID = /^[A-Za-z0-9-]{1,64}$/;
const RESOURCE = /^([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9\-.]{1,64})$/;

/** What `GET /ledger/proofs` answers; `npm run verify` accepts this document or one bundle of it. */
export interface ProofsResponse {
  readonly source: string;
  readonly resource: string;
  /** v1 bundles; with `encoding=compact`, anchored ones in the compact v2 form. */
  readonly bundles: readonly (ProofBundle | CompactProofBundle)[];
}

@ApiTags('ledger')
@Controller('ledger')
export class ProofsController {
  constructor(private readonly proofs: ProofsService) {}

  @Get('proofs')
  @ApiOperation({
    summary: 'Proof bundles for the ledger events about one resource',
    description:
      'Each bundle is `pending` (not yet in an anchored checkpoint) or `anchored` (event record, leaf index, ' +
      'tree size, inclusion path, root, chain id, contract, tx hash, block). Check one offline with `npm run verify`.',
  })
  @ApiQuery({ name: 'source', example: 'demo' })
  @ApiQuery({
    name: 'resource',
    example: 'Patient/example',
    description: '{Type}/{id} as the source names it',
  })
  @ApiQuery({
    name: 'consistencyFrom',
    required: false,
    schema: { type: 'integer', minimum: 1 },
    description:
      'an earlier checkpoint size (see /ledger/checkpoints): anchored bundles then carry `consistency`, the RFC 9162 ' +
      'consistency proof from that checkpoint to their head, for `npm run verify -- FILE --checkpoint saved.json`',
  })
  @ApiQuery({
    name: 'encoding',
    required: false,
    enum: ['json', 'compact'],
    description:
      '`compact`: anchored bundles in the compact v2 form (`{f, e, p}`: the event record, and leaf index, tree size, ' +
      'anchor and inclusion path as one base64url string; about 1.4 KB at 10^6 leaves instead of 2.4 KB). ' +
      '`npm run verify` reads both forms. Default `json` (v1).',
  })
  @ApiResponse({ status: 200, description: '{ source, resource, bundles: ProofBundle[] }' })
  @ApiResponse({ status: 400, description: 'missing or malformed query parameter (OperationOutcome)' })
  @ApiResponse({
    status: 404,
    description:
      'no ledger event for that resource, or `consistencyFrom` is not a checkpoint (OperationOutcome)',
  })
  async list(
    @Query('source') source: unknown,
    @Query('resource') resource: unknown,
    @Query('consistencyFrom') consistencyFrom: unknown,
    @Query('encoding') encoding: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ProofsResponse> {
    if (typeof source !== 'string' || !SOURCE_ID.test(source)) {
      throw badQuery('source', 'query parameter `source` is required: the source id, e.g. demo');
    }
    const match = typeof resource === 'string' ? RESOURCE.exec(resource) : null;
    if (!match)
      throw badQuery(
        'resource',
        'query parameter `resource` is required as {Type}/{id}, e.g. Patient/example',
      );
    const from = consistencyFrom === undefined ? undefined : parseTreeSize(consistencyFrom);
    if (consistencyFrom !== undefined && from === undefined) {
      throw new FhirRequestError(
        400,
        operationOutcome([
          outcomeIssue({
            code: 'value',
            text: 'query parameter `consistencyFrom` must be a checkpoint tree size (a positive integer)',
            expression: 'consistencyFrom',
          }),
        ]),
      );
    }
    if (encoding !== undefined && encoding !== 'json' && encoding !== 'compact') {
      throw new FhirRequestError(
        400,
        operationOutcome([
          outcomeIssue({
            code: 'value',
            text: 'query parameter `encoding` must be `json` or `compact`',
            expression: 'encoding',
          }),
        ]),
      );
    }
    const bundles = await this.proofs.forResource(source, match[1], match[2], from);
    if (bundles.length === 0) {
      throw new FhirRequestError(
        404,
        operationOutcome([
          outcomeIssue({ code: 'not-found', text: 'no ledger event for that source and resource' }),
        ]),
      );
    }
    void reply.header('cache-control', 'no-store');
    return {
      source,
      resource: `${match[1]}/${match[2]}`,
      bundles:
        encoding === 'compact'
          ? bundles.map((b) => (isAnchoredProofBundle(b) ? compactProofBundle(b) : b))
          : bundles,
    };
  }
}

function badQuery(parameter: string, text: string): FhirRequestError {
  return new FhirRequestError(
    400,
    operationOutcome([outcomeIssue({ code: 'required', text, expression: parameter })]),
  );
}
