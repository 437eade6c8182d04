import { configHelp, loadConfig } from '@fhir-trail/config';
import { runMain } from '@fhir-trail/runtime';
import { createBridgeApp } from './bridge.app';

const HELP = `${configHelp('fhir-trail bridge', 'receives FHIR notifications and serves ledger proofs')}

Usage: node dist/apps/bridge/main.js [--help]
  npm start            bridge + worker (+ embedded chain) together
  npm run start:bridge the bridge alone`;

runMain('fhir-trail bridge', HELP, async () => {
  const config = loadConfig(process.env);
  const app = await createBridgeApp(config);
  await app.listen({ port: config.port, host: config.host });
});
