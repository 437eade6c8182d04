/**
 * `npm run audit` — the full-log tamper audit. Walks every ledger event, resource version,
 * Provenance, leaf, Merkle node, log head and checkpoint in the database named by DATABASE_URL,
 * recomputing keyed digests (patient keys unwrapped with LEDGER_MASTER_KEY), leaf hashes and the
 * tree, and prints each stored record that no longer matches. Exit 0: every record matches;
 * 1: something no longer matches; 2: bad usage or the database could not be read.
 */
import { ConfigError, loadConfig } from '@fhir-trail/config';
import { type AuditReport, LedgerAuditor } from '@fhir-trail/runtime';
import { Store } from '@fhir-trail/store';

const HELP = `Usage: npm run audit -- [--json]

Audits the whole off-chain ledger against itself and its anchored checkpoints: every event record
against its leaf hash and its row, every resource version and Provenance against the keyed digests
in its event (recomputed with the patient key), every stored Merkle node against a recomputation
from the leaves, the log head and every checkpoint root. Events of an erased patient (key
destroyed) are reported as "key-destroyed", not as mismatches.

Reads DATABASE_URL and LEDGER_MASTER_KEY like the bridge and worker (see npm start -- --help).
Checkpoints are checked against the stored log here; check them on chain with npm run verify.

Options:
  --json    print the report as JSON
  --help    this text

Exit status: 0 every record matches, 1 some record no longer matches, 2 usage or database error.`;

async function main(args: readonly string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const unknown = args.filter((a) => a !== '--json');
  if (unknown.length > 0) {
    process.stderr.write(`unknown argument: ${unknown[0]}\n\n${HELP}\n`);
    return 2;
  }
  const config = loadConfig(process.env);
  const store = await Store.open({
    databaseUrl: config.databaseUrl,
    masterKey: config.ledger.masterKey,
    applicationName: 'fhir-trail-audit',
    max: 4,
  });
  try {
    const report = await new LedgerAuditor(store).auditAll();
    process.stdout.write(args.includes('--json') ? `${JSON.stringify(report, null, 2)}\n` : describe(report));
    return report.mismatches.length === 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}

function describe(report: AuditReport): string {
  const lines = [
    `ledger audit: ${report.events} events, ${report.treeSize} leaves`,
    `  ${Object.entries(report.statuses)
      .map(([status, n]) => `${status} ${n}`)
      .join(', ')}`,
  ];
  if (report.mismatches.length === 0) {
    lines.push('every stored record matches the log');
  } else {
    lines.push(`${report.mismatches.length} stored record(s) no longer match:`);
    for (const m of report.mismatches) lines.push(`  ${m.table} ${m.row}: ${m.problem}`);
  }
  return `${lines.join('\n')}\n`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message =
      error instanceof ConfigError ? error.message : error instanceof Error ? error.message : String(error);
    process.stderr.write(`audit failed: ${message}\n`);
    process.exitCode = 2;
  },
);
