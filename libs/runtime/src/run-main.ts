import { ConfigError } from '@fhir-trail/config';

/**
 * The common `main` of both apps: `--help` prints `help`; otherwise `start` runs, and a failure to
 * start prints every problem (a ConfigError lists them all) and exits 1.
 */
export function runMain(appName: string, help: string, start: () => Promise<void>): void {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${help}\n`);
    return;
  }
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) {
    process.stderr.write(`${appName} needs Node.js 24 or later (found ${process.version})\n`);
    process.exit(1);
  }
  start().catch((error: unknown) => {
    process.stderr.write(
      `${error instanceof ConfigError ? error.message : describeStartupError(appName, error)}\n`,
    );
    process.exit(1);
  });
}

/** The error and its causes in one line: what failed and why, down to the root. */
export function describeStartupError(appName: string, error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    parts.push(current instanceof Error ? current.message : JSON.stringify(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return `${appName} failed to start: ${parts.join(': ')}`;
}
