import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';

import { isRecord, type JsonRecord } from '../json-value';
import { isErrorIssue, operationOutcome, outcomeIssue } from '../operation-outcome';
import { CompiledProfile } from './mapping-profile.compiler';
import type { StageRun } from './mapping-stage';
import type {
  CompiledMappingProfile,
  NormaliseContext,
  NormaliseResult,
  ResourceChange,
  SourceFhirVersion,
} from './mapping-profile.types';
import { validateOutput } from './output-validation';
import { diffResources } from './resource-diff';
import { cloneJson, mapTargetResources } from './resource-walk';
import { convertToR4, detectFhirVersion } from './version-conversion';

/**
 * Normalises one resource (or a Bundle: its entry resources one by one) through a compiled
 * profile: version conversion to R4 first, then the profile's steps in stage order, then
 * validation. The input is not changed.
 *
 * Never throws for a bad resource: a non-object, an unknown version shape or a step failure come
 * back as `valid: false` with the issues in `outcome`. Conversion and mapping issues name paths in
 * the input (`MedicationOrder.dispenseRequest`); validation issues name paths in the output
 * (`MedicationRequest.subject`, `Bundle.entry[2].resource.code`).
 */
export function normaliseResource(
  profile: CompiledMappingProfile,
  input: Resource,
  ctx: NormaliseContext,
): NormaliseResult {
  if (!(profile instanceof CompiledProfile)) {
    throw new TypeError('normaliseResource needs a profile from compileMappingProfile');
  }
  const raw: unknown = input;
  if (!isRecord(raw) || typeof raw.resourceType !== 'string' || raw.resourceType === '') {
    const issue = outcomeIssue({
      code: 'structure',
      text: isRecord(raw) ? 'The resource has no resourceType' : 'A resource must be a JSON object',
      expression: isRecord(raw) ? 'resourceType' : undefined,
    });
    return {
      outcome: operationOutcome([issue]),
      valid: false,
      changed: false,
      changes: [],
      sourceVersion: 'R4',
    };
  }

  const rootPath = raw.resourceType;
  const issues: OperationOutcomeIssue[] = [];
  const run: StageRun = { sourceId: ctx.sourceId, issues };
  const sourceVersion: SourceFhirVersion = ctx.fhirVersion ?? detectFhirVersion(raw);

  let output: JsonRecord = cloneJson(raw);
  output = guarded(issues, rootPath, 'version conversion', output, () =>
    sourceVersion === 'R4' ? output : convertToR4(output, sourceVersion, rootPath, issues),
  );
  for (const stage of profile.stages) {
    output = guarded(issues, rootPath, stage.kind, output, () =>
      mapTargetResources(output, rootPath, (resource, path) => stage.apply(resource, path, run)),
    );
  }
  issues.push(...guardedValidation(output, profile));

  // The diff is for people (dry runs); the worker never reads it, so it is computed on first read.
  let changes: readonly ResourceChange[] | undefined;
  const diff = (): readonly ResourceChange[] => (changes ??= diffResources(raw, output, rootPath));
  return {
    output: output as unknown as Resource,
    outcome: operationOutcome(issues),
    valid: !issues.some(isErrorIssue),
    get changed() {
      return diff().length > 0;
    },
    get changes() {
      return diff();
    },
    sourceVersion,
  };
}

/**
 * Validates the output. @medplum/core's validator throws TypeErrors on some malformed shapes (an
 * `_element` array beside a single value): that is a verdict on the resource, not a defect.
 */
function guardedValidation(output: JsonRecord, profile: CompiledProfile): OperationOutcomeIssue[] {
  try {
    return validateOutput(output, profile.validation);
  } catch (error) {
    return [
      outcomeIssue({
        code: 'structure',
        text: 'The validator could not read the resource: an element has the wrong JSON shape',
        expression: String(output.resourceType),
        diagnostics: error instanceof Error ? error.name : undefined,
      }),
    ];
  }
}

/** Runs one stage; a defect in it becomes an issue (the resource stays as it was before the stage). */
function guarded(
  issues: OperationOutcomeIssue[],
  rootPath: string,
  stage: string,
  current: JsonRecord,
  run: () => JsonRecord,
): JsonRecord {
  try {
    return run();
  } catch (error) {
    issues.push(
      outcomeIssue({
        code: 'exception',
        text: `The ${stage} stage failed on this resource`,
        expression: rootPath,
        diagnostics: error instanceof Error ? error.name : undefined,
      }),
    );
    return current;
  }
}
