import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

/** R4 `OperationOutcome.issue.severity`. */
export type IssueSeverity = OperationOutcomeIssue['severity'];

/** R4 `OperationOutcome.issue.code` (http://hl7.org/fhir/issue-type). */
export type IssueCode = OperationOutcomeIssue['code'];

/** What {@link outcomeIssue} needs to build one issue. */
export interface OutcomeIssueInput {
  /** Defaults to `error`. */
  severity?: IssueSeverity;
  code: IssueCode;
  /**
   * Plain-English `details.text`. It may name an element path but must never echo values from the
   * resource (names, identifiers, ids, codes): it ends up in logs.
   */
  text: string;
  /** FHIRPath of the offending element(s), e.g. `Bundle.entry[0].resource.parameter[4].value`. */
  expression?: string | readonly string[];
  /** Extra machine-oriented detail; the same no-PHI rule as `text` applies. */
  diagnostics?: string;
}

/**
 * Builds one R4 OperationOutcome issue.
 *
 * @example outcomeIssue({ code: 'value', text: 'Must be a non-negative integer', expression: 'Bundle.type' })
 */
export function outcomeIssue(input: OutcomeIssueInput): OperationOutcomeIssue {
  const issue: OperationOutcomeIssue = {
    severity: input.severity ?? 'error',
    code: input.code,
    details: { text: input.text },
  };
  if (input.diagnostics !== undefined) issue.diagnostics = input.diagnostics;
  if (input.expression !== undefined) {
    issue.expression = typeof input.expression === 'string' ? [input.expression] : [...input.expression];
  }
  return issue;
}

/** Wraps issues in an R4 OperationOutcome resource. */
export function operationOutcome(issues: readonly OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [...issues] };
}

/** True when an issue is `error` or `fatal`, i.e. it makes the outcome a failure. */
export function isErrorIssue(issue: OperationOutcomeIssue): boolean {
  return issue.severity === 'error' || issue.severity === 'fatal';
}

/**
 * An error that should leave the HTTP layer as `status` with `outcome` as the body.
 *
 * Its `message` is built from the issues' `details.text` only, so it is as PHI-free as they are and
 * safe to log. The original error, if any, stays reachable through `cause`.
 */
export class FhirRequestError extends Error {
  override readonly name = 'FhirRequestError';

  constructor(
    /** HTTP status to answer with (400 for malformed input). */
    readonly status: number,
    /** The OperationOutcome to send back. */
    readonly outcome: OperationOutcome,
    options?: ErrorOptions,
  ) {
    super(summariseOutcome(outcome), options);
  }

  /** A 400 Bad Request carrying the given issue(s). */
  static badRequest(
    issues: OperationOutcomeIssue | readonly OperationOutcomeIssue[],
    options?: ErrorOptions,
  ): FhirRequestError {
    const list = Array.isArray(issues)
      ? (issues as readonly OperationOutcomeIssue[])
      : [issues as OperationOutcomeIssue];
    return new FhirRequestError(400, operationOutcome(list), options);
  }
}

function summariseOutcome(outcome: OperationOutcome): string {
  if (outcome.issue.length === 0) return 'Request failed';
  const [first] = outcome.issue;
  const text = first.details?.text ?? first.diagnostics ?? first.code;
  const where = first.expression?.length ? ` (at ${first.expression.join(', ')})` : '';
  const more = outcome.issue.length > 1 ? ` (+${outcome.issue.length - 1} more issues)` : '';
  return `${text}${where}${more}`;
}
