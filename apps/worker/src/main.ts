import { configHelp, loadConfig } from '@fhir-trail/config';
import { runMain } from '@fhir-trail/runtime';
import { createWorkerApp } from './worker.app';

const HELP = `${configHelp('fhir-trail worker', 'ingests accepted notifications and anchors the ledger')}

Usage: node dist/apps/worker/main.js [--help]
  npm start            bridge + worker (+ embedded chain) together
  npm run start:worker the worker alone (run several for more throughput)`;

runMain('fhir-trail worker', HELP, async () => {
  await createWorkerApp(loadConfig(process.env));
});
