import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

import { isRecord, type JsonRecord } from '../json-value';
import { FhirRequestError, outcomeIssue } from '../operation-outcome';
import { isFhirId } from '../resource-reference';
import {
  MAPPING_STEP_ORDER,
  type MappingProfileDocument,
  type MappingStep,
  type MappingStepKind,
} from './mapping-profile.types';

/** Checks one JSON value; pushes issues with `path` as their expression. */
type Check = (value: unknown, path: string, issues: OperationOutcomeIssue[]) => void;

const STEP_KINDS: ReadonlySet<string> = new Set(MAPPING_STEP_ORDER);

/** The fields each step kind accepts, with their checks. `kind` is implied. */
const STEP_FIELDS: Record<MappingStepKind, { required: readonly string[]; fields: Record<string, Check> }> = {
  structureMap: {
    required: ['map'],
    fields: {
      map: (value, path, issues) => {
        if (typeof value === 'string') {
          if (value.trim() === '') issues.push(bad(path, 'The FML map text is empty'));
          return;
        }
        stringArray(value, path, issues);
      },
      resourceTypes: (value, path, issues) => stringArray(value, path, issues),
      conceptMaps: (value, path, issues) => resourceArray('ConceptMap', value, path, issues),
    },
  },
  conceptMap: {
    required: ['elements'],
    fields: {
      url: nonEmptyString,
      conceptMap: (value, path, issues) => resourceOf('ConceptMap', value, path, issues),
      reverse: boolean,
      elements: (value, path, issues) => elementPathArray(value, path, issues),
      equivalences: (value, path, issues) => stringArray(value, path, issues),
      mode: oneOf(['replace', 'append']),
      unmapped: unmappedHandling,
    },
  },
  systemRewrite: {
    required: ['systems'],
    fields: {
      systems: stringMap,
      applyTo: (value, path, issues) => {
        stringArray(value, path, issues);
        if (!Array.isArray(value)) return;
        for (const [index, item] of (value as unknown[]).entries()) {
          oneOf(['identifier', 'coding'])(item, `${path}[${index}]`, issues);
        }
      },
      trimIdentifierValues: boolean,
    },
  },
  referenceRewrite: {
    required: [],
    fields: { prefix: nonEmptyString, absolute: boolean, hashLongIds: boolean },
  },
  unitNormalisation: {
    required: [],
    fields: {
      convert: (value, path, issues) => {
        if (!Array.isArray(value) || value.length === 0) {
          issues.push(bad(path, 'Must be a non-empty array of { code?, to }'));
          return;
        }
        for (const [index, rule] of (value as unknown[]).entries()) {
          const rulePath = `${path}[${index}]`;
          if (!isRecord(rule)) {
            issues.push(bad(rulePath, 'Must be an object { code?, to }'));
            continue;
          }
          checkFields(
            rule,
            rulePath,
            { code: nonEmptyString, to: nonEmptyString, molarMass: positiveNumber },
            ['to'],
            issues,
          );
        }
      },
      units: stringMap,
    },
  },
  extensionRules: {
    required: [],
    fields: {
      drop: (value, path, issues) => stringArray(value, path, issues),
      rename: stringMap,
    },
  },
  metaStamp: {
    required: [],
    fields: {
      source: nonEmptyString,
      tags: (value, path, issues) => {
        if (!Array.isArray(value) || value.length === 0) {
          issues.push(bad(path, 'Must be a non-empty array of Codings'));
          return;
        }
        for (const [index, tag] of (value as unknown[]).entries()) {
          const tagPath = `${path}[${index}]`;
          if (!isRecord(tag)) issues.push(bad(tagPath, 'Must be a Coding'));
          else checkFields(tag, tagPath, CODING_FIELDS, ['system', 'code'], issues);
        }
      },
      profiles: profileMap,
    },
  },
  validation: {
    required: [],
    fields: {
      requiredBindings: boolean,
      profiles: profileMap,
      structureDefinitions: (value, path, issues) =>
        resourceArray('StructureDefinition', value, path, issues),
      metaProfiles: boolean,
    },
  },
};

const CODING_FIELDS: Record<string, Check> = {
  system: nonEmptyString,
  code: nonEmptyString,
  display: nonEmptyString,
  version: nonEmptyString,
};

/**
 * Checks the shape of a mapping profile document (JSON already parsed) and returns it typed.
 *
 * Structural checks only: FML syntax, ConceptMap urls and profile canonicals are checked by
 * {@link compileMappingProfile}.
 *
 * @throws FhirRequestError 400 with one issue per bad element, `expression` naming its path
 *   (`steps[2].elements[0]`).
 */
export function parseMappingProfile(json: unknown): MappingProfileDocument {
  const issues: OperationOutcomeIssue[] = [];
  if (!isRecord(json)) {
    throw FhirRequestError.badRequest(
      outcomeIssue({ code: 'structure', text: 'A mapping profile must be a JSON object' }),
    );
  }
  checkFields(
    json,
    '',
    {
      id: (value, path, list) => {
        if (!isFhirId(value)) list.push(bad(path, 'Must be 1-64 characters from A-Z, a-z, 0-9, - and .'));
      },
      version: (value, path, list) => {
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
          list.push(bad(path, 'Must be a positive integer'));
        }
      },
      name: nonEmptyString,
      description: nonEmptyString,
      steps: (value, path, list) => {
        if (!Array.isArray(value)) {
          list.push(bad(path, 'Must be an array of steps'));
          return;
        }
        for (const [index, step] of (value as unknown[]).entries())
          checkStep(step, `${path}[${index}]`, list);
      },
    },
    ['id', 'version', 'steps'],
    issues,
  );
  if (issues.length > 0) throw FhirRequestError.badRequest(issues);
  return json as unknown as MappingProfileDocument;
}

