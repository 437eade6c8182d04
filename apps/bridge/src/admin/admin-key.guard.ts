import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import type { FastifyRequest } from 'fastify';
import { single } from '../fhir/json-body';
import { AdminKeysService } from './admin-keys.service';

/** Lets a request through only with `Authorization: Bearer <admin API key>`; 401 OperationOutcome otherwise. */
@Injectable()
export class AdminKeyGuard implements CanActivate {
  constructor(private readonly keys: AdminKeysService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const header = single(context.switchToHttp().getRequest<FastifyRequest>().headers.authorization);
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (match && (await this.keys.matches(match[1]))) return true;
    throw new FhirRequestError(
      401,
      operationOutcome([
        outcomeIssue({
          code: 'security',
          text: 'the Authorization header is missing or is not a valid admin API key (Bearer)',
        }),
      ]),
    );
  }
}
