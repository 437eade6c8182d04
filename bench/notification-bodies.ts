/**
 * The notification bodies the intake benchmark sends, built by the FHIR source simulator the tests
 * use, so each is exactly what a Backport IG sender would deliver.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Observation } from '@medplum/fhirtypes';
import type { FhirSourceSimulator } from '../test/support/fhir-source-simulator';

const ROOT = join(__dirname, '..');

/** The official R4 Observation example (2 KB), the bare-resource body (as Medplum sends). */
export function observationExample(): Buffer {
  return readFileSync(join(ROOT, 'test/fixtures/r4-examples/Observation-example.json'));
}

function observation(id: string): Observation {
  return { ...(JSON.parse(observationExample().toString('utf8')) as Observation), id };
}

/** The Subscription every benchmark notification is about (a new active one in the simulator). */
export function benchSubscription(simulator: FhirSourceSimulator, endpoint: string): string {
  return simulator.notifier({ endpoint }).subscriptionId;
}

/**
 * `count` id-only Backport notifications, one event each, about `count` distinct Observations the
 * simulator holds (so a worker can fetch each back), numbered in order on `subscriptionId`.
 */
export function idOnlyNotifications(
  simulator: FhirSourceSimulator,
  subscriptionId: string,
  count: number,
  idPrefix: string,
): Buffer[] {
  const bodies: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const stored = simulator.put(observation(`${idPrefix}-${i}`));
    const event = simulator.recordEvent(subscriptionId, stored);
    const bundle = simulator.notificationBundle({
      subscriptionId,
      shape: 'backport',
      type: 'event-notification',
      content: 'id-only',
      events: [event],
    });
    bodies.push(Buffer.from(JSON.stringify(bundle)));
  }
  return bodies;
}

/** One full-resource Backport notification of `entries` events about as many distinct Observations. */
export function fullResourceNotification(
  simulator: FhirSourceSimulator,
  subscriptionId: string,
  entries: number,
  idPrefix: string,
): Buffer {
  const events = [];
  for (let i = 0; i < entries; i++) {
    events.push(simulator.recordEvent(subscriptionId, simulator.put(observation(`${idPrefix}-${i}`))));
  }
  const bundle = simulator.notificationBundle({
    subscriptionId,
    shape: 'backport',
    type: 'event-notification',
    content: 'full-resource',
    events,
  });
  return Buffer.from(JSON.stringify(bundle));
}
