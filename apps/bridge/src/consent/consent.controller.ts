import { randomUUID } from 'node:crypto';
import {
  Controller,
  Get,
  HttpCode,
  Inject,
  type OnModuleInit,
  Param,
  Post,
  Put,
  Req,
  Res,
  UseGuards,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiHeader,
  ApiOperation,
  ApiParam,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { AppConfig } from '@fhir-trail/config';
import {
  FhirRequestError,
  isFhirId,
  loadFhirDefinitions,
  operationOutcome,
  outcomeIssue,
  validateResource,
} from '@fhir-trail/fhir-mapping';
import { type ConsentJob, QUEUES, consentJobId } from '@fhir-trail/jobs';
import { APP_CONFIG, STORE, recordConsent } from '@fhir-trail/runtime';
import type { Store, StoredConsent } from '@fhir-trail/store';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { FHIR_JSON } from '../fhir/fhir-response';
import { parseJsonBody, single } from '../fhir/json-body';
import { type ConsentCaller, ConsentKeyGuard } from './consent-key.guard';

/** Names the source whose patient ids the Consent's references use. */
export const SOURCE_HEADER = 'x-fhir-trail-source';

/**
 * FHIR R4 Consent from patient apps: create and update. Each accepted Consent is interpreted (a
 * Consent the bridge cannot read is refused with 400/422 and the FHIRPath of each element), stored
 * with its policy, logged as a `consent` ledger leaf, and queued for the consent registry.
 */
@ApiTags('fhir')
@ApiBearerAuth()
@ApiHeader({
  name: 'X-Fhir-Trail-Source',
  required: true,
  description: 'id of the source whose Patient ids the Consent uses',
})
@ApiResponse({ status: 401, description: 'missing or wrong consent / admin API key (OperationOutcome)' })
@UseGuards(ConsentKeyGuard)
@Controller('fhir/R4/Consent')
export class ConsentController implements OnModuleInit {
  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectQueue(QUEUES.consent) private readonly queue: Queue<ConsentJob>,
  ) {}

  onModuleInit(): void {
    loadFhirDefinitions();
  }

  @Post()
  @HttpCode(201)
  @ApiOperation({ summary: 'Create a Consent (the bridge assigns its id)' })
  @ApiBody({ description: 'a FHIR R4 Consent (application/fhir+json)', schema: { type: 'object' } })
  @ApiResponse({ status: 201, description: 'the stored Consent; Location: Consent/{id}/_history/{version}' })
  @ApiResponse({
    status: 400,
    description: 'malformed Consent or unknown source (OperationOutcome with expression)',
  })
  @ApiResponse({
    status: 422,
    description: 'a Consent using what the bridge does not interpret (OperationOutcome)',
  })
  async create(
    @Req() request: FastifyRequest & { consentCaller?: ConsentCaller },
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    const body = this.body(request);
    const consent = await this.record(request, { ...body, id: undefined }, randomUUID());
    void reply.header('location', `Consent/${consent.consentId}/_history/${consent.version}`);
    void reply.header('content-type', FHIR_JSON);
    return withMeta(consent);
  }

  @Put(':id')
  @ApiOperation({
    summary: 'Create or replace the Consent with this id (e.g. status inactive to withdraw it)',
  })
  @ApiParam({ name: 'id', example: 'consent-1' })
  @ApiBody({ description: 'a FHIR R4 Consent whose id equals the URL id', schema: { type: 'object' } })
  @ApiResponse({ status: 200, description: 'the stored Consent' })
  @ApiResponse({
    status: 400,
    description: 'malformed Consent, id mismatch or unknown source (OperationOutcome)',
  })
  @ApiResponse({
    status: 422,
    description: 'a Consent using what the bridge does not interpret (OperationOutcome)',
  })
  async update(
    @Param('id') id: string,
    @Req() request: FastifyRequest & { consentCaller?: ConsentCaller },
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    const body = this.body(request);
    if (!isFhirId(id) || body['id'] !== id) {
      throw badRequest('invalid', 'Consent.id must be present and equal the id in the URL', 'Consent.id');
    }
    const consent = await this.record(request, body);
    void reply.header('content-type', FHIR_JSON);
    return withMeta(consent);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Read a stored Consent' })
  @ApiParam({ name: 'id', example: 'consent-1' })
  @ApiResponse({ status: 200, description: 'the Consent' })
  @ApiResponse({ status: 404, description: 'no such Consent for this source (OperationOutcome)' })
  async read(
    @Param('id') id: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    const sourceId = await this.sourceOf(request);
    const consent = await unavailableAs503(() => this.store.consents.findByConsentId(sourceId, id));
    if (!consent) {
      throw new FhirRequestError(
        404,
        operationOutcome([outcomeIssue({ code: 'not-found', text: 'no such Consent' })]),
      );
    }
    void reply.header('content-type', FHIR_JSON);
    return withMeta(consent);
  }

  private body(request: FastifyRequest): Record<string, unknown> {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const body = parseJsonBody(raw, single(request.headers['content-type']));
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw badRequest('structure', 'the body must be a FHIR Consent resource', 'Consent');
    }
    return body as Record<string, unknown>;
  }

  private async sourceOf(request: FastifyRequest): Promise<string> {
    const sourceId = single(request.headers[SOURCE_HEADER]);
    const source = sourceId ? await unavailableAs503(() => this.store.sources.findById(sourceId)) : undefined;
    if (!source?.enabled) {
      throw badRequest('invalid', 'the X-Fhir-Trail-Source header must name a registered source');
    }
    return source.id;
  }

  private async record(
    request: FastifyRequest & { consentCaller?: ConsentCaller },
    resource: Record<string, unknown>,
    assignId?: string,
  ): Promise<StoredConsent> {
    const sourceId = await this.sourceOf(request);
    const resourceWithoutUndefined = Object.fromEntries(
      Object.entries(resource).filter(([, v]) => v !== undefined),
    );
    // A valid R4 resource first (the validator names the element), then one the bridge can interpret.
    const validation = validateResource({
      ...resourceWithoutUndefined,
      id: resourceWithoutUndefined['id'] ?? assignId,
    });
    if (!validation.valid) throw new FhirRequestError(400, validation.outcome);
    const recorded = await unavailableAs503(() =>
      this.store.transaction((trx) =>
        recordConsent(this.store, trx, {
          sourceId,
          resource: resourceWithoutUndefined,
          origin: 'api',
          actor: request.consentCaller ?? 'api:consent-key',
          assignId,
          masterKey: this.config.ledger.masterKey,
        }),
      ),
    );
    if (!recorded.ok) throw new FhirRequestError(recorded.status, recorded.outcome);
    // The worker's consent sweep also picks up pairs out of sync, so a lost job only delays the chain.
    await this.queue
      .add(
        'sync',
        { consentRowId: recorded.consent.id },
        { jobId: consentJobId(recorded.consent.id, recorded.consent.version) },
      )
      .catch(() => undefined);
    return recorded.consent;
  }
}

function withMeta(consent: StoredConsent): Record<string, unknown> {
  return {
    ...consent.content,
    id: consent.consentId,
    meta: { versionId: String(consent.version), lastUpdated: consent.recordedAt.toISOString() },
  };
}

function badRequest(code: 'invalid' | 'structure', text: string, expression?: string): FhirRequestError {
  return FhirRequestError.badRequest(outcomeIssue({ code, text, ...(expression ? { expression } : {}) }));
}
