import { Inject, Injectable } from '@nestjs/common';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import {
  compileMappingProfile,
  type CompiledMappingProfile,
  FhirRequestError,
  normaliseResource,
  operationOutcome,
  outcomeIssue,
  parseMappingProfile,
} from '@fhir-trail/fhir-mapping';
import type { MappingProfileVersion, Store } from '@fhir-trail/store';
import { STORE } from './tokens';

/** The built-in profile of sources without one: no mapping, R4 base validation only. */
export const IDENTITY_PROFILE_ID = 'identity';
export const IDENTITY_PROFILE_VERSION = 0;

/** `Provenance.policy` naming the mapping profile version that produced a resource. */
export function mappingProfilePolicy(profileId: string, version: number): string {
  return `urn:fhir-trail:mapping-profile:${profileId}|${version}`;
}

/** What one resource became under a source's mapping. */
export type MappedResource =
  | {
      readonly valid: true;
      readonly output: Resource;
      readonly outcome: OperationOutcome;
    }
  | {
      readonly valid: false;
      readonly output?: Resource;
      readonly outcome: OperationOutcome;
      /** The dead letter's reason: `invalid-resource`, `mapping-failed`, `mapping-profile-unavailable`. */
      readonly reasonCode: string;
    };

/** The mapping a source's resources go through now (its active profile version, or identity). */
export interface SourceMapping {
  readonly profileId: string;
  /** Undefined when the source names a profile that has no active version. */
  readonly version?: number;
  /** `{id}|{version}` (`{id}|none` when unavailable), as recorded on dead letters. */
  readonly label: string;
  /** `Provenance.policy` of what it stores; undefined when unavailable (it stores nothing). */
  readonly policy?: string;
  normalise(resource: Resource): MappedResource;
  /**
   * The id a resource of the source is stored under (reference rewriting may prefix it), for a
   * delete, which carries no resource to map.
   */
  storedId(resourceType: string, id: string): string;
}

/** Compiled profiles kept per process; a profile version never changes, so entries never go stale. */
const CACHE_MAX_ENTRIES = 64;

/**
 * Loads mapping profiles from the store, compiles each version once (cached per id + version), and
 * answers which mapping a source's resources go through right now: its active version (looked up
 * on every call, one indexed read, so an activation applies to the very next notification or
 * replay), or the identity profile for a source without one.
 */
@Injectable()
export class MappingProfileRegistry {
  private readonly compiled = new Map<string, CompiledMappingProfile>();

  constructor(@Inject(STORE) private readonly store: Store) {}

  async forSource(source: { readonly id: string; readonly mappingProfile?: string }): Promise<SourceMapping> {
    if (!source.mappingProfile) return identityMapping();
    const profileId = source.mappingProfile;
    const version = await this.store.mappingProfiles.activeVersion(profileId);
    if (version === undefined) {
      return unavailableMapping(
        profileId,
        `the source's mapping profile ${profileId} has no active version; activate one, then replay`,
      );
    }
    let profile: CompiledMappingProfile;
    try {
      profile = await this.load(profileId, version);
    } catch (error) {
      const text = error instanceof FhirRequestError ? error.message : 'it could not be compiled';
      return unavailableMapping(profileId, `mapping profile ${profileId} version ${version}: ${text}`);
    }
    return profileMapping(profile, source.id);
  }

  /** A stored version (the latest when `version` is undefined), compiled; undefined if there is none. */
  async find(
    profileId: string,
    version?: number,
  ): Promise<
    { readonly record: MappingProfileVersion; readonly profile: CompiledMappingProfile } | undefined
  > {
    const record = await this.store.mappingProfiles.find(profileId, version);
    if (!record) return undefined;
    return { record, profile: this.compile(record) };
  }

  /** Parses and compiles a stored version, once per id + version. */
  compile(record: Pick<MappingProfileVersion, 'profileId' | 'version' | 'document'>): CompiledMappingProfile {
    const key = `${record.profileId}|${record.version}`;
    const hit = this.compiled.get(key);
    if (hit) return hit;
    const profile = compileMappingProfile(parseMappingProfile(record.document));
    if (this.compiled.size >= CACHE_MAX_ENTRIES) this.compiled.clear();
    this.compiled.set(key, profile);
    return profile;
  }

  private async load(profileId: string, version: number): Promise<CompiledMappingProfile> {
    const hit = this.compiled.get(`${profileId}|${version}`);
    if (hit) return hit;
    const record = await this.store.mappingProfiles.find(profileId, version);
    if (!record) throw new Error(`mapping profile ${profileId} version ${version} is not stored`);
    return this.compile(record);
  }
}

/** A compiled profile as a source's mapping. */
export function profileMapping(profile: CompiledMappingProfile, sourceId: string): SourceMapping {
  const { id, version } = profile.document;
  return {
    profileId: id,
    version,
    label: `${id}|${version}`,
    policy: mappingProfilePolicy(id, version),
    normalise(resource) {
      const result = normaliseResource(profile, resource, { sourceId });
      // `changes` is not read: the engine computes the diff only when asked (dry runs do).
      if (result.valid && result.output)
        return { valid: true, output: result.output, outcome: result.outcome };
      return {
        valid: false,
        output: result.output,
        outcome: result.outcome,
        reasonCode: result.output ? 'invalid-resource' : 'mapping-failed',
      };
    },
    storedId(resourceType, id) {
      // A stub is enough for the id rules; it need not be valid.
      const output = normaliseResource(profile, { resourceType, id } as Resource, { sourceId }).output;
      return output?.resourceType === resourceType && typeof output.id === 'string' ? output.id : id;
    },
  };
}

let identityProfile: CompiledMappingProfile | undefined;

/**
 * No profile: the resource as sent (read as R4, so no version conversion), with the engine's full
 * validation — R4 base, required bindings, the spec rules @medplum/core leaves out, and the profiles
 * the resource claims in `meta.profile` when they are shipped — as a profile without steps would.
 */
export function identityMapping(): SourceMapping {
  identityProfile ??= compileMappingProfile(
    // A stored profile's versions start at 1; this one is never stored (its label says `identity|0`).
    parseMappingProfile({ id: IDENTITY_PROFILE_ID, version: 1, steps: [] }),
  );
  const profile = identityProfile;
  return {
    profileId: IDENTITY_PROFILE_ID,
    version: IDENTITY_PROFILE_VERSION,
    label: `${IDENTITY_PROFILE_ID}|${IDENTITY_PROFILE_VERSION}`,
    policy: mappingProfilePolicy(IDENTITY_PROFILE_ID, IDENTITY_PROFILE_VERSION),
    normalise(resource) {
      const result = normaliseResource(profile, resource, {
        sourceId: IDENTITY_PROFILE_ID,
        fhirVersion: 'R4',
      });
      return result.valid && result.output
        ? { valid: true, output: result.output, outcome: result.outcome }
        : { valid: false, outcome: result.outcome, reasonCode: 'invalid-resource' };
    },
    storedId: (_resourceType, id) => id,
  };
}

function unavailableMapping(profileId: string, text: string): SourceMapping {
  const outcome = operationOutcome([outcomeIssue({ code: 'not-found', text })]);
  return {
    profileId,
    label: `${profileId}|none`,
    normalise: () => ({ valid: false, outcome, reasonCode: 'mapping-profile-unavailable' }),
    storedId: (_resourceType, id) => id,
  };
}
