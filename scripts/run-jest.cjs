// Runs jest with the given arguments; when JEST_JSON_OUTPUT is set (CI), also writes jest's JSON
// summary there so .ci/run can print "N passed, N failed".
const { spawnSync } = require('node:child_process');

const args = [require.resolve('jest/bin/jest'), ...process.argv.slice(2)];
if (process.env.JEST_JSON_OUTPUT) args.push('--json', `--outputFile=${process.env.JEST_JSON_OUTPUT}`);
const result = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, TZ: 'UTC' } });
process.exit(result.status ?? 1);
