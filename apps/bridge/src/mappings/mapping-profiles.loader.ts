import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppConfig } from '@fhir-trail/config';
import { compileMappingProfile, FhirRequestError, parseMappingProfile } from '@fhir-trail/fhir-mapping';
import { IDENTITY_PROFILE_ID } from '@fhir-trail/runtime';
import { type MappingProfileImport, Store } from '@fhir-trail/store';

/**
 * Loads every `*.json` mapping profile in MAPPING_PROFILES_DIR (first start, and every start after):
 * a file whose content is not stored yet becomes the profile's next version, activated only when
 * the profile has no active version — after that the admin API decides which version is active. A
 * bad file stops the start with the file's name and every problem.
 */
export async function registerMappingProfiles(config: AppConfig): Promise<MappingProfileFileLoad[]> {
  const dir = config.mappingProfilesDir;
  if (!dir) return [];
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.json')).sort();
  } catch (error) {
    throw new Error(`MAPPING_PROFILES_DIR ${dir}: not a readable folder`, { cause: error });
  }
  const documents = [];
  for (const name of names) {
    documents.push({ name, document: await readProfileFile(join(dir, name)) });
  }
  const store = await Store.open({
    databaseUrl: config.databaseUrl,
    masterKey: config.ledger.masterKey,
    migrate: true,
    max: 1,
  });
  const loaded: MappingProfileFileLoad[] = [];
  try {
    for (const { name, document } of documents) {
      const { outcome, version } = await store.mappingProfiles.importVersion(
        document.id,
        document as unknown as Record<string, unknown>,
        `file:${name}`,
      );
      loaded.push({ file: name, profile: document.id, version, outcome });
    }
  } finally {
    await store.close();
  }
  return loaded;
}

/** What became of one profile file (logged once the bridge's logger is up). */
export interface MappingProfileFileLoad {
  readonly file: string;
  readonly profile: string;
  readonly version: number;
  readonly outcome: MappingProfileImport;
}

async function readProfileFile(path: string) {
  let json: unknown;
  try {
    json = JSON.parse((await readFile(path, 'utf8')).replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new Error(`mapping profile ${path}: not readable JSON`, { cause: error });
  }
  // The stored version number is the store's to give; a file's own `version` is only a hint.
  const withVersion = isObject(json) && json.version === undefined ? { ...json, version: 1 } : json;
  try {
    const document = parseMappingProfile(withVersion);
    if (document.id === IDENTITY_PROFILE_ID) {
      throw new Error(`the id ${IDENTITY_PROFILE_ID} is reserved for sources without a profile`);
    }
    compileMappingProfile(document);
    return document;
  } catch (error) {
    const problems =
      error instanceof FhirRequestError
        ? error.outcome.issue.map(
            (i) => `  - ${i.expression?.join(', ') ?? '(profile)'}: ${i.details?.text ?? i.code}`,
          )
        : [`  - ${error instanceof Error ? error.message : String(error)}`];
    throw new Error(`mapping profile ${path}:\n${problems.join('\n')}`, { cause: error });
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
