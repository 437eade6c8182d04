import { readFile } from 'node:fs/promises';
import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import { type SenderCredentials, type SourceRecord, type SourceRegistration, Store } from '@fhir-trail/store';
import { STORE } from '@fhir-trail/runtime';
import { SOURCE_ID, sourcesFileSchema, toSourceRegistration } from './source-registration.schema';

/** The development source: `Authorization: Bearer demo-token` on `/hooks/demo`. */
export const DEMO_SOURCE: SourceRegistration = {
  id: 'demo',
  name: 'Demo EHR (development only)',
  organisation: { display: 'Demo EHR', identifier: { system: 'urn:fhir-trail:source', value: 'demo' } },
  token: 'demo-token',
  defaultSecret: true,
};

/** How long a source looked up for the intake is reused; admin changes reach other replicas within it. */
const CACHE_MS = 5_000;
/** Lookups of ids nobody registered are cached too; this bounds what a caller inventing ids can fill. */
const CACHE_MAX_ENTRIES = 10_000;

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

/** A source as the intake needs it: its record, and what its notifications are checked against. */
export interface IntakeSource {
  readonly source: SourceRecord;
  readonly credentials: SenderCredentials;
}

/** Registered senders, looked up per request through a short cache. */
@Injectable()
export class SourcesService {
  private readonly cache = new Map<string, { at: number; intake: IntakeSource | undefined }>();

  constructor(@Inject(STORE) private readonly store: Store) {}

  /** The source with this id, enabled or not; undefined when there is none. */
  async find(id: string): Promise<IntakeSource | undefined> {
    if (!SOURCE_ID.test(id)) return undefined;
    const hit = this.cache.get(id);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.intake;
    const intake = await this.store.sources.findForIntake(id);
    if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
    this.cache.set(id, { at: Date.now(), intake });
    return intake;
  }

  /**
   * The source with this id if a lookup within the cache period found it, without waiting for
   * anything; undefined otherwise (then ask `find`).
   */
  cached(id: string): IntakeSource | undefined {
    const hit = this.cache.get(id);
    return hit && Date.now() - hit.at < CACHE_MS ? hit.intake : undefined;
  }

  /** Forgets a cached source after the admin API changed it (this replica sees it at once). */
  evict(id: string): void {
    this.cache.delete(id);
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
  return parsed.data.map((entry) => toSourceRegistration(entry.id, entry));
}
