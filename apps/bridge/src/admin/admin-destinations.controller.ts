import { createHash } from 'node:crypto';
import { Controller, Get, HttpCode, Inject, Param, Post, Req, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import {
  FhirRequestError,
  PURPOSES_OF_USE,
  R4_RESOURCE_TYPES,
  operationOutcome,
  outcomeIssue,
} from '@fhir-trail/fhir-mapping';
import { importAssertionKey } from '@fhir-trail/fhir-client';
import { STORE } from '@fhir-trail/runtime';
import type { DestinationView, SharingDecision, Store } from '@fhir-trail/store';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { parseJsonBody, single } from '../fhir/json-body';
import { validationError } from '../notifications/source-registration.schema';
import { AdminKeyGuard } from './admin-key.guard';

const destinationSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9\-.]{1,64}$/, 'letters, digits, - and . (1-64)'),
    name: z.string().min(1).max(200),
    source: z
      .string()
      .min(1)
      .describe('the source whose Patient/Organization ids consents for this destination use'),
    organisation: z
      .string()
      .regex(/^Organization\/[A-Za-z0-9\-.]{1,64}$/, 'must be Organization/<id>')
      .describe('the organisation this destination represents: the recipient consents name'),
    fhirBaseUrl: z.url({ protocol: /^https?$/ }),
    auth: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('none') }).strict(),
        z.object({ kind: z.literal('bearer'), token: z.string().min(16) }).strict(),
        z
          .object({
            kind: z.literal('smart-backend'),
            clientId: z.string().min(1).max(1024),
            scope: z.string().min(1).max(4096).describe('e.g. system/Observation.cu'),
            tokenUrl: z
              .url({ protocol: /^https?$/ })
              .optional()
              .describe('unset: discovered from {fhirBaseUrl}/.well-known/smart-configuration'),
            keyId: z
              .string()
              .min(1)
              .max(1024)
              .describe('kid of the public key registered with the destination'),
            algorithm: z.enum(['RS384', 'ES384']),
            privateKey: z
              .looseObject({ kty: z.enum(['RSA', 'EC']), d: z.string().min(1) })
              .describe('the private JWK: RSA (2048 bits or more) for RS384, EC P-384 for ES384'),
          })
          .strict(),
      ])
      .default({ kind: 'none' }),
    readKey: z
      .string()
      .regex(/^[A-Za-z0-9_-]{32,256}$/, 'letters, digits, _ and - (32-256)')
      .optional()
      .describe("the key the destination's organisation presents (Bearer) to read /fhir/R4; stored hashed"),
    resourceTypes: z.array(z.enum(R4_RESOURCE_TYPES)).default([]).describe('empty = every type'),
    sources: z
      .array(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a source id'))
      .max(50)
      .default([])
      .describe('further sources whose versions it takes, besides `source`'),
    profiles: z
      .array(z.url())
      .max(50)
      .default([])
      .describe('canonical profile URLs; only versions whose meta.profile names one are sent (empty = any)'),
    purpose: z.enum(PURPOSES_OF_USE).default('TREAT'),
    deliveryMode: z.enum(['put', 'transaction']).default('put'),
    retry: z
      .object({
        maxAttempts: z.number().int().min(1).max(20).default(5),
        backoffMs: z.number().int().min(10).max(3_600_000).default(5_000),
      })
      .strict()
      .default({ maxAttempts: 5, backoffMs: 5_000 }),
  })
  .strict();

/**
 * Destinations: FHIR R4 endpoints the bridge delivers new resource versions to, each representing
 * an organisation (the recipient that consents name), with what it wants, how and how often to retry.
 */
@ApiTags('admin')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'missing or wrong admin API key (OperationOutcome)' })
@UseGuards(AdminKeyGuard)
@Controller('admin/destinations')
export class AdminDestinationsController {
  constructor(@Inject(STORE) private readonly store: Store) {}

