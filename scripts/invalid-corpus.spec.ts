import {
  invalidCorpusCases,
  KNOWN_DIFFERENCES,
  runInvalidCorpus,
  type InvalidCorpusRow,
} from './invalid-corpus';

/**
 * Runs every test case of the FHIR validator's corpus (test/fixtures/invalid) and checks that we
 * agree with the reference validator on each, except the documented differences (which are the
 * README "Validation coverage" table; scripts/invalid-corpus-table.ts prints it).
 */
describe('the FHIR validator test cases (test/fixtures/invalid)', () => {
  const rows = runInvalidCorpus();
  const byCase = new Map<string, InvalidCorpusRow>(rows.map((row) => [row.testCase, row]));

  it('reads all 60 cases of the 55 inputs', () => {
    expect(invalidCorpusCases()).toHaveLength(60);
    expect(new Set(rows.map((row) => row.input)).size).toBe(55);
  });

  it.each(rows.map((row) => [row.testCase, row] as const))('%s', (testCase, row) => {
    const known = KNOWN_DIFFERENCES[testCase];
    if (known) {
      expect(row.agreement).toBe(known.agreement);
    } else {
      expect(row.agreement).toBe(row.expectedErrors > 0 ? 'same' : 'valid');
    }
  });

  it('documents only differences that exist', () => {
    for (const testCase of Object.keys(KNOWN_DIFFERENCES)) expect(byCase.has(testCase)).toBe(true);
  });

  it('rejects every input that is not JSON with a message saying where and why, quoting nothing', () => {
    const notJson = rows.filter((row) => row.ourFirstError.startsWith('Not valid JSON'));
    expect(notJson.map((row) => row.input).sort()).toEqual([
      'bad-json-close-1.json',
      'bad-json-close-2.json',
      'bad-json-close-3.json',
      'json-comma-bad-1.json',
      'json-comma-bad-2.json',
      'json-comments-1.json',
      'json-comments-1.json',
      'json-comments-2.json',
      'json-comments-2.json',
      'json-no-quotes-1.json',
      'json-no-quotes-2.json',
    ]);
    for (const row of notJson) {
      expect(row.ourFirstError).toMatch(/^Not valid JSON: .+ at line \d+, column \d+$/);
      expect(row.ourFirstError).not.toMatch(/Sarah|Simmons|Robin/);
    }
  });
});
