// `npm start`: the bridge and the worker as two processes (as they scale out), sharing the embedded
// dev chain under DATA_DIR when LEDGER_RPC_URL is unset. Ctrl-C stops both; if one dies, so does the other.
const { spawn } = require('node:child_process');
const { join } = require('node:path');

// The bridge runs with a 2 MB young generation: its requests allocate short-lived buffers, and
// smaller semi-spaces keep each scavenge pause short, which is what drove its p99 (bench/README).
const NODE_FLAGS = { bridge: ['--max-semi-space-size=2'], worker: [] };

const apps = ['bridge', 'worker'].map((name) =>
  spawn(
    process.execPath,
    [...NODE_FLAGS[name], join(__dirname, '..', 'dist', 'apps', name, 'main.js'), ...process.argv.slice(2)],
    {
      stdio: 'inherit',
      env: process.env,
    },
  ),
);
let exitCode = 0;
let stopping = false;
const stop = (signal) => {
  if (stopping) return;
  stopping = true;
  for (const child of apps) if (child.exitCode === null) child.kill(signal);
};
for (const child of apps) {
  child.on('exit', (code, signal) => {
    if (!stopping) exitCode = code ?? (signal ? 1 : 0);
    stop('SIGTERM');
    if (apps.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(exitCode);
  });
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => stop(signal));
