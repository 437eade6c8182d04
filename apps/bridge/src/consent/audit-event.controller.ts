import { Controller, Get, Inject, Query, Req, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiHeader, ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { FhirRequestError, isFhirId, outcomeIssue } from '@fhir-trail/fhir-mapping';
import { STORE } from '@fhir-trail/runtime';
import type { Store } from '@fhir-trail/store';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { FHIR_JSON } from '../fhir/fhir-response';
import { single } from '../fhir/json-body';
import { ProofsService } from '../ledger/proofs.service';
import { ConsentKeyGuard } from './consent-key.guard';
import { SOURCE_HEADER } from './consent.controller';

/** Extension carrying a decision's proof bundle (JSON, base64) on its AuditEvent. */
export const PROOF_BUNDLE_EXTENSION = 'urn:fhir-trail:StructureDefinition/proof-bundle';

/**
 * A patient's access log: `GET /fhir/R4/AuditEvent?patient=Patient/{id}` lists every sharing
 * decision and every read by a recipient about the patient (who received, read or was refused
 * which version, when, why), oldest first, each
 * AuditEvent carrying the proof bundle of its ledger leaf in an extension.
 */
@ApiTags('fhir')
@ApiBearerAuth()
@ApiHeader({
  name: 'X-Fhir-Trail-Source',
  required: true,
  description: 'id of the source whose Patient ids are used',
})
@ApiResponse({ status: 401, description: 'missing or wrong consent / admin API key (OperationOutcome)' })
@UseGuards(ConsentKeyGuard)
@Controller('fhir/R4/AuditEvent')
export class AuditEventController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly proofs: ProofsService,
  ) {}

  @Get()
  @ApiOperation({
    summary:
      "A patient's access log: deliveries and reads by recipients as AuditEvents, each with its proof bundle",
  })
  @ApiQuery({ name: 'patient', required: true, example: 'Patient/example' })
  @ApiResponse({ status: 200, description: 'a searchset Bundle of AuditEvents' })
  @ApiResponse({
    status: 400,
    description: 'missing or malformed patient, or unknown source (OperationOutcome)',
  })
  async search(
    @Query('patient') patient: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Bundle> {
    const id = patient?.replace(/^Patient\//, '');
    if (!isFhirId(id)) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'required',
          text: 'the patient search parameter must be Patient/<id> or <id>',
          expression: 'patient',
        }),
      );
    }
    const sourceId = single(request.headers[SOURCE_HEADER]);
    const source = sourceId ? await unavailableAs503(() => this.store.sources.findById(sourceId)) : undefined;
    if (!source) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'invalid',
          text: 'the X-Fhir-Trail-Source header must name a registered source',
        }),
      );
    }
    const [shared, read] = await unavailableAs503(() =>
      Promise.all([
        this.store.sharing.decisionsForPatient(source.id, `Patient/${id}`),
        this.store.sharing.accessForPatient(source.id, `Patient/${id}`),
      ]),
    );
    // Deliveries and reads, oldest first.
    const log = [...shared, ...read].sort(
      (x, y) => x.decision.decidedAt.getTime() - y.decision.decidedAt.getTime(),
    );
    const bundles = await this.proofs.forEvents(log.map((l) => l.event));
    const entry: BundleEntry[] = log.map((l, i) => ({
      fullUrl: `urn:uuid:${l.decision.eventId}`,
      resource: {
        ...l.decision.auditEvent,
        extension: [
          {
            url: PROOF_BUNDLE_EXTENSION,
            valueAttachment: {
              contentType: 'application/json',
              data: Buffer.from(JSON.stringify(bundles[i])).toString('base64'),
            },
          },
        ],
      } as Resource,
      search: { mode: 'match' },
    }));
    void reply.header('content-type', FHIR_JSON);
    return { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
  }
}