/** Orders steps by stage ({@link MAPPING_STEP_ORDER}); stable within a stage. */
export function orderedSteps(steps: readonly MappingStep[]): MappingStep[] {
  return steps
    .map((step, index) => ({ step, index, rank: MAPPING_STEP_ORDER.indexOf(step.kind) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .map(({ step }) => step);
}

function checkStep(step: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  if (!isRecord(step)) {
    issues.push(bad(path, 'A step must be an object with a kind'));
    return;
  }
  const kind = step.kind;
  if (typeof kind !== 'string' || !STEP_KINDS.has(kind)) {
    issues.push(bad(`${path}.kind`, `Must be one of: ${MAPPING_STEP_ORDER.join(', ')}`));
    return;
  }
  const spec = STEP_FIELDS[kind as MappingStepKind];
  const rest: JsonRecord = { ...step };
  delete rest.kind;
  checkFields(rest, path, spec.fields, spec.required, issues);
  if (kind === 'conceptMap' && (step.url === undefined) === (step.conceptMap === undefined)) {
    issues.push(bad(path, 'A conceptMap step needs exactly one of url and conceptMap'));
  }
}

function checkFields(
  record: JsonRecord,
  path: string,
  fields: Record<string, Check>,
  required: readonly string[],
  issues: OperationOutcomeIssue[],
): void {
  const at = (key: string): string => (path === '' ? key : `${path}.${key}`);
  for (const key of required) {
    if (record[key] === undefined) issues.push(bad(at(key), 'Required'));
  }
  for (const [key, value] of Object.entries(record)) {
    const check = fields[key];
    if (check === undefined) {
      issues.push(bad(at(key), 'Unknown field'));
      continue;
    }
    if (value !== undefined) check(value, at(key), issues);
  }
}

function bad(path: string, text: string): OperationOutcomeIssue {
  return outcomeIssue({ code: 'invalid', text, expression: path === '' ? undefined : path });
}

function nonEmptyString(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  if (typeof value !== 'string' || value.trim() === '') issues.push(bad(path, 'Must be a non-empty string'));
}

function positiveNumber(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    issues.push(bad(path, 'Must be a positive number'));
}

function boolean(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  if (typeof value !== 'boolean') issues.push(bad(path, 'Must be true or false'));
}

function oneOf(values: readonly string[]): Check {
  return (value, path, issues) => {
    if (typeof value !== 'string' || !values.includes(value)) {
      issues.push(bad(path, `Must be one of: ${values.join(', ')}`));
    }
  };
}

function stringArray(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  if (!Array.isArray(value) || value.length === 0) {
    issues.push(bad(path, 'Must be a non-empty array of strings'));
    return;
  }
  for (const [index, item] of (value as unknown[]).entries())
    nonEmptyString(item, `${path}[${index}]`, issues);
}

function stringMap(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  if (!isRecord(value) || Object.keys(value).length === 0) {
    issues.push(bad(path, 'Must be a non-empty object of strings'));
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (key.trim() === '') issues.push(bad(path, 'Keys must be non-empty'));
    nonEmptyString(item, `${path}['${key}']`, issues);
  }
}

function profileMap(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  if (!isRecord(value) || Object.keys(value).length === 0) {
    issues.push(bad(path, 'Must be an object of resource type (or *) -> array of profile canonicals'));
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (key !== '*' && !/^[A-Z][A-Za-z]{0,63}$/.test(key)) {
      issues.push(bad(`${path}['${key}']`, 'Keys must be resource type names or *'));
    }
    stringArray(item, `${path}['${key}']`, issues);
  }
}

const ELEMENT_PATH = /^[A-Z][A-Za-z]*(\.[a-z][A-Za-z0-9]*(\[x\])?)+$/;

function elementPathArray(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  stringArray(value, path, issues);
  if (!Array.isArray(value)) return;
  for (const [index, item] of (value as unknown[]).entries()) {
    if (typeof item === 'string' && item.trim() !== '' && !ELEMENT_PATH.test(item)) {
      issues.push(bad(`${path}[${index}]`, 'Must be an element path like Observation.code'));
    }
  }
}

function resourceOf(
  resourceType: string,
  value: unknown,
  path: string,
  issues: OperationOutcomeIssue[],
): void {
  if (!isRecord(value) || value.resourceType !== resourceType) {
    issues.push(bad(path, `Must be a ${resourceType} resource`));
  }
}

function resourceArray(
  resourceType: string,
  value: unknown,
  path: string,
  issues: OperationOutcomeIssue[],
): void {
  if (!Array.isArray(value) || value.length === 0) {
    issues.push(bad(path, `Must be a non-empty array of ${resourceType} resources`));
    return;
  }
  for (const [index, item] of (value as unknown[]).entries())
    resourceOf(resourceType, item, `${path}[${index}]`, issues);
}

function unmappedHandling(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  if (!isRecord(value)) {
    issues.push(bad(path, 'Must be an object { mode, ... }'));
    return;
  }
  const { mode, ...rest } = value;
  switch (mode) {
    case 'provided':
    case 'fail':
      checkFields(rest, path, {}, [], issues);
      return;
    case 'fixed':
      checkFields(rest, path, CODING_FIELDS, ['system', 'code'], issues);
      return;
    case 'other-map':
      checkFields(rest, path, { url: nonEmptyString }, ['url'], issues);
      return;
    default:
      issues.push(bad(`${path}.mode`, 'Must be one of: provided, fixed, other-map, fail'));
  }
}
