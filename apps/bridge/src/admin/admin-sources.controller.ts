import {
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Post,
  Put,
  Req,
  Res,
  UseGuards,
} from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import { type SourceRecord, SourceExistsError, SourceSecretRequiredError, Store } from '@fhir-trail/store';
import { STORE } from '@fhir-trail/runtime';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { parseJsonBody, single } from '../fhir/json-body';
import {
  createSourceSchema,
  replaceSourceSchema,
  SOURCE_ID,
  toSourceRegistration,
  validationError,
} from '../notifications/source-registration.schema';
import { SourcesService } from '../notifications/sources.service';
import { AdminKeyGuard } from './admin-key.guard';
import { openApiSchema, type SourceView, sourceViewSchema, toSourceView } from './source-view';

const OUTCOME_SCHEMA = { type: 'object', description: 'FHIR R4 OperationOutcome' };
const VIEW_SCHEMA = openApiSchema(sourceViewSchema, 'output');

/**
 * Registers and manages sources at run time. Every route needs the admin API key; answers never
 * carry a secret (`hasSecret: true` instead). Changes reach this bridge's intake at once and other
 * replicas within their 5 s source cache.
 */
@ApiTags('admin')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'missing or wrong admin API key', schema: OUTCOME_SCHEMA })
@ApiResponse({
  status: 503,
  description: 'database unavailable; retry after Retry-After',
  schema: OUTCOME_SCHEMA,
})
@UseGuards(AdminKeyGuard)
@Controller('admin/sources')
export class AdminSourcesController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly sources: SourcesService,
  ) {}

  @Post()
  @HttpCode(201)
  @ApiOperation({
    summary: 'Register a source',
    description:
      'Secrets are required for every configured check (`senderAuth`) and call-back method (`fhirAuth`); ' +
      'bearer tokens are kept as SHA-256, HMAC secrets and call-back credentials wrapped with AES-256-GCM.',
  })
  @ApiBody({ schema: openApiSchema(createSourceSchema) })
  @ApiResponse({ status: 201, description: 'registered; Location names it', schema: VIEW_SCHEMA })
  @ApiResponse({
    status: 400,
    description: 'invalid registration; one issue per field, `expression` names it',
    schema: OUTCOME_SCHEMA,
  })
  @ApiResponse({
    status: 409,
    description: 'a source with this id exists (perhaps disabled)',
    schema: OUTCOME_SCHEMA,
  })
  @ApiResponse({ status: 415, description: 'not application/json', schema: OUTCOME_SCHEMA })
  async create(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SourceView> {
    const body = validated(createSourceSchema, request);
    const record = await write(() => this.store.sources.create(toSourceRegistration(body.id, body)));
    this.sources.evict(record.id);
    void reply.header('location', `/admin/sources/${record.id}`);
    return answer(reply, record);
  }

  @Get()
  @ApiOperation({ summary: 'List every source, disabled ones included' })
  @ApiResponse({
    status: 200,
    description: '{ sources: Source[] }',
    schema: { type: 'object', properties: { sources: { type: 'array', items: VIEW_SCHEMA } } },
  })
  async list(@Res({ passthrough: true }) reply: FastifyReply): Promise<{ sources: SourceView[] }> {
    const records = await unavailableAs503(() => this.store.sources.list());
    void reply.header('cache-control', 'no-store');
    return { sources: records.map(toSourceView) };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One source' })
  @ApiParam({ name: 'id', example: 'demo' })
  @ApiResponse({ status: 200, description: 'the source', schema: VIEW_SCHEMA })
  @ApiResponse({ status: 404, description: 'no such source', schema: OUTCOME_SCHEMA })
  async get(@Param('id') id: string, @Res({ passthrough: true }) reply: FastifyReply): Promise<SourceView> {
    const record = SOURCE_ID.test(id)
      ? await unavailableAs503(() => this.store.sources.findById(id))
      : undefined;
    return answer(reply, record ?? notFound());
  }

  @Put(':id')
  @ApiOperation({
    summary: 'Replace a source’s registration (and enable it again if it was deleted)',
    description:
      'The whole registration. A secret left out keeps the stored one when its kind is unchanged, so a GET ' +
      'answer can be edited and sent back; read-only fields (`hasSecret`, `enabled`, dates) are ignored.',
  })
  @ApiParam({ name: 'id', example: 'demo' })
  @ApiBody({ schema: openApiSchema(replaceSourceSchema) })
  @ApiResponse({ status: 200, description: 'the source as now registered', schema: VIEW_SCHEMA })
  @ApiResponse({
    status: 400,
    description: 'invalid registration; one issue per field',
    schema: OUTCOME_SCHEMA,
  })
  @ApiResponse({
    status: 404,
    description: 'no such source (PUT does not create; POST does)',
    schema: OUTCOME_SCHEMA,
  })
  async replace(
    @Param('id') id: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SourceView> {
    if (!SOURCE_ID.test(id)) notFound();
    const body = validated(replaceSourceSchema, request);
    if (body.id !== undefined && body.id !== id) {
      throw FhirRequestError.badRequest(
        outcomeIssue({ code: 'value', text: 'must equal the id in the path', expression: 'id' }),
      );
    }
    const record = await write(() => this.store.sources.replace(toSourceRegistration(id, body)));
    this.sources.evict(id);
    return answer(reply, record ?? notFound());
  }

  @Delete(':id')
  @ApiOperation({
    summary: 'Delete (disable) a source',
    description:
      'Soft: its hooks answer 404 like an unknown source, and what it already sent stays (accepted ' +
      'notifications are still processed). The id stays taken; PUT enables the source again.',
  })
  @ApiParam({ name: 'id', example: 'demo' })
  @ApiResponse({ status: 200, description: 'the source, now `enabled: false`', schema: VIEW_SCHEMA })
  @ApiResponse({ status: 404, description: 'no such source', schema: OUTCOME_SCHEMA })
  async disable(
    @Param('id') id: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SourceView> {
    const record = SOURCE_ID.test(id)
      ? await unavailableAs503(() => this.store.sources.disable(id))
      : undefined;
    this.sources.evict(id);
    return answer(reply, record ?? notFound());
  }
}

function validated<T extends z.ZodType>(schema: T, request: FastifyRequest): z.infer<T> {
  const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  const parsed = schema.safeParse(parseJsonBody(raw, single(request.headers['content-type'])));
  if (!parsed.success) throw validationError(parsed.error);
  return parsed.data;
}

/** A store write, its refusals turned into OperationOutcomes (409 id taken, 400 secret needed). */
async function write<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await unavailableAs503(work);
  } catch (error) {
    if (error instanceof SourceExistsError) {
      throw new FhirRequestError(
        409,
        operationOutcome([
          outcomeIssue({
            code: 'duplicate',
            text: 'a source with this id already exists (a deleted one keeps its id; PUT enables it again)',
            expression: 'id',
          }),
        ]),
        { cause: error },
      );
    }
    if (error instanceof SourceSecretRequiredError) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'required',
          text: 'required: no stored secret to keep',
          expression: error.field,
        }),
        { cause: error },
      );
    }
    throw error;
  }
}

function answer(reply: FastifyReply, record: SourceRecord): SourceView {
  void reply.header('cache-control', 'no-store');
  return toSourceView(record);
}

function notFound(): never {
  throw new FhirRequestError(
    404,
    operationOutcome([outcomeIssue({ code: 'not-found', text: 'no source with this id' })]),
  );
}
