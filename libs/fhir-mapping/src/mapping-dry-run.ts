import type { OperationOutcome, Resource } from '@medplum/fhirtypes';

import { isRecord } from './json-value';
import { normaliseResource } from './mapping/normalise';
import type { CompiledMappingProfile, ResourceChange } from './mapping/mapping-profile.types';
import { FhirRequestError, outcomeIssue } from './operation-outcome';

/** What a profile did to one resource: `invalid` when the outcome has an error. */
export type DryRunStatus = 'transformed' | 'unchanged' | 'invalid';

/** One resource of a dry run. */
export interface DryRunResult {
  /** FHIRPath of the resource in the input: `Observation`, or `Bundle.entry[3].resource`. */
  readonly location: string;
  readonly resourceType: string;
  readonly id?: string;
  readonly status: DryRunStatus;
  readonly output?: Resource;
  readonly changes: readonly ResourceChange[];
  /** The changes as readable lines: `~ path: before → after`, `+ path: value`, `- path: value`. */
  readonly diff: readonly string[];
  readonly outcome: OperationOutcome;
}

export interface DryRunSummary {
  readonly resources: number;
  readonly transformed: number;
  readonly unchanged: number;
  readonly invalid: number;
}

export interface DryRun {
  readonly summary: DryRunSummary;
  readonly results: readonly DryRunResult[];
}

/**
 * Runs a profile over a resource, or over every entry resource of a Bundle (of any type), without
 * storing anything: what the engineer sees before activating a profile (`$transform`, `npm run
 * map`). Throws FhirRequestError (400) when the input is neither a resource nor a Bundle with
 * entry resources.
 */
export function dryRunMapping(
  profile: CompiledMappingProfile,
  input: unknown,
  context: { readonly sourceId: string; readonly fhirVersion?: 'DSTU2' | 'STU3' | 'R4' },
): DryRun {
  const targets = dryRunTargets(input);
  const results = targets.map(({ location, resource }) => {
    const result = normaliseResource(profile, resource, context);
    const status: DryRunStatus = !result.valid ? 'invalid' : result.changed ? 'transformed' : 'unchanged';
    return {
      location,
      resourceType: resource.resourceType,
      ...(typeof resource.id === 'string' ? { id: resource.id } : {}),
      status,
      ...(result.output ? { output: result.output } : {}),
      changes: result.changes,
      diff: result.changes.map(describeChange),
      outcome: result.outcome,
    };
  });
  return { summary: summarise(results), results };
}

/** Adds up statuses. */
export function summarise(results: readonly { readonly status: DryRunStatus }[]): DryRunSummary {
  const count = (status: DryRunStatus) => results.filter((r) => r.status === status).length;
  return {
    resources: results.length,
    transformed: count('transformed'),
    unchanged: count('unchanged'),
    invalid: count('invalid'),
  };
}

/** One change as a line: `~ Observation.code.coding[0].system: "urn:oid:1.2" → "http://loinc.org"`. */
export function describeChange(change: ResourceChange): string {
  switch (change.op) {
    case 'add':
      return `+ ${change.path}: ${show(change.after)}`;
    case 'remove':
      return `- ${change.path}: ${show(change.before)}`;
    case 'replace':
      return `~ ${change.path}: ${show(change.before)} → ${show(change.after)}`;
  }
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

function dryRunTargets(input: unknown): { location: string; resource: Resource }[] {
  if (!isRecord(input) || typeof input.resourceType !== 'string' || input.resourceType === '') {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'structure',
        text: 'expected a FHIR resource or Bundle (a JSON object with resourceType)',
      }),
    );
  }
  if (input.resourceType !== 'Bundle') {
    return [{ location: input.resourceType, resource: input as unknown as Resource }];
  }
  const entries = Array.isArray(input.entry) ? (input.entry as unknown[]) : [];
  const targets = entries.flatMap((entry, index) =>
    isRecord(entry) && isRecord(entry.resource) && typeof entry.resource.resourceType === 'string'
      ? [{ location: `Bundle.entry[${index}].resource`, resource: entry.resource as unknown as Resource }]
      : [],
  );
  if (targets.length === 0) {
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'required',
        text: 'the Bundle has no entry with a resource to transform',
        expression: 'Bundle.entry',
      }),
    );
  }
  return targets;
}
