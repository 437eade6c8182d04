import { Inject, Injectable } from '@nestjs/common';
import { type SourceAuth, SourceFhirClient } from '@fhir-trail/fhir-client';
import { STORE } from './tokens';
import type { FhirCredentials, SourceRecord, Store } from '@fhir-trail/store';

/**
 * One FHIR client per source, kept for the life of the worker so SMART access tokens are reused
 * until shortly before they expire and concurrent reads of one resource collapse into one. A
 * changed registration (URL or credentials, seen through `updatedAt`) gets a fresh client.
 */
@Injectable()
export class SourceClients {
  private readonly clients = new Map<string, { version: string; client: SourceFhirClient }>();

  constructor(@Inject(STORE) private readonly store: Store) {}

  /** The client for a source, or undefined when the source has no FHIR base URL to call. */
  async for(source: SourceRecord): Promise<SourceFhirClient | undefined> {
    if (!source.fhirBaseUrl) return undefined;
    const version = `${source.fhirBaseUrl}|${source.updatedAt.getTime()}`;
    const cached = this.clients.get(source.id);
    if (cached?.version === version) return cached.client;
    const credentials = await this.store.sources.fhirCredentials(source.id);
    const client = new SourceFhirClient({ baseUrl: source.fhirBaseUrl, auth: toSourceAuth(credentials) });
    this.clients.set(source.id, { version, client });
    return client;
  }
}

function toSourceAuth(credentials: FhirCredentials | undefined): SourceAuth {
  if (!credentials || credentials.kind === 'none') return { type: 'none' };
  if (credentials.kind === 'bearer') return { type: 'bearer', token: credentials.token };
  return {
    type: 'smart-backend',
    clientId: credentials.clientId,
    scope: credentials.scope,
    tokenUrl: credentials.tokenUrl,
    privateKey: credentials.privateKey,
    keyId: credentials.keyId,
    algorithm: credentials.algorithm,
  };
}
