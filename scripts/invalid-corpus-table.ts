/**
 * Prints the README "Validation coverage" table: every test case of the FHIR validator's corpus
 * (test/fixtures/invalid), what the reference validator says, what we say, and why we differ.
 * Run: `npx tsx scripts/invalid-corpus-table.ts`.
 */
import { KNOWN_DIFFERENCES, runInvalidCorpus, type Agreement } from './invalid-corpus';

const VERDICT: Record<Agreement, string> = {
  same: 'flagged, same element',
  'invalid-elsewhere': 'flagged, other element',
  valid: 'valid (agree)',
  missed: '**not flagged**',
  extra: '**flagged** (reference: valid)',
};

const rows = runInvalidCorpus();
const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
const clip = (text: string, length: number): string =>
  text.length > length ? `${text.slice(0, length - 1)}…` : text;

const counts = new Map<Agreement, number>();
for (const row of rows) counts.set(row.agreement, (counts.get(row.agreement) ?? 0) + 1);
const agree = (counts.get('same') ?? 0) + (counts.get('valid') ?? 0);
console.log(
  `${rows.length} cases: we agree on ${agree} (${counts.get('same') ?? 0} flagged at the same element, ` +
    `${counts.get('valid') ?? 0} valid); ${counts.get('missed') ?? 0} not flagged, ${counts.get('extra') ?? 0} flagged ` +
    `where the reference (with a non-default option) says valid.\n`,
);
console.log('| test case (module) | options | reference: errors | we | our first error | why we differ |');
console.log('|---|---|---:|---|---|---|');
for (const row of rows) {
  const known = KNOWN_DIFFERENCES[row.testCase];
  const why = known ? `${known.reach}: ${known.why}` : '';
  console.log(
    `| ${cell(row.testCase)} (${row.module}) | ${cell(row.options)} | ${row.expectedErrors} | ${VERDICT[row.agreement]} | ` +
      `${cell(clip(row.ourFirstError, 90))} | ${cell(why)} |`,
  );
}
