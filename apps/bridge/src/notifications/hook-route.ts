import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { FHIR_JSON } from '../fhir/fhir-response';
import { acceptedOutcome, hookRequest } from './notifications.controller';
import type { NotificationsService } from './notifications.service';

/** The route Nest registers for `NotificationsController.post`. */
const HOT_ROUTE = { method: 'POST', url: '/hooks/:sourceId' } as const;

/**
 * Serves `POST /hooks/{sourceId}` — the intake's hot path — with a plain Fastify handler instead of
 * Nest's router. Nest still registers the route from `NotificationsController.post` (so the route
 * table, the OpenAPI document and every Fastify hook stay as they are); this swaps only the
 * handler, as Fastify announces the route. The fast handler does exactly what the controller does
 * — same service call, same OperationOutcome, same content type — minus Nest's per-request
 * execution context, parameter resolution and response pipeline. Errors are thrown to Fastify's
 * error handler, which Nest installed: the global OperationOutcomeFilter, exactly as for a route
 * Nest runs itself.
 *
 * Call before the application is initialised (Nest registers routes in `init()`/`listen()`).
 */
export function serveHookFastPath(fastify: FastifyInstance, notifications: NotificationsService): void {
  const handler = async (
    request: FastifyRequest<{ Params: { sourceId: string } }>,
    reply: FastifyReply,
  ): Promise<FastifyReply> => {
    const accepted = await notifications.accept(hookRequest(request, request.params.sourceId, 'POST'));
    // A string body is sent as is: no serializer lookup, no second pass over the object.
    return reply
      .code(200)
      .header('content-type', FHIR_JSON)
      .send(JSON.stringify(acceptedOutcome(accepted)));
  };
  fastify.addHook('onRoute', (route: RouteOptions) => {
    if (route.method === HOT_ROUTE.method && route.url === HOT_ROUTE.url) {
      route.handler = handler as RouteOptions['handler'];
    }
  });
}
