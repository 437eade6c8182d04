import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { FhirRequestError, operationOutcome, outcomeIssue, type IssueCode } from '@fhir-trail/fhir-mapping';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { FHIR_JSON, RETRY_AFTER_SECONDS } from './fhir-response';
import { ThrottledError } from './throttled.error';

const ISSUE_CODE_BY_STATUS: Readonly<Record<number, IssueCode>> = {
  400: 'invalid',
  401: 'security',
  403: 'forbidden',
  404: 'not-found',
  405: 'not-supported',
  408: 'timeout',
  413: 'too-costly',
  415: 'not-supported',
  422: 'processing',
  429: 'throttled',
  503: 'transient',
};

/**
 * Everything leaves the bridge as a FHIR OperationOutcome with the right status — route errors,
 * FHIR request errors, Fastify's own body errors (Nest maps them to HttpExceptions, e.g. 413 for a
 * body over the limit), and crashes (500, logged without request content).
 */
@Catch()
export class OperationOutcomeFilter implements ExceptionFilter {
  private readonly logger = new Logger(OperationOutcomeFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    sendOutcome(http.getRequest<FastifyRequest>(), http.getResponse<FastifyReply>(), exception, this.logger);
  }
}

function sendOutcome(request: FastifyRequest, reply: FastifyReply, exception: unknown, logger: Logger): void {
  const { status, outcome } = toOutcome(exception);
  if (status >= 500 && status !== 503) {
    logger.error({
      msg: 'request failed',
      method: request.method,
      route: request.routeOptions.url,
      error: exception instanceof Error ? exception.name : typeof exception,
      stack: exception instanceof Error ? exception.stack : undefined,
    });
  }
  if (status === 503 || status === 429) {
    const seconds = exception instanceof ThrottledError ? exception.retryAfterSeconds : RETRY_AFTER_SECONDS;
    void reply.header('retry-after', String(seconds));
  }
  if (status === 401) void reply.header('www-authenticate', 'Bearer');
  void reply.status(status).header('content-type', FHIR_JSON).send(JSON.stringify(outcome));
}

function toOutcome(exception: unknown): { status: number; outcome: OperationOutcome } {
  if (exception instanceof FhirRequestError) {
    return { status: exception.status, outcome: exception.outcome };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const text =
      status === 413
        ? 'the request body is larger than this bridge accepts (MAX_BODY_BYTES)'
        : exception.message;
    return {
      status,
      outcome: outcomeFor(
        status >= 500 ? 'fatal' : 'error',
        ISSUE_CODE_BY_STATUS[status] ?? 'exception',
        text,
      ),
    };
  }
  return {
    status: 500,
    outcome: outcomeFor('fatal', 'exception', 'internal error; the request was not processed'),
  };
}

function outcomeFor(severity: 'error' | 'fatal', code: IssueCode, text: string): OperationOutcome {
  return operationOutcome([outcomeIssue({ severity, code, text })]);
}