  @Post()
  @HttpCode(201)
  @ApiOperation({ summary: 'Register or replace a destination (by id)' })
  @ApiBody({
    schema: {
      type: 'object',
      required: ['id', 'name', 'source', 'organisation', 'fhirBaseUrl'],
      properties: {
        id: { type: 'string' },
        name: { type: 'string' },
        source: { type: 'string' },
        organisation: { type: 'string', example: 'Organization/hospital-a' },
        fhirBaseUrl: { type: 'string' },
        auth: {
          type: 'object',
          description:
            '`{kind: none}`, `{kind: bearer, token}` or `{kind: smart-backend, clientId, scope, tokenUrl?, keyId, ' +
            'algorithm: RS384|ES384, privateKey: <private JWK>}` (SMART Backend Services)',
          example: { kind: 'bearer', token: '…' },
        },
        readKey: {
          type: 'string',
          description:
            'key (32+ of A-Z a-z 0-9 _ -) for reads by this organisation; stored hashed, never shown',
        },
        resourceTypes: { type: 'array', items: { type: 'string' } },
        sources: {
          type: 'array',
          items: { type: 'string' },
          description: 'further sources (besides source)',
        },
        profiles: {
          type: 'array',
          items: { type: 'string' },
          description: 'canonical profile URLs; meta.profile must name one (empty = any)',
        },
        purpose: { type: 'string', enum: [...PURPOSES_OF_USE] },
        deliveryMode: { type: 'string', enum: ['put', 'transaction'] },
        retry: { type: 'object', example: { maxAttempts: 5, backoffMs: 5000 } },
      },
    },
  })
  @ApiResponse({ status: 201, description: 'the destination (never its token, private key nor read key)' })
  @ApiResponse({ status: 400, description: 'invalid request (OperationOutcome with expression)' })
  async upsert(@Req() request: FastifyRequest): Promise<DestinationView> {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const parsed = destinationSchema.safeParse(parseJsonBody(raw, single(request.headers['content-type'])));
    if (!parsed.success) throw validationError(parsed.error);
    const d = parsed.data;
    const source = await unavailableAs503(() => this.store.sources.findById(d.source));
    if (!source) {
      throw FhirRequestError.badRequest(
        outcomeIssue({ code: 'invalid', text: 'unknown source', expression: 'source' }),
      );
    }
    for (const [index, id] of d.sources.entries()) {
      if (!(await unavailableAs503(() => this.store.sources.findById(id)))) {
        throw FhirRequestError.badRequest(
          outcomeIssue({ code: 'invalid', text: 'unknown source', expression: `sources[${index}]` }),
        );
      }
    }
    if (d.auth.kind === 'smart-backend') {
      try {
        importAssertionKey(d.auth.privateKey, d.auth.algorithm);
      } catch (error) {
        throw FhirRequestError.badRequest(
          outcomeIssue({
            code: 'invalid',
            text: error instanceof Error ? error.message : 'unusable private key',
            expression: 'auth.privateKey',
          }),
        );
      }
    }
    return unavailableAs503(() =>
      this.store.sharing.upsertDestination({
        id: d.id,
        name: d.name,
        sourceId: d.source,
        organisation: d.organisation,
        fhirBaseUrl: d.fhirBaseUrl,
        ...(d.auth.kind === 'bearer' ? { bearerToken: d.auth.token } : {}),
        ...(d.readKey ? { readKeySha256: createHash('sha256').update(d.readKey, 'utf8').digest() } : {}),
        ...(d.auth.kind === 'smart-backend'
          ? {
              smartBackend: {
                clientId: d.auth.clientId,
                scope: d.auth.scope,
                ...(d.auth.tokenUrl ? { tokenUrl: d.auth.tokenUrl } : {}),
                keyId: d.auth.keyId,
                algorithm: d.auth.algorithm,
                privateKey: d.auth.privateKey,
              },
            }
          : {}),
        resourceTypes: d.resourceTypes,
        sources: d.sources.filter((id) => id !== d.source),
        profiles: d.profiles,
        purpose: d.purpose,
        deliveryMode: d.deliveryMode,
        maxAttempts: d.retry.maxAttempts,
        backoffMs: d.retry.backoffMs,
      }),
    );
  }

  @Get()
  @ApiOperation({ summary: 'List destinations' })
  list(): Promise<DestinationView[]> {
    return unavailableAs503(() => this.store.sharing.listDestinations());
  }

  @Get(':id/decisions')
  @ApiOperation({
    summary: 'Sharing decisions for a destination (delivered, denied, failed), each with its AuditEvent',
  })
  @ApiParam({ name: 'id', example: 'hospital-a' })
  @ApiResponse({ status: 404, description: 'unknown destination' })
  async decisions(@Param('id') id: string): Promise<SharingDecision[]> {
    if (!(await unavailableAs503(() => this.store.sharing.findDestination(id)))) {
      throw new FhirRequestError(
        404,
        operationOutcome([outcomeIssue({ code: 'not-found', text: 'unknown destination' })]),
      );
    }
    return unavailableAs503(() => this.store.sharing.decisionsFor(id));
  }
}
