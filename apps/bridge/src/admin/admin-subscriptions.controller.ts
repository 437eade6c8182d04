import { randomBytes } from 'node:crypto';
import { Controller, Get, HttpCode, Inject, Param, Post, Req, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Subscription } from '@medplum/fhirtypes';
import { isSourceFhirError, type SubscriptionGrant } from '@fhir-trail/fhir-client';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import { SourceClients, STORE } from '@fhir-trail/runtime';
import { hashToken, type Store, type SubscriptionView } from '@fhir-trail/store';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { parseJsonBody, single } from '../fhir/json-body';
import { validationError } from '../notifications/source-registration.schema';
import { SourcesService } from '../notifications/sources.service';
import { AdminKeyGuard } from './admin-key.guard';

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';

const createSubscriptionSchema = z
  .object({
    profile: z.enum(['backport', 'classic']).default('backport'),
    topic: z.url().optional().describe('SubscriptionTopic canonical (backport profile)'),
    criteria: z
      .string()
      .min(1)
      .optional()
      .describe('search criteria, e.g. Observation?patient=... (classic profile)'),
    content: z.enum(['full-resource', 'id-only', 'empty']).default('id-only'),
    heartbeatPeriodSeconds: z.number().int().positive().max(86_400).optional(),
    endpoint: z
      .url()
      .optional()
      .describe('the hook URL the source will call; default: this bridge, /hooks/{id}'),
  })
  .refine((b) => (b.profile === 'backport' ? Boolean(b.topic) : Boolean(b.criteria)), {
    message: 'a backport subscription needs a topic, a classic one criteria',
    path: ['topic'],
  });

/** What the source granted, as recorded. The secret it will present is never shown again. */
export interface CreatedSubscription {
  readonly reference: string;
  readonly granted: SubscriptionGrant;
  readonly subscription: SubscriptionView | undefined;
}

/**
 * Creates Subscriptions on a source (R4 classic rest-hook or the R4 Subscriptions Backport
 * profile), each with its own bearer secret in `channel.header`, reads back what the server
 * granted (status, content level, heartbeat) and records it, so the worker can watch heartbeats
 * and repair gaps.
 */
@ApiTags('admin')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'missing or wrong admin API key (OperationOutcome)' })
@UseGuards(AdminKeyGuard)
@Controller('admin/sources/:id/subscriptions')
export class AdminSubscriptionsController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly clients: SourceClients,
    private readonly sources: SourcesService,
  ) {}

  @Post()
  @HttpCode(201)
  @ApiOperation({ summary: 'Create a Subscription on the source and record what it granted' })
  @ApiParam({ name: 'id', example: 'st-mary-epic' })
  @ApiBody({
    schema: {
      type: 'object',
      properties: {
        profile: { type: 'string', enum: ['backport', 'classic'] },
        topic: { type: 'string' },
        criteria: { type: 'string' },
        content: { type: 'string', enum: ['full-resource', 'id-only', 'empty'] },
        heartbeatPeriodSeconds: { type: 'integer' },
        endpoint: { type: 'string' },
      },
    },
  })
  @ApiResponse({ status: 201, description: '{ reference, granted, subscription }' })
  @ApiResponse({ status: 400, description: 'invalid request (OperationOutcome with expression)' })
  @ApiResponse({ status: 404, description: 'unknown source' })
  @ApiResponse({ status: 502, description: 'the source refused or failed (OperationOutcome)' })
  async create(@Param('id') id: string, @Req() request: FastifyRequest): Promise<CreatedSubscription> {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const parsed = createSubscriptionSchema.safeParse(
      parseJsonBody(raw, single(request.headers['content-type'])),
    );
    if (!parsed.success) throw validationError(parsed.error);
    const body = parsed.data;
    const source = await unavailableAs503(() => this.store.sources.findById(id));
    if (!source?.enabled) throw outcomeError(404, 'not-found', 'unknown source');
    const client = await this.clients.for(source);
    if (!client)
      throw outcomeError(400, 'invalid', 'the source has no FHIR base URL to create a subscription on');

    const secret = randomBytes(32).toString('base64url');
    const endpoint = body.endpoint ?? `${request.protocol}://${request.host}/hooks/${source.id}`;
    let grant: SubscriptionGrant;
    try {
      const written = await client.createSubscription(subscriptionResource(body, endpoint, secret));
      grant = written.granted;
    } catch (error) {
      if (isSourceFhirError(error)) {
        throw new FhirRequestError(
          502,
          operationOutcome([
            outcomeIssue({
              code: 'exception',
              text: `the source did not create the subscription (${error.code})`,
            }),
          ]),
          { cause: error },
        );
      }
      throw error;
    }
    const reference = `Subscription/${grant.id}`;
    await unavailableAs503(() =>
      this.store.subscriptions.registerManaged({
        sourceId: source.id,
        reference,
        tokenSha256: hashToken(secret),
        status: grant.status,
        topic: body.topic ?? body.criteria,
        content: grant.content ?? body.content,
        heartbeatPeriodSeconds: grant.heartbeatPeriodSeconds ?? body.heartbeatPeriodSeconds,
      }),
    );
    this.sources.evict(source.id);
    return {
      reference,
      granted: grant,
      subscription: await this.store.subscriptions.find(source.id, reference),
    };
  }

  @Get()
  @ApiOperation({ summary: "The source's subscriptions: status, counter, heartbeat, alerts, open gaps" })
  async list(@Param('id') id: string): Promise<readonly SubscriptionView[]> {
    return unavailableAs503(() => this.store.subscriptions.list({ sourceId: id }));
  }
}

function subscriptionResource(
  body: z.infer<typeof createSubscriptionSchema>,
  endpoint: string,
  secret: string,
): Subscription {
  const backport = body.profile === 'backport';
  const channelExtensions = [
    ...(body.heartbeatPeriodSeconds
      ? [{ url: `${BACKPORT}backport-heartbeat-period`, valueUnsignedInt: body.heartbeatPeriodSeconds }]
      : []),
  ];
  return {
    resourceType: 'Subscription',
    ...(backport ? { meta: { profile: [`${BACKPORT}backport-subscription`] } } : {}),
    status: 'requested',
    reason: 'FHIR Trail bridge',
    criteria: (backport ? body.topic : body.criteria) ?? '',
    channel: {
      type: 'rest-hook',
      endpoint,
      header: [`Authorization: Bearer ${secret}`],
      ...(body.content === 'empty' && !backport ? {} : { payload: 'application/fhir+json' }),
      ...(backport
        ? {
            _payload: {
              extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: body.content }],
            },
          }
        : {}),
      ...(channelExtensions.length > 0 ? { extension: channelExtensions } : {}),
    },
  };
}

function outcomeError(status: number, code: 'not-found' | 'invalid', text: string): FhirRequestError {
  return new FhirRequestError(status, operationOutcome([outcomeIssue({ code, text })]));
}
