import { readFile } from 'node:fs/promises';
import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import { type SourceRecord, type SourceRegistration, Store } from '@fhir-trail/store';
import { z } from 'zod';
import { APP_CONFIG, STORE } from '@fhir-trail/runtime';

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
 * Registered senders. Loaded at start from SOURCES_FILE (or, in development, the `demo` source)
 * into PostgreSQL; looked up per request through a short cache. Refuses to start in production
 * while any source still has a well-known default secret.
 */
@Injectable()
export class SourcesService implements OnModuleInit {
  private readonly logger = new Logger(SourcesService.name);
  private readonly cache = new Map<string, { at: number; source: SourceRecord | undefined }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
  ) {}

  async onModuleInit(): Promise<void> {
    const registrations: SourceRegistration[] = [];
    if (this.config.sourcesFile) registrations.push(...(await readSourcesFile(this.config.sourcesFile)));
    if (this.config.env !== 'production') registrations.push(DEMO_SOURCE);
    for (const registration of registrations) await this.store.sources.upsert(registration);
    const insecure = await this.store.sources.withDefaultSecret();
    if (this.config.env === 'production' && insecure.length > 0) {
      throw new Error(
        `refusing to start in production: source(s) ${insecure.join(', ')} still have a default secret; ` +
          'register them with their own token in SOURCES_FILE',
      );
    }
    this.logger.log({ msg: 'sources registered', count: registrations.length });
  }

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
