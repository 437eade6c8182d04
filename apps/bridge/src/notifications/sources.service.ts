import { readFile } from 'node:fs/promises';
import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import { type SourceRecord, type SourceRegistration, Store } from '@fhir-trail/store';
import { z } from 'zod';
import { STORE } from '@fhir-trail/runtime';

/** The development source: `Authorization: Bearer demo-token` on `/hooks/demo`. */
export const DEMO_SOURCE: SourceRegistration = {
  id: 'demo',
  name: 'Demo EHR (development only)',
  organisation: { display: 'Demo EHR', identifier: { system: 'urn:fhir-trail:source', value: 'demo' } },
  token: 'demo-token',
  defaultSecret: true,
};

const sourcesFileSchema = z.array(
  z
    .object({
      id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'letters, digits and - (at most 64)'),
      name: z.string().min(1),
      organisation: z.object({
        display: z.string().min(1),
        identifier: z.object({ system: z.string().optional(), value: z.string().optional() }).optional(),
        reference: z.string().optional(),
      }),
      fhirBaseUrl: z.url().optional(),
      token: z.string().min(16, 'at least 16 characters').optional(),
      tokenSha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits')
        .optional(),
    })
    .refine((s) => Boolean(s.token) !== Boolean(s.tokenSha256), {
      message: 'give exactly one of token or tokenSha256',
    }),
);

const CACHE_MS = 5_000;

/**
 * Registers the configured sources — SOURCES_FILE, plus the `demo` source outside production — and
 * refuses to start in production while any registered source still has a well-known default
 * secret. Runs before the bridge starts anything else, so a refusal leaves nothing running.
 */
export async function registerSources(config: AppConfig): Promise<number> {
  const registrations: SourceRegistration[] = [];
  if (config.sourcesFile) registrations.push(...(await readSourcesFile(config.sourcesFile)));
  if (config.env !== 'production') registrations.push(DEMO_SOURCE);
  const store = await Store.open({
    databaseUrl: config.databaseUrl,
    masterKey: config.ledger.masterKey,
    migrate: true,
    max: 1,
  });
  try {
    for (const registration of registrations) await store.sources.upsert(registration);
    const insecure = await store.sources.withDefaultSecret();
    if (config.env === 'production' && insecure.length > 0) {
      throw new Error(
        `refusing to start in production: source(s) ${insecure.join(', ')} still have a default secret; ` +
          'register them with their own token in SOURCES_FILE',
      );
    }
  } finally {
    await store.close();
  }
  return registrations.length;
}

/** Registered senders, looked up per request through a short cache. */
@Injectable()
export class SourcesService {
  private readonly cache = new Map<string, { at: number; source: SourceRecord | undefined }>();

  constructor(@Inject(STORE) private readonly store: Store) {}

  async find(id: string): Promise<SourceRecord | undefined> {
    const hit = this.cache.get(id);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.source;
    const source = await this.store.sources.findById(id);
    this.cache.set(id, { at: Date.now(), source });
    return source;
  }
}

async function readSourcesFile(path: string): Promise<SourceRegistration[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new Error(`SOURCES_FILE ${path}: not readable JSON`, { cause: error });
  }
  const parsed = sourcesFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(
      `SOURCES_FILE ${path}:\n${parsed.error.issues.map((i) => `  - [${i.path.join('.')}] ${i.message}`).join('\n')}`,
    );
  }
  return parsed.data.map((s) => ({ ...s, defaultSecret: false }));
}
