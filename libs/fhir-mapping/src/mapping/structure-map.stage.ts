import { parseMappingLanguage, structureMapTransform, TransformMapCollection } from '@medplum/core';
import type { ConceptMap, StructureMap, StructureMapGroupRule } from '@medplum/fhirtypes';

import { isRecord } from '../json-value';
import { outcomeIssue } from '../operation-outcome';
import type { CompiledStage } from './mapping-stage';
import type { StructureMapStep } from './mapping-profile.types';
import { cloneJson } from './resource-walk';

/**
 * Compiles a structureMap step: the FML is parsed once here. At run time the map's first group is
 * called with the resource as its source and, as its target, a copy of the resource (so a map
 * states only what it changes; FML appends to repeating elements) of the target type. The result
 * replaces the resource.
 *
 * @throws Error when the FML does not parse or its first group lacks a source or target.
 */
export function compileStructureMapStep(
  step: StructureMapStep,
  conceptMaps: readonly ConceptMap[],
  lookup: (url: string) => ConceptMap | undefined,
): CompiledStage {
  const text = Array.isArray(step.map) ? step.map.join('\n') : step.map;
  const map = parseMappingLanguage(text);
  const group = map.group?.[0];
  const source = group?.input.find((input) => input.mode === 'source');
  const target = group?.input.find((input) => input.mode === 'target');
  if (!group || !source || !target) {
    throw new Error('The map needs a first group with a source and a target input');
  }
  const sourceType = resolveType(map, source.type);
  const targetType = resolveType(map, target.type) ?? sourceType;
  const resourceTypes = new Set(step.resourceTypes ?? (sourceType ? [sourceType] : []));
  if (resourceTypes.size === 0) {
    throw new Error('Say which resource types the map applies to (resourceTypes), or type its source input');
  }
  const maps = mapsFor(map, conceptMaps, lookup);

  return {
    kind: 'structureMap',
    apply(resource, path, run) {
      if (!resourceTypes.has(String(resource.resourceType))) return resource;
      const outputType = targetType ?? String(resource.resourceType);
      const initial = cloneJson(resource);
      initial.resourceType = outputType;
      try {
        // A fresh collection per call: the transform adds the map's contained maps to it.
        const [output] = structureMapTransform(
          map,
          [
            { type: String(resource.resourceType), value: resource },
            { type: outputType, value: initial },
          ],
          new TransformMapCollection([...maps]),
        );
        const value: unknown = output?.value;
        if (isRecord(value)) return value;
      } catch (error) {
        run.issues.push(
          outcomeIssue({
            code: 'processing',
            text: 'The StructureMap failed on this resource',
            expression: path,
            diagnostics: error instanceof Error ? error.message.slice(0, 200) : undefined,
          }),
        );
      }
      return resource;
    },
  };
}

/** `uses "http://hl7.org/fhir/StructureDefinition/Observation" alias Obs as source` -> `Observation`. */
function resolveType(map: StructureMap, type: string | undefined): string | undefined {
  if (type === undefined) return undefined;
  const structure = map.structure?.find((item) => item.alias === type || item.url.endsWith(`/${type}`));
  const url = structure?.url ?? type;
  const name = url.slice(url.lastIndexOf('/') + 1);
  return /^[A-Z][A-Za-z]+$/.test(name) ? name : undefined;
}

/**
 * The ConceptMaps a map's `translate()` calls can reach: the profile's, the map's own embedded
 * `conceptmap` blocks (also under their url without the `#` @medplum/core gives them), and the
 * shipped FHIR maps it names.
 *
 * @throws Error when a `translate()` names a map that is none of these (caught at compile time,
 *   not on the first resource).
 */
function mapsFor(
  map: StructureMap,
  profileMaps: readonly ConceptMap[],
  lookup: (url: string) => ConceptMap | undefined,
): ConceptMap[] {
  const maps = [...profileMaps];
  for (const contained of map.contained ?? []) {
    if (contained.resourceType === 'ConceptMap' && contained.url?.startsWith('#')) {
      maps.push({ ...contained, url: contained.url.slice(1) });
    }
  }
  const embedded = new Set(
    (map.contained ?? []).map((resource) => ('url' in resource ? resource.url : undefined)),
  );
  for (const url of translateUrls(map)) {
    if (embedded.has(url) || maps.some((item) => item.url === url)) continue;
    const found = lookup(url);
    if (!found) throw new Error('a ConceptMap its translate() names is neither in the profile nor shipped');
    maps.push(found);
  }
  return maps;
}

/** Map urls named by `translate(source, 'url', ...)` targets anywhere in the map's groups. */
function translateUrls(map: StructureMap): string[] {
  const urls: string[] = [];
  const visitRules = (rules: readonly StructureMapGroupRule[] | undefined): void => {
    for (const rule of rules ?? []) {
      for (const target of rule.target ?? []) {
        if (target.transform !== 'translate') continue;
        const url = target.parameter?.[1]?.valueString;
        if (url !== undefined) urls.push(url);
      }
      visitRules(rule.rule);
    }
  };
  for (const group of map.group ?? []) visitRules(group.rule);
  return urls;
}
