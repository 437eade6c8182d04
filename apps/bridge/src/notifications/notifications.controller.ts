import { Controller, Delete, HttpCode, Param, Post, Put, Req, Res } from '@nestjs/common';
import { ApiBody, ApiHeader, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { FHIR_JSON } from '../fhir/fhir-response';
import { type AcceptedNotification, type HookRequest, NotificationsService } from './notifications.service';

const OUTCOME_SCHEMA = { type: 'object', description: 'FHIR R4 OperationOutcome' };
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const RESOURCE_ID = /^[A-Za-z0-9\-.]{1,64}$/;

@ApiTags('notifications')
@ApiHeader({
  name: 'Authorization',
  description: 'Bearer <the source secret> (sources with bearer authentication)',
  required: false,
})
@ApiHeader({
  name: 'X-Hub-Signature',
  description: 'sha256=<hex HMAC-SHA256 of the raw body> (athenahealth; sources with hub-signature)',
  required: false,
})
@ApiHeader({
  name: 'X-Signature',
  description: '<hex HMAC-SHA256 of the raw body> (Medplum; sources with medplum-signature)',
  required: false,
})
@ApiResponse({
  status: 401,
  description: 'a configured check failed: one issue per failing header',
  schema: OUTCOME_SCHEMA,
})
@ApiResponse({ status: 404, description: 'unknown or deleted (disabled) source', schema: OUTCOME_SCHEMA })
@ApiResponse({ status: 413, description: 'body larger than MAX_BODY_BYTES', schema: OUTCOME_SCHEMA })
@ApiResponse({
  status: 415,
  description: 'content type other than application/fhir+json or application/json',
  schema: OUTCOME_SCHEMA,
})
@ApiResponse({
  status: 429,
  description: "over the source's rate limit; retry after Retry-After seconds",
  schema: OUTCOME_SCHEMA,
})
@ApiResponse({
  status: 503,
  description: 'database unavailable; retry after Retry-After seconds',
  schema: OUTCOME_SCHEMA,
})
@Controller('hooks')
export class NotificationsController {
  constructor(private readonly notifications: NotificationsService) {}

  @Post(':sourceId')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Receive a notification',
    description:
      'A bare FHIR resource (Medplum / classic rest-hook), an empty ping, or a subscription notification Bundle ' +
      '(R4 Backport `history` with Parameters, R4B/athenahealth `history` with SubscriptionStatus, R5 ' +
      '`subscription-notification`). Answered 200 only after the raw notification is committed.',
  })
  @ApiParam({ name: 'sourceId', example: 'demo' })
  @ApiBody({ required: false, schema: { type: 'object', description: 'FHIR resource or Bundle' } })
  @ApiResponse({
    status: 200,
    description: 'accepted (OperationOutcome, id = inbox id)',
    schema: OUTCOME_SCHEMA,
  })
  @ApiResponse({
    status: 400,
    description: 'not JSON or not a notification; kept as a dead letter',
    schema: OUTCOME_SCHEMA,
  })
  // In the running bridge this route's handler is the plain Fastify one of hook-route.ts (the same
  // service call and answer, without Nest's per-request pipeline); this method documents the route.
  async post(
    @Param('sourceId') sourceId: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<OperationOutcome> {
    return this.receive(reply, hookRequest(request, sourceId, 'POST'));
  }

  @Put(':sourceId/:resourceType/:id')
  @HttpCode(200)
  @ApiOperation({ summary: 'Receive a resource update (HAPI classic rest-hook with payload)' })
  async put(
    @Param('sourceId') sourceId: string,
    @Param('resourceType') resourceType: string,
    @Param('id') id: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<OperationOutcome> {
    return this.receive(reply, hookRequest(request, sourceId, 'PUT', pathResource(resourceType, id)));
  }

  @Delete(':sourceId/:resourceType/:id')
  @HttpCode(200)
  @ApiOperation({ summary: 'Receive a resource delete (HAPI delete messages)' })
  async delete(
    @Param('sourceId') sourceId: string,
    @Param('resourceType') resourceType: string,
    @Param('id') id: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<OperationOutcome> {
    return this.receive(reply, hookRequest(request, sourceId, 'DELETE', pathResource(resourceType, id)));
  }

  private async receive(reply: FastifyReply, request: HookRequest): Promise<OperationOutcome> {
    const accepted = await this.notifications.accept(request);
    void reply.header('content-type', FHIR_JSON);
    return acceptedOutcome(accepted);
  }
}

/** What the service needs of one request on a hook route (shared with the fast path, hook-route.ts). */
export function hookRequest(
  request: FastifyRequest,
  sourceId: string,
  method: HookRequest['method'],
  resource?: HookRequest['pathResource'],
): HookRequest {
  return {
    sourceId,
    method,
    path: request.url.split('?')[0],
    pathResource: resource,
    headers: request.headers,
    body: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
  };
}

function pathResource(resourceType: string, id: string): HookRequest['pathResource'] {
  if (!RESOURCE_TYPE.test(resourceType) || !RESOURCE_ID.test(id)) {
    throw new FhirRequestError(
      400,
      operationOutcome([
        outcomeIssue({ code: 'value', text: 'the path must be /hooks/{sourceId}/{ResourceType}/{id}' }),
      ]),
    );
  }
  return { resourceType, id };
}

/** The 200 answer: the inbox id, what was accepted, and any tolerated departure from the specs. */
export function acceptedOutcome({
  inboxId,
  shape,
  notificationType,
  eventCount: events,
  warnings,
}: AcceptedNotification): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    id: inboxId,
    issue: [
      {
        severity: 'information',
        code: 'informational',
        details: {
          text: `accepted ${notificationType} (${shape}, ${events} event${events === 1 ? '' : 's'})`,
        },
      },
      ...warnings,
    ],
  };
}
