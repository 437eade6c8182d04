import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import { APP_CONFIG, STORE } from '@fhir-trail/runtime';
import type { Destination, Store } from '@fhir-trail/store';
import type { FastifyRequest } from 'fastify';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { single } from '../fhir/json-body';
import { RecipientJwtVerifier } from './recipient-jwt';

/** Who is reading: the destination (organisation, source, default purpose) and the credential used. */
export interface RecipientCaller {
  readonly destination: Destination;
  /** `destination:<id>` for a read key, `jwt:<sub>` for a bearer JWT. */
  readonly credential: string;
}

export type RecipientRequest = FastifyRequest & { recipient?: RecipientCaller };

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Reads by recipients: lets a request through with `Authorization: Bearer <read key>` (a
 * destination's read key, matched by SHA-256) or `Bearer <JWT>` verified as configured
 * (RECIPIENT_JWT_*), whose `sub` names an enabled destination; 401 OperationOutcome otherwise.
 * Sets `request.recipient`.
 */
@Injectable()
export class RecipientAuthGuard implements CanActivate {
  private readonly jwt?: RecipientJwtVerifier;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(STORE) private readonly store: Store,
  ) {
    const settings = config.recipientJwt;
    if (settings) {
      this.jwt = new RecipientJwtVerifier({
        issuer: settings.issuer,
        audience: settings.audience,
        ...(settings.hs256Secret ? { hs256Secret: settings.hs256Secret } : {}),
        ...(settings.keyFile ? { publicKeys: readFileSync(settings.keyFile, 'utf8') } : {}),
      });
    }
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<RecipientRequest>();
    const header = single(request.headers.authorization);
    const presented = header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
    if (presented !== undefined) {
      const caller = await unavailableAs503(() => this.identify(presented));
      if (caller) {
        request.recipient = caller;
        return true;
      }
    }
    throw new FhirRequestError(
      401,
      operationOutcome([
        outcomeIssue({
          code: 'security',
          text: 'the Authorization header is missing or is not a valid recipient read key or JWT (Bearer)',
        }),
      ]),
    );
  }

  private async identify(token: string): Promise<RecipientCaller | undefined> {
    if (this.jwt && JWT_SHAPE.test(token)) {
      const verified = this.jwt.verify(token);
      if (!verified.ok) return undefined;
      const destination = await this.store.sharing.findDestination(verified.subject);
      return destination?.enabled ? { destination, credential: `jwt:${verified.subject}` } : undefined;
    }
    const hash = createHash('sha256').update(token, 'utf8').digest();
    const destination = await this.store.sharing.findDestinationByReadKey(hash);
    return destination ? { destination, credential: `destination:${destination.id}` } : undefined;
  }
}
