/** `npm run bench`: every benchmark, each against its baseline measured in the same run. */
import { intakeBenchmark } from './intake.bench';

async function main(): Promise<void> {
  await intakeBenchmark();
}

main().catch((error: unknown) => {
  process.stderr.write(
    `benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
