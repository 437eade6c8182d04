import { createHash, timingSafeEqual } from 'node:crypto';
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import { APP_CONFIG } from '@fhir-trail/runtime';
import type { FastifyRequest } from 'fastify';
import { AdminKeysService } from '../admin/admin-keys.service';
import { single } from '../fhir/json-body';

/** Which key let a request in; written to the consent ledger leaf as its actor. */
export type ConsentCaller = 'api:consent-key' | 'api:admin-key';

/**
 * Lets a request through with `Authorization: Bearer <CONSENT_API_KEY>` (a patient app) or the admin
 * API key; 401 OperationOutcome otherwise. Sets `request.consentCaller`.
 */
@Injectable()
export class ConsentKeyGuard implements CanActivate {
  private readonly consentKeyHash?: Buffer;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly adminKeys: AdminKeysService,
  ) {
    if (config.consentApiKey) this.consentKeyHash = sha256(config.consentApiKey);
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<FastifyRequest & { consentCaller?: ConsentCaller }>();
    const header = single(request.headers.authorization);
    const presented = header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
    if (presented !== undefined) {
      if (this.consentKeyHash && timingSafeEqual(sha256(presented), this.consentKeyHash)) {
        request.consentCaller = 'api:consent-key';
        return true;
      }
      if (await this.adminKeys.matches(presented)) {
        request.consentCaller = 'api:admin-key';
        return true;
      }
    }
    throw new FhirRequestError(
      401,
      operationOutcome([
        outcomeIssue({
          code: 'security',
          text: 'the Authorization header is missing or is not a valid consent or admin API key (Bearer)',
        }),
      ]),
    );
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
