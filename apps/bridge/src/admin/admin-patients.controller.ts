import { Controller, HttpCode, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { OperationOutcome } from '@medplum/fhirtypes';
import {
  FhirRequestError,
  operationOutcome,
  outcomeIssue,
  parseResourceReference,
} from '@fhir-trail/fhir-mapping';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { FHIR_JSON } from '../fhir/fhir-response';
import { parseJsonBody, single } from '../fhir/json-body';
import { AdminKeyGuard } from './admin-key.guard';
import { SignedGrantService } from '../consent/signed-grant.service';
import { PatientErasureService } from './patient-erasure.service';

const SOURCE_ID = /^[A-Za-z0-9-]{1,64}$/;

/** Where each input sits in the two body forms, for `expression`. */
interface ErasureInput {
  readonly source: unknown;
  readonly patient: unknown;
  readonly sourcePath: string;
  readonly patientPath: string;
}

@ApiTags('admin')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'missing or wrong admin API key (OperationOutcome)' })
@UseGuards(AdminKeyGuard)
@Controller('admin/patients')
export class AdminPatientsController {
  constructor(
    private readonly erasure: PatientErasureService,
    private readonly signedGrants: SignedGrantService,
  ) {}

  @Post('$bind-consent-signer')
  @HttpCode(200)
  @ApiOperation({
    summary: "Bind the Ethereum address that signs a patient's EIP-712 consent grants",
    description:
      'Calls `bindPatientSigner` on the consent registry with the registrar key (after the operator has ' +
      'checked who the patient is), for the patient’s pseudonymous registry key; waits for finality.',
  })
  @ApiBody({
    description: 'JSON `{ "source": "ehr-a", "patient": "Patient/123", "signer": "0x…" }`',
    schema: { type: 'object' },
  })
  @ApiResponse({ status: 200, description: 'bound (OperationOutcome; diagnostics: the transaction hash)' })
  @ApiResponse({
    status: 400,
    description: 'missing or malformed source, patient or signer (OperationOutcome)',
  })
  async bindConsentSigner(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<OperationOutcome> {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const body = parseJsonBody(raw, single(request.headers['content-type']));
    const input = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const source = input['source'];
    if (typeof source !== 'string' || !SOURCE_ID.test(source)) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'required',
          text: 'source must name a registered source',
          expression: 'source',
        }),
      );
    }
    const { txHash } = await this.signedGrants.bindSigner(source, input['patient'], input['signer']);
    void reply.header('content-type', FHIR_JSON);
    return operationOutcome([
      outcomeIssue({
        severity: 'information',
        code: 'informational',
        text: 'signer bound on the consent registry',
        diagnostics: `transaction ${txHash}`,
      }),
    ]);
  }

  @Post('$erase')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Erase a patient (GDPR art. 17): destroy their key and the off-chain copies',
    description:
      'Writes an erasure leaf (the patient pseudonym and the source only), deletes the content of the ' +
      "patient's resource versions, Provenances and raw notifications (their rows stay as tombstones) and the " +
      'inputs kept on their dead letters, and ' +
      'destroys the patient key. Afterwards `$verify` answers `key-destroyed` for their events. Idempotent.',
  })
  @ApiBody({
    description:
      'a FHIR Parameters with `source` (valueString/valueId) and `patient` (valueReference or valueString ' +
      '`Patient/{id}`), or JSON `{ "source": "ehr-a", "patient": "Patient/123" }`',
    schema: { type: 'object' },
  })
  @ApiResponse({ status: 200, description: 'erased, or already erased (OperationOutcome)' })
  @ApiResponse({ status: 400, description: 'missing or malformed source or patient (OperationOutcome)' })
  @ApiResponse({ status: 404, description: 'no key for this patient at this source (OperationOutcome)' })
  async erase(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<OperationOutcome> {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const input = erasureInput(parseJsonBody(raw, single(request.headers['content-type'])));
    const problems = [];
    if (typeof input.source !== 'string' || !SOURCE_ID.test(input.source)) {
      problems.push(
        outcomeIssue({
          code: 'required',
          text: 'source is required: the id of a registered source',
          expression: input.sourcePath,
        }),
      );
    }
    const address = typeof input.patient === 'string' ? parseResourceReference(input.patient) : undefined;
    if (address?.resourceType !== 'Patient') {
      problems.push(
        outcomeIssue({
          code: 'required',
          text: 'patient is required as a reference to a Patient, e.g. Patient/123',
          expression: input.patientPath,
        }),
      );
    }
    if (problems.length > 0 || !address) throw new FhirRequestError(400, operationOutcome(problems));
    const result = await unavailableAs503(() =>
      this.erasure.erase(input.source as string, `Patient/${address.id}`),
    );
    void reply.header('content-type', FHIR_JSON);
    switch (result.status) {
      case 'unknown-patient':
        throw new FhirRequestError(
          404,
          operationOutcome([
            outcomeIssue({
              code: 'not-found',
              text: 'the bridge holds no key for this patient at this source',
            }),
          ]),
        );
      case 'already-erased':
        return operationOutcome([
          outcomeIssue({
            severity: 'information',
            code: 'informational',
            text: `already erased at ${result.destroyedAt.toISOString()}`,
            diagnostics: result.eventId ? `erasure event ${result.eventId}` : undefined,
          }),
        ]);
      case 'erased':
        return operationOutcome([
          outcomeIssue({
            severity: 'information',
            code: 'informational',
            text:
              `patient key destroyed at ${result.destroyedAt.toISOString()}; content of ${result.resourceVersions} ` +
              `resource version(s), ${result.provenances} Provenance(s), ${result.notifications} raw ` +
              `notification(s) and the inputs of ${result.deadLetters} dead letter(s) deleted; ${result.consents} ` +
              `consent(s) deleted and ${result.registryPairs} consent registry grant(s) withdrawn; erasure recorded in the ledger`,
            diagnostics: `erasure event ${result.eventId}`,
          }),
        ]);
    }
  }
}

/** Reads `source` and `patient` from a Parameters resource or a plain JSON object. */
function erasureInput(body: unknown): ErasureInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new FhirRequestError(
      400,
      operationOutcome([
        outcomeIssue({ code: 'structure', text: 'the body must be a Parameters resource or a JSON object' }),
      ]),
    );
  }
  const record = body as Record<string, unknown>;
  if (record.resourceType !== 'Parameters') {
    return { source: record.source, patient: record.patient, sourcePath: 'source', patientPath: 'patient' };
  }
  const parameters = Array.isArray(record.parameter) ? (record.parameter as unknown[]) : [];
  const find = (name: string) => {
    const index = parameters.findIndex(
      (p) => typeof p === 'object' && p !== null && (p as Record<string, unknown>).name === name,
    );
    return { index, value: index < 0 ? undefined : (parameters[index] as Record<string, unknown>) };
  };
  const source = find('source');
  const patient = find('patient');
  const reference = patient.value?.valueReference;
  return {
    source: source.value?.valueString ?? source.value?.valueId,
    patient:
      typeof reference === 'object' && reference !== null
        ? (reference as Record<string, unknown>).reference
        : patient.value?.valueString,
    sourcePath: source.index < 0 ? 'Parameters.parameter' : `Parameters.parameter[${source.index}].value`,
    patientPath: patient.index < 0 ? 'Parameters.parameter' : `Parameters.parameter[${patient.index}].value`,
  };
}
