import { Controller, HttpCode, Param, Post, Res } from '@nestjs/common';
import { ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Parameters } from '@medplum/fhirtypes';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import type { FastifyReply } from 'fastify';
import { FHIR_JSON } from '../fhir/fhir-response';
import { ProvenanceVerificationService } from './provenance-verification.service';

/** Provenance ids are the bridge's UUIDs. */
const PROVENANCE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

@ApiTags('audit')
@Controller('fhir/R4/Provenance')
export class ProvenanceVerifyController {
  constructor(private readonly verification: ProvenanceVerificationService) {}

  @Post(':id/$verify')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Verify a Provenance against the ledger',
    description:
      'Recomputes the keyed digests of the stored resource version and Provenance with the patient key, the leaf ' +
      'hash from the stored event record, the inclusion proof from the stored Merkle nodes to the newest anchored ' +
      'checkpoint, and checks that checkpoint on chain. Answers a Parameters: `status` (verified | tampered | ' +
      'key-destroyed | pending), `outcome` (an OperationOutcome naming each stored record that no longer matches) ' +
      'and `proof` (the proof bundle as an application/json attachment, for `npm run verify`).',
  })
  @ApiParam({ name: 'id', description: 'the Provenance id (a UUID)' })
  @ApiResponse({ status: 200, description: 'Parameters { status, outcome, proof }' })
  @ApiResponse({ status: 404, description: 'no Provenance with this id (OperationOutcome)' })
  async verify(
    @Param('id') id: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Parameters> {
    const answer = PROVENANCE_ID.test(id) ? await this.verification.verify(id.toLowerCase()) : undefined;
    if (!answer) {
      throw new FhirRequestError(
        404,
        operationOutcome([outcomeIssue({ code: 'not-found', text: 'no Provenance with this id' })]),
      );
    }
    void reply.header('content-type', FHIR_JSON).header('cache-control', 'no-store');
    return answer;
  }
}
