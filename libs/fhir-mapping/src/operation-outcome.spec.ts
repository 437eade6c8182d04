import { FhirRequestError, isErrorIssue, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';

describe('outcomeIssue / operationOutcome', () => {
  it('defaults severity to error and wraps the expression in an array', () => {
    expect(outcomeIssue({ code: 'value', text: 'Must be an integer', expression: 'Bundle.type' })).toEqual({
      severity: 'error',
      code: 'value',
      details: { text: 'Must be an integer' },
      expression: ['Bundle.type'],
    });
  });

  it('keeps severity, several expressions and diagnostics', () => {
    expect(
      outcomeIssue({
        severity: 'warning',
        code: 'structure',
        text: 'Tolerated',
        expression: ['Bundle.entry[0].request', 'Bundle.entry[1].request'],
        diagnostics: 'bdl-3',
      }),
    ).toEqual({
      severity: 'warning',
      code: 'structure',
      details: { text: 'Tolerated' },
      diagnostics: 'bdl-3',
      expression: ['Bundle.entry[0].request', 'Bundle.entry[1].request'],
    });
  });

  it('wraps issues in an OperationOutcome', () => {
    const outcome = operationOutcome([
      outcomeIssue({ code: 'structure', text: 'Missing required property' }),
    ]);
    expect(outcome).toEqual({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'structure', details: { text: 'Missing required property' } }],
    });
  });

  it('tells error and fatal issues from the rest', () => {
    expect(isErrorIssue(outcomeIssue({ code: 'invalid', text: 'x' }))).toBe(true);
    expect(isErrorIssue(outcomeIssue({ severity: 'fatal', code: 'invalid', text: 'x' }))).toBe(true);
    expect(isErrorIssue(outcomeIssue({ severity: 'warning', code: 'invalid', text: 'x' }))).toBe(false);
  });
});

describe('FhirRequestError', () => {
  it('carries status, outcome and cause, and summarises the outcome as its message', () => {
    const cause = new SyntaxError('Unexpected token');
    const outcome = operationOutcome([
      outcomeIssue({
        code: 'value',
        text: 'Bad counter',
        expression: 'Bundle.entry[0].resource.parameter[4].value',
      }),
      outcomeIssue({ code: 'structure', text: 'Second problem' }),
    ]);
    const error = new FhirRequestError(422, outcome, { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(FhirRequestError);
    expect(error.name).toBe('FhirRequestError');
    expect(error.status).toBe(422);
    expect(error.outcome).toBe(outcome);
    expect(error.cause).toBe(cause);
    expect(error.message).toBe(
      'Bad counter (at Bundle.entry[0].resource.parameter[4].value) (+1 more issues)',
    );
  });

  it('builds a 400 from one issue or several', () => {
    const issue = outcomeIssue({ code: 'invalid', text: 'Wrong Bundle type', expression: 'Bundle.type' });
    const one = FhirRequestError.badRequest(issue);
    expect(one.status).toBe(400);
    expect(one.outcome).toEqual({ resourceType: 'OperationOutcome', issue: [issue] });
    expect(FhirRequestError.badRequest([issue, issue]).outcome.issue).toHaveLength(2);
  });

  it('has a message even for an empty outcome', () => {
    expect(new FhirRequestError(500, operationOutcome([])).message).toBe('Request failed');
  });
});
