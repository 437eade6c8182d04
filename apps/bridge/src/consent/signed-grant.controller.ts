import { Controller, Get, HttpCode, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiHeader,
  ApiOperation,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import { Inject } from '@nestjs/common';
import { FhirRequestError, outcomeIssue } from '@fhir-trail/fhir-mapping';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { FHIR_JSON } from '../fhir/fhir-response';
import { parseJsonBody, single } from '../fhir/json-body';
import { SOURCE_HEADER } from './consent.controller';
import { ConsentKeyGuard } from './consent-key.guard';
import { type SigningData, SignedGrantService } from './signed-grant.service';

/**
 * EIP-712 grants and revocations signed by a patient or a delegate: what to sign (GET) and the
 * signed message to relay (POST). See the README section "Signed grants (EIP-712)".
 */
@ApiTags('fhir')
@ApiBearerAuth()
@ApiHeader({
  name: 'X-Fhir-Trail-Source',
  required: true,
  description: 'id of the source whose Patient ids the grant uses',
})
@ApiResponse({ status: 401, description: 'missing or wrong consent / admin API key (OperationOutcome)' })
@ApiResponse({ status: 503, description: 'no consent registry configured, or the chain is unreachable' })
@UseGuards(ConsentKeyGuard)
@Controller('fhir/R4/Consent/$signed-grant')
export class SignedGrantController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly grants: SignedGrantService,
  ) {}

  @Get()
  @ApiOperation({
    summary: 'What a patient app signs for one (patient, recipient) pair',
    description:
      'The registry EIP-712 domain and types, the pair’s pseudonymous registry keys, the patient’s next ' +
      'nonce, and the bit order of the purpose and data-class bitmaps.',
  })
  @ApiQuery({ name: 'patient', example: 'Patient/123' })
  @ApiQuery({ name: 'recipient', example: 'Organization/hospital-a' })
  @ApiResponse({ status: 200, description: 'domain, types, patientKey, recipientKey, nonce, bit orders' })
  @ApiResponse({ status: 400, description: 'patient or recipient is not a reference (OperationOutcome)' })
  @ApiResponse({ status: 422, description: 'the patient was erased (OperationOutcome)' })
  async signingData(
    @Query('patient') patient: unknown,
    @Query('recipient') recipient: unknown,
    @Req() request: FastifyRequest,
  ): Promise<SigningData> {
    const sourceId = await this.sourceOf(request);
    return this.grants.signingData(sourceId, patient, recipient);
  }

  @Post()
  @HttpCode(200)
  @ApiOperation({
    summary: 'Relay a grant or revocation signed by the patient or a delegate (EIP-712)',
    description:
      'Checked before relaying (keys, scope, deadline, nonce, signer), submitted with the registrar key, ' +
      'awaited to finality, then recorded as a Consent (origin `signed`) with a consent ledger leaf; the ' +
      'registry mirror holds the finalised state. Answers the stored Consent.',
  })
  @ApiBody({
    description:
      '`{ "patient": "Patient/123", "recipient": "Organization/a", "primaryType": "ConsentGrant" | ' +
      '"ConsentRevoke", "message": { patientKey, recipientKey, purposes, dataClasses, validFrom, validUntil, ' +
      'nonce, deadline }, "signature": "0x…" }` (integers as decimal strings or numbers)',
    schema: { type: 'object' },
  })
  @ApiResponse({ status: 200, description: 'the Consent the grant amounts to; header X-Fhir-Trail-Tx-Hash' })
  @ApiResponse({ status: 400, description: 'malformed body or signature (OperationOutcome with expression)' })
  @ApiResponse({
    status: 403,
    description: 'signed by neither the patient nor a delegate (expression `signature`)',
  })
  @ApiResponse({
    status: 409,
    description: 'not the patient’s next nonce: a replay (expression `message.nonce`)',
  })
  @ApiResponse({
    status: 422,
    description: 'wrong keys, unreadable scope, expired deadline, erased patient (OperationOutcome)',
  })
  async relay(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    const sourceId = await this.sourceOf(request);
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const body = parseJsonBody(raw, single(request.headers['content-type']));
    const { consent, txHash } = await this.grants.relay(sourceId, body);
    void reply.header('content-type', FHIR_JSON);
    void reply.header('x-fhir-trail-tx-hash', txHash);
    return {
      ...consent.content,
      id: consent.consentId,
      meta: { versionId: String(consent.version), lastUpdated: consent.recordedAt.toISOString() },
    };
  }

  private async sourceOf(request: FastifyRequest): Promise<string> {
    const sourceId = single(request.headers[SOURCE_HEADER]);
    const source = sourceId ? await unavailableAs503(() => this.store.sources.findById(sourceId)) : undefined;
    if (!source?.enabled) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'invalid',
          text: 'the X-Fhir-Trail-Source header must name a registered source',
        }),
      );
    }
    return source.id;
  }
}
