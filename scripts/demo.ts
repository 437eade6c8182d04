/**
 * Demo: plays an EHR. Starts the FHIR source simulator (test/support/fhir-source-simulator.ts)
 * and sends a bridge one notification of every shape it accepts, printing the HTTP status of each.
 *
 *   npm start                      # in one terminal: bridge on :8080 + worker + embedded chain
 *   npm run demo                   # in another (tsx scripts/demo.ts)
 *   npm run demo -- --bridge http://127.0.0.1:8080 --source demo --token demo-token
 *
 * Options:
 *   --bridge URL      the bridge (default http://127.0.0.1:8080); notifications go to {bridge}/hooks/{source}
 *   --source ID       the registered source (default demo, the development source)
 *   --token TOKEN     sent as `Authorization: Bearer TOKEN` (default demo-token)
 *   --port N          port of the simulator (default 0: any free port). Register a source whose
 *                     fhirBaseUrl is http://127.0.0.1:N/fhir to let the worker fetch id-only and
 *                     empty notifications from it.
 *   --keep-running    leave the simulator up after sending (Ctrl-C to stop)
 *
 * Sequence: R4 Backport handshake, heartbeat, full-resource / id-only / empty events and an event
 * after a gap (one event recorded but never sent, for `$events` to recover); R4B-style id-only
 * event; R5 handshake and full-resource event; Medplum create, update and delete; HAPI PUT and
 * DELETE; an empty ping. Exits 1 when any answer is not 2xx. The resources are the official R4
 * examples from test/fixtures (no real patient data).
 */
import { parseArgs } from 'node:util';
import type { Resource } from '@medplum/fhirtypes';
import { readJsonFixture } from '../test/fixtures/fixture-files';
import { FhirSourceSimulator, type NotificationDelivery } from '../test/support/fhir-source-simulator';

interface Step {
  label: string;
  send: () => Promise<NotificationDelivery>;
}

function example(name: string): Resource {
  return readJsonFixture(`r4-examples/${name}.json`) as Resource;
}

function summary(delivery: NotificationDelivery): string {
  if (delivery.status >= 200 && delivery.status < 300) return '';
  try {
    const body = JSON.parse(delivery.responseBody) as { issue?: { details?: { text?: string } }[] };
    return body.issue?.[0]?.details?.text ?? '';
  } catch {
    return delivery.responseBody.slice(0, 120);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      bridge: { type: 'string', default: 'http://127.0.0.1:8080' },
      source: { type: 'string', default: 'demo' },
      token: { type: 'string', default: 'demo-token' },
      port: { type: 'string', default: '0' },
      'keep-running': { type: 'boolean', default: false },
    },
  });
  const endpoint = `${values.bridge.replace(/\/+$/, '')}/hooks/${encodeURIComponent(values.source)}`;
  const simulator = new FhirSourceSimulator({ port: Number(values.port) });
  const base = await simulator.start();
  console.log(`source simulator: ${base}`);
  console.log(`bridge endpoint:  ${endpoint}\n`);

  const notifier = simulator.notifier({ endpoint, headers: [`Authorization: Bearer ${values.token}`] });
  const patient = simulator.put(example('Patient-example'));
  const observation = simulator.put(example('Observation-example'));
  const encounter = simulator.put(example('Encounter-example'));
  const allergy = example('AllergyIntolerance-example');
  const coverage = example('Coverage-9876B1');

  const steps: Step[] = [
    { label: 'backport handshake', send: () => notifier.sendHandshake() },
    { label: 'backport heartbeat', send: () => notifier.sendHeartbeat() },
    { label: 'backport event, full-resource', send: () => notifier.sendEvent(patient) },
    { label: 'backport event, id-only', send: () => notifier.sendEvent(observation, { content: 'id-only' }) },
    { label: 'backport event, empty', send: () => notifier.sendEvent(encounter, { content: 'empty' }) },
    {
      label: 'backport event after a gap (one event never sent)',
      send: () => notifier.sendEvent({ ...patient, active: false } as Resource, { skipNumbers: 1 }),
    },
    {
      label: 'r4b-style event, id-only',
      send: () => notifier.sendEvent(encounter, { shape: 'r4b', content: 'id-only' }),
    },
    { label: 'r5 handshake', send: () => notifier.sendHandshake({ shape: 'r5' }) },
    {
      label: 'r5 event, full-resource',
      send: () => notifier.sendEvent({ ...observation, status: 'amended' } as Resource, { shape: 'r5' }),
    },
    { label: 'medplum create', send: () => notifier.sendMedplum(allergy, 'create') },
    {
      label: 'medplum update',
      send: () => {
        const current = simulator.current('AllergyIntolerance', allergy.id ?? '') ?? allergy;
        return notifier.sendMedplum({ ...current, criticality: 'high' } as Resource, 'update');
      },
    },
    {
      label: 'medplum delete',
      send: () => notifier.sendMedplumDelete('AllergyIntolerance', allergy.id ?? ''),
    },
    { label: 'hapi PUT', send: () => notifier.sendHapiUpdate(coverage) },
    { label: 'hapi DELETE', send: () => notifier.sendHapiDelete('Coverage', coverage.id ?? '') },
    { label: 'empty ping', send: () => notifier.sendPing() },
  ];

  let failures = 0;
  for (const step of steps) {
    try {
      const delivery = await step.send();
      const ok = delivery.status >= 200 && delivery.status < 300;
      if (!ok) failures += 1;
      const detail = summary(delivery);
      console.log(
        `${String(delivery.status).padStart(4)}  ${delivery.method.padEnd(6)} ${step.label}${detail ? `: ${detail}` : ''}`,
      );
    } catch (error) {
      failures += 1;
      const reason =
        error instanceof Error
          ? error.cause instanceof Error
            ? error.cause.message
            : error.message
          : String(error);
      console.log(` ---  ${step.label}: not delivered (${reason})`);
    }
  }
  console.log(`\n${steps.length - failures}/${steps.length} notifications accepted`);

  if (values['keep-running']) {
    console.log(`simulator still serving ${base} (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => process.once('SIGINT', resolve));
  }
  await simulator.stop();
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
