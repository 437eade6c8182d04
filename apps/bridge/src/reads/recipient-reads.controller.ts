import { Controller, Get, Param, Query, Req, Res, UseGuards } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiHeader,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import {
  FhirRequestError,
  PURPOSES_OF_USE,
  R4_RESOURCE_TYPES,
  isFhirId,
  isPurposeOfUse,
  operationOutcome,
  outcomeIssue,
  type PurposeOfUse,
} from '@fhir-trail/fhir-mapping';
import type { FastifyReply } from 'fastify';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { FHIR_JSON } from '../fhir/fhir-response';
import { single } from '../fhir/json-body';
import { RecipientAuthGuard, type RecipientCaller, type RecipientRequest } from './recipient-auth.guard';
import { RecipientReadsService } from './recipient-reads.service';

/** Header naming the purpose of use of a read (the `purpose` parameter wins). */
export const PURPOSE_HEADER = 'x-fhir-trail-purpose';

const RESOURCE_TYPES: ReadonlySet<string> = new Set(R4_RESOURCE_TYPES);

/**
 * Reads by recipients: `GET /fhir/R4/{Type}/{id}` and `GET /fhir/R4/{Type}?patient=…` over the
 * normalised resources of the caller's destination's source. Every resource is consent-checked at
 * the moment of the read and logged (AuditEvent + `access` leaf) before the answer leaves.
 */
@ApiTags('fhir')
@ApiBearerAuth()
@ApiHeader({
  name: 'X-Fhir-Trail-Purpose',
  required: false,
  description: 'v3 PurposeOfUse of the read (the purpose parameter wins; default: the destination purpose)',
})
@ApiResponse({
  status: 401,
  description: 'missing or wrong recipient read key / JWT (OperationOutcome)',
})
@UseGuards(RecipientAuthGuard)
@Controller('fhir/R4')
export class RecipientReadsController {
  constructor(private readonly reads: RecipientReadsService) {}

  @Get(':type/:id')
  @ApiOperation({ summary: 'Read the current normalised version of a resource, if consent allows' })
  @ApiParam({ name: 'type', example: 'Observation' })
  @ApiParam({ name: 'id', example: 'obs-1' })
  @ApiQuery({ name: 'purpose', required: false, enum: [...PURPOSES_OF_USE] })
  @ApiResponse({ status: 200, description: 'the resource (logged as delivered)' })
  @ApiResponse({ status: 400, description: 'malformed id or purpose (OperationOutcome)' })
  @ApiResponse({ status: 403, description: 'consent refuses it; logged as denied (OperationOutcome)' })
  @ApiResponse({ status: 404, description: 'unknown type or no such current resource (OperationOutcome)' })
  async read(
    @Param('type') type: string,
    @Param('id') id: string,
    @Query('purpose') purposeParam: string | undefined,
    @Req() request: RecipientRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Resource> {
    const caller = callerOf(request);
    knownType(type);
    if (!isFhirId(id)) {
      throw FhirRequestError.badRequest(
        outcomeIssue({ code: 'invalid', text: 'not a valid FHIR id', expression: 'id' }),
      );
    }
    const purpose = purposeOf(purposeParam, request, caller);
    const version = await unavailableAs503(() => this.reads.current(caller, type, id));
    if (!version?.content) throw notFound(`no current ${type} with that id`);
    const [decided] = await unavailableAs503(() =>
      this.reads.decide({ caller, purpose, interaction: 'read' }, [version]),
    );
    if (decided?.outcome !== 'delivered') {
      throw new FhirRequestError(
        403,
        operationOutcome([
          outcomeIssue({
            code: 'forbidden',
            text: 'no consent allows this recipient to read this resource for this purpose',
          }),
        ]),
      );
    }
    void reply.header('content-type', FHIR_JSON).header('etag', `W/"${version.version}"`);
    return { ...version.content, id: version.resourceId } as unknown as Resource;
  }

  @Get(':type')
  @ApiOperation({
    summary: "Search one type in a patient's compartment: only the resources consent allows are returned",
  })
  @ApiParam({ name: 'type', example: 'Observation' })
  @ApiQuery({ name: 'patient', required: true, example: 'Patient/example' })
  @ApiQuery({ name: 'purpose', required: false, enum: [...PURPOSES_OF_USE] })
  @ApiResponse({
    status: 200,
    description: 'a searchset Bundle (each match logged as delivered, the rest as denied)',
  })
  @ApiResponse({
    status: 400,
    description: 'missing or malformed patient, or bad purpose (OperationOutcome)',
  })
  @ApiResponse({ status: 404, description: 'unknown resource type (OperationOutcome)' })
  async search(
    @Param('type') type: string,
    @Query('patient') patient: string | undefined,
    @Query('purpose') purposeParam: string | undefined,
    @Req() request: RecipientRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Bundle> {
    const caller = callerOf(request);
    knownType(type);
    const patientId = patient?.replace(/^Patient\//, '');
    if (!isFhirId(patientId)) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'required',
          text: 'the patient search parameter must be Patient/<id> or <id>',
          expression: 'patient',
        }),
      );
    }
    const purpose = purposeOf(purposeParam, request, caller);
    const patientRef = `Patient/${patientId}`;
    const versions = await unavailableAs503(() => this.reads.forPatient(caller, patientRef, type));
    const decided = await unavailableAs503(() =>
      this.reads.decide(
        { caller, purpose, interaction: 'search-type', query: `${type}?patient=${patientRef}` },
        versions,
      ),
    );
    const entry: BundleEntry[] = decided
      .filter((d) => d.outcome === 'delivered')
      .map((d) => ({
        fullUrl: `${d.version.resourceType}/${d.version.resourceId}`,
        resource: { ...d.version.content, id: d.version.resourceId } as unknown as Resource,
        search: { mode: 'match' },
      }));
    void reply.header('content-type', FHIR_JSON);
    return { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
  }
}

function callerOf(request: RecipientRequest): RecipientCaller {
  // The guard sets it on every request it lets through.
  if (!request.recipient) throw new Error('RecipientAuthGuard did not run');
  return request.recipient;
}

function knownType(type: string): void {
  if (!RESOURCE_TYPES.has(type)) throw notFound('not an R4 resource type the bridge serves');
}

function notFound(text: string): FhirRequestError {
  return new FhirRequestError(404, operationOutcome([outcomeIssue({ code: 'not-found', text })]));
}

function purposeOf(
  param: string | undefined,
  request: RecipientRequest,
  caller: RecipientCaller,
): PurposeOfUse {
  const asked = param ?? single(request.headers[PURPOSE_HEADER]);
  if (asked === undefined) {
    return isPurposeOfUse(caller.destination.purpose) ? caller.destination.purpose : 'TREAT';
  }
  if (!isPurposeOfUse(asked)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'value',
        text: `purpose must be one of ${PURPOSES_OF_USE.join(', ')}`,
        expression: 'purpose',
      }),
    );
  }
  return asked;
}
