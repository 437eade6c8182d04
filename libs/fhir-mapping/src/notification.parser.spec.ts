import type { IssueCode, NotificationRequest, ParsedNotification } from '@fhir-trail/fhir-mapping';
import { FhirRequestError, parseNotification } from '@fhir-trail/fhir-mapping';

import { listJsonFixtures, readJsonFixture } from '../../../test/fixtures/fixture-files';
import { valueAt, withValue, without } from '../../../test/fixtures/json-edit';

type Headers = NotificationRequest['headers'];

function post(body: unknown, headers: Headers = {}): ParsedNotification {
  return parseNotification({ method: 'POST', body, headers });
}

/** Runs `parse` and returns the FhirRequestError it must throw. */
function rejection(parse: () => unknown): FhirRequestError {
  try {
    parse();
  } catch (error) {
    if (error instanceof FhirRequestError) return error;
    throw error;
  }
  throw new Error('expected a FhirRequestError');
}

function expectBadRequest(parse: () => unknown, code: IssueCode, expression?: string): FhirRequestError {
  const error = rejection(parse);
  expect(error.status).toBe(400);
  expect(error.outcome.resourceType).toBe('OperationOutcome');
  expect(error.outcome.issue).toHaveLength(1);
  expect(error.outcome.issue[0]).toMatchObject({ severity: 'error', code });
  expect(error.outcome.issue[0]?.details?.text).toEqual(expect.any(String));
  if (expression === undefined) expect(error.outcome.issue[0]?.expression).toBeUndefined();
  else expect(error.outcome.issue[0]?.expression).toEqual([expression]);
  return error;
}

// ---------------------------------------------------------------------------------------------
// Every fixture in test/fixtures/subscriptions, as a POST body
// ---------------------------------------------------------------------------------------------

interface ExpectedEvent {
  content: 'full-resource' | 'id-only' | 'empty';
  interaction: 'create' | 'update' | 'delete' | 'unknown';
  eventNumber?: string;
  /** focus.reference, or `identifier:<value>` for identifier-only foci. */
  focus?: string;
}

type Expected =
  | {
      shape: ParsedNotification['shape'];
      type: ParsedNotification['notificationType'];
      counter?: string;
      events: ExpectedEvent[];
      /** expression of each warning, in order */
      warnings?: string[];
    }
  | { error: IssueCode; expression: string };

/** A Subscription resource POSTed on its own is just a bare resource (one without id gets a warning). */
function subscriptionResource(id?: string): Expected {
  return id === undefined
    ? {
        shape: 'bare-resource',
        type: 'rest-hook',
        events: [{ content: 'full-resource', interaction: 'unknown' }],
        warnings: ['Subscription.id'],
      }
    : {
        shape: 'bare-resource',
        type: 'rest-hook',
        events: [{ content: 'full-resource', interaction: 'unknown', focus: `Subscription/${id}` }],
      };
}

const FIXTURES: Record<string, Expected> = {
  'subscriptions/athenahealth/mock-bundle.json': {
    shape: 'r4b-history',
    type: 'event-notification',
    counter: '1',
    events: [{ content: 'id-only', interaction: 'unknown', eventNumber: '1', focus: 'identifier:1' }],
    warnings: ['Bundle.entry[1].request'],
  },
  'subscriptions/athenahealth/send-appointment-notification.json': {
    shape: 'r4b-history',
    type: 'event-notification',
    counter: '1',
    events: [{ content: 'id-only', interaction: 'unknown', eventNumber: '1', focus: 'identifier:2' }],
  },
  'subscriptions/athenahealth/send-order-notification.json': {
    shape: 'r4b-history',
    type: 'event-notification',
    counter: '1',
    events: [{ content: 'id-only', interaction: 'unknown', eventNumber: '1', focus: 'identifier:157479' }],
  },
  'subscriptions/athenahealth/send-patient-notification.json': {
    shape: 'r4b-history',
    type: 'event-notification',
    counter: '1',
    events: [{ content: 'id-only', interaction: 'unknown', eventNumber: '1', focus: 'Patient/a-195900.E-1' }],
  },
  'subscriptions/draft-0.1.0__event-notification__multi-resource__argonaut-backport.json': {
    shape: 'r4b-history',
    type: 'event-notification',
    counter: '2',
    events: [
      {
        content: 'full-resource',
        interaction: 'create',
        eventNumber: '2',
        focus: 'https://example.org/fhir/r4/Encounter/551683b3-1477-41d1-b58e-32fe8b0047b0',
      },
    ],
  },
  'subscriptions/draft-0.1.0__query-status__error__argonaut-backport.json': {
    shape: 'r4b-history',
    type: 'query-status',
    counter: '10',
    events: [],
  },
  'subscriptions/r4-backport__Subscription__full-resource__inferno.json': subscriptionResource(),
  'subscriptions/r4-backport__Subscription__id-only__fhir-candle.json': subscriptionResource(
    '383c610b-8a8b-4173-b363-7b811509aadd',
  ),
  'subscriptions/r4-backport__Subscription__id-only__inferno.json': subscriptionResource(),
  'subscriptions/r4-backport__Subscription__inferno-spec.json': subscriptionResource('123'),
  // Decision: the NONCONFORMANT example (its entry has no request/response, breaking bdl-3/bdl-4)
  // is tolerated with a warning, not rejected. The research brief says receivers must not require
  // entry.request, and rejecting a well-formed empty notification would only make the sender retry.
  'subscriptions/r4-backport__event-notification__empty__NONCONFORMANT__inferno.json': {
    shape: 'backport-history',
    type: 'event-notification',
    counter: '1',
    events: [{ content: 'empty', interaction: 'unknown', eventNumber: '1' }],
    warnings: ['Bundle.entry[0].request'],
  },
  'subscriptions/r4-backport__event-notification__empty__inferno.json': {
    shape: 'backport-history',
    type: 'event-notification',
    counter: '1',
    events: [{ content: 'empty', interaction: 'unknown', eventNumber: '1' }],
  },
  'subscriptions/r4-backport__event-notification__full-resource__inferno.json': {
    shape: 'backport-history',
    type: 'event-notification',
    counter: '1',
    events: [
      {
        content: 'full-resource',
        interaction: 'create',
        eventNumber: '1',
        focus: 'https://fhirserver.org/fhir/Encounter/86009987-eabe-42bf-8c02-b112b18cb616',
      },
    ],
  },
  'subscriptions/r4-backport__event-notification__id-only__fhir-candle-capture.json': {
    shape: 'backport-history',
    type: 'event-notification',
    counter: '1',
    events: [
      {
        content: 'id-only',
        interaction: 'unknown',
        eventNumber: '1',
        focus: 'https://subscriptions.argo.run/fhir/r4/Encounter/36e1c9d9-6878-4ef0-b1ff-9f5986e2def6',
      },
    ],
    warnings: ['Bundle.entry[0].request', 'Bundle.entry[0].resource.parameter[0].value'],
  },
  'subscriptions/r4-backport__event-notification__id-only__inferno.json': {
    shape: 'backport-history',
    type: 'event-notification',
    counter: '1',
    events: [
      {
        content: 'id-only',
        interaction: 'create',
        eventNumber: '1',
        focus: 'https://fhirserver.org/fhir/Encounter/86009987-eabe-42bf-8c02-b112b18cb616',
      },
    ],
  },
  'subscriptions/r4-backport__handshake__fhir-candle-capture.json': {
    shape: 'backport-history',
    type: 'handshake',
    counter: '0',
    events: [],
    warnings: ['Bundle.entry[0].request', 'Bundle.entry[0].resource.parameter[0].value'],
  },
  'subscriptions/r4-backport__handshake__inferno.json': {
    shape: 'backport-history',
    type: 'handshake',
    counter: '0',
    events: [],
  },
  'subscriptions/r4-backport__heartbeat__inferno.json': {
    shape: 'backport-history',
    type: 'heartbeat',
    counter: '2',
    events: [],
  },
  // A `$status` response (searchset) is not a notification: a sender POSTing it is misconfigured.
  'subscriptions/r4-backport__status-operation-response__inferno.json': {
    error: 'invalid',
    expression: 'Bundle.type',
  },
  'subscriptions/r4-classic__Subscription__hmac-secret__medplum-doc.json': subscriptionResource(),
  'subscriptions/r4-classic__Subscription__max-attempts__medplum-doc.json': subscriptionResource(),
  // A bare SubscriptionStatus is a resource like any other when POSTed on its own.
  'subscriptions/r4b__SubscriptionStatus__fhir-4.3.0-spec.json': {
    shape: 'bare-resource',
    type: 'rest-hook',
    events: [{ content: 'full-resource', interaction: 'unknown', focus: 'SubscriptionStatus/example' }],
  },
  'subscriptions/r4b__Subscription__id-only__fhir-candle.json': subscriptionResource(
    'db4ce0bb-fa9c-4092-9f75-34772dc85590',
  ),
  // The R4B spec's "empty" example has no notificationEvent (eventsInNotification 0): one empty
  // event is synthesised so the consumer still re-queries.
  'subscriptions/r4b__event-notification__empty__fhir-4.3.0-spec.json': {
    shape: 'r4b-history',
    type: 'event-notification',
    counter: '2',
    events: [{ content: 'empty', interaction: 'unknown' }],
    warnings: ['Bundle.entry[0].resource'],
  },
  'subscriptions/r4b__event-notification__full-resource__fhir-4.3.0-spec.json': {
    shape: 'r4b-history',
    type: 'event-notification',
    counter: '2',
    events: [
      {
        content: 'full-resource',
        interaction: 'create',
        eventNumber: '2',
        focus: 'http://example.org/FHIR/R4/Encounter/2',
      },
    ],
  },
  'subscriptions/r4b__event-notification__id-only__fhir-4.3.0-spec.json': {
    shape: 'r4b-history',
    type: 'event-notification',
    counter: '2',
    events: [
      {
        content: 'id-only',
        interaction: 'create',
        eventNumber: '2',
        focus: 'http://example.org/FHIR/R4/Encounter/2',
      },
    ],
  },
  'subscriptions/r4b__handshake__fhir-4.3.0-spec.json': {
    shape: 'r4b-history',
    type: 'handshake',
    counter: '0',
    events: [],
  },
  'subscriptions/r4b__handshake__fhir-candle-capture.json': {
    shape: 'r4b-history',
    type: 'handshake',
    counter: '0',
    events: [],
    warnings: ['Bundle.entry[0].request'],
  },
  'subscriptions/r4b__heartbeat__fhir-4.3.0-spec.json': {
    shape: 'r4b-history',
    type: 'heartbeat',
    counter: '310',
    events: [],
  },
  'subscriptions/r5__Subscription__id-only__fhir-candle.json': subscriptionResource(
    'e1f461cb-f41c-470e-aa75-d5223b2c943a',
  ),
  'subscriptions/r5__event-notification__empty__tewhatuora-doc.json': {
    shape: 'r5-notification',
    type: 'event-notification',
    counter: '2',
    events: [{ content: 'empty', interaction: 'unknown', eventNumber: '2' }],
  },
  'subscriptions/r5__event-notification__full-resource__tewhatuora-doc.json': {
    shape: 'r5-notification',
    type: 'event-notification',
    counter: '2',
    events: [
      {
        content: 'full-resource',
        interaction: 'create',
        eventNumber: '2',
        focus: 'http://example.org/FHIR/R5/Encounter/2',
      },
    ],
  },
  'subscriptions/r5__event-notification__id-only__tewhatuora-doc.json': {
    shape: 'r5-notification',
    type: 'event-notification',
    counter: '2',
    events: [
      {
        content: 'id-only',
        interaction: 'create',
        eventNumber: '2',
        focus: 'http://example.org/FHIR/R5/Encounter/2',
      },
    ],
  },
  'subscriptions/r5__handshake__fhir-candle-capture.json': {
    shape: 'r5-notification',
    type: 'handshake',
    counter: '0',
    events: [],
  },
};

describe('parseNotification over every subscription fixture', () => {
  it('has an expectation for exactly the fixtures on disk', () => {
    expect(Object.keys(FIXTURES).sort()).toEqual(listJsonFixtures('subscriptions'));
  });

  it.each(Object.entries(FIXTURES))('%s', (file, expected) => {
    const body = readJsonFixture(file);
    if ('error' in expected) {
      expectBadRequest(() => post(body), expected.error, expected.expression);
      return;
    }
    const parsed = post(body);
    expect(parsed.shape).toBe(expected.shape);
    expect(parsed.notificationType).toBe(expected.type);
    expect(parsed.subscription?.eventsSinceSubscriptionStart).toBe(expected.counter);
    expect(
      parsed.events.map((event) => {
        const summary: ExpectedEvent = { content: event.content, interaction: event.interaction };
        if (event.eventNumber !== undefined) summary.eventNumber = event.eventNumber;
        const focus =
          event.focus?.reference ??
          (event.focus?.identifier?.value === undefined
            ? undefined
            : `identifier:${event.focus.identifier.value}`);
        if (focus !== undefined) summary.focus = focus;
        return summary;
      }),
    ).toEqual(expected.events);
    expect(parsed.warnings.map((warning) => warning.expression?.[0])).toEqual(expected.warnings ?? []);
    for (const warning of parsed.warnings) expect(warning.severity).toBe('warning');
    for (const event of parsed.events) {
      expect(event.resource !== undefined).toBe(event.content === 'full-resource');
      if (event.content !== 'empty') expect(event.focus).toBeDefined();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// What the topic-based shapes carry beyond the table
// ---------------------------------------------------------------------------------------------

describe('parseNotification: topic-based details', () => {
  it('reads subscription, topic and status from backport Parameters (kebab-case names)', () => {
    const parsed = post(readJsonFixture('subscriptions/r4-backport__handshake__inferno.json'));
    expect(parsed.subscription).toEqual({
      reference: 'https://fhirserver.org/fhir/Subscription/123',
      topic: 'http://fhirserver.org/topics/patient-admission',
      status: 'requested',
      eventsSinceSubscriptionStart: '0',
    });
    expect(parsed.bundleId).toBe('r4-notification-handshake');
    expect(parsed.timestamp).toBe('2020-05-29T11:44:13.1882432-05:00');
  });

  it('matches a full-resource entry whose fullUrl differs from the focus only by scheme (http vs https)', () => {
    const parsed = post(
      readJsonFixture('subscriptions/r4b__event-notification__full-resource__fhir-4.3.0-spec.json'),
    );
    const [event] = parsed.events;
    expect(event?.focus).toMatchObject({ resourceType: 'Encounter', id: '2' });
    expect(event?.fullUrl).toBe('https://example.org/FHIR/R4/Encounter/2');
    expect(event?.resource).toMatchObject({ resourceType: 'Encounter', id: '2', meta: { versionId: '1' } });
  });

  it('gives the fullUrl of an id-only entry so the resource can be fetched', () => {
    const parsed = post(
      readJsonFixture('subscriptions/r4-backport__event-notification__id-only__inferno.json'),
    );
    expect(parsed.events[0]).toMatchObject({
      content: 'id-only',
      fullUrl: 'https://fhirserver.org/fhir/Encounter/86009987-eabe-42bf-8c02-b112b18cb616',
      focus: { resourceType: 'Encounter', id: '86009987-eabe-42bf-8c02-b112b18cb616' },
    });
  });

  it('degrades a full-resource entry that lacks its resource to id-only', () => {
    const body = without(
      readJsonFixture('subscriptions/r4-backport__event-notification__full-resource__inferno.json'),
      ['entry', 1, 'resource'],
    );
    const [event] = post(body).events;
    expect(event?.content).toBe('id-only');
    expect(event?.resource).toBeUndefined();
    expect(event?.fullUrl).toBe('https://fhirserver.org/fhir/Encounter/86009987-eabe-42bf-8c02-b112b18cb616');
    expect(event?.interaction).toBe('create');
  });

  it('matches entries with or without request, and reads interaction from request when present', () => {
    const fixture = readJsonFixture(
      'subscriptions/r4-backport__event-notification__full-resource__inferno.json',
    );
    const noRequest = without(without(fixture, ['entry', 1, 'request']), ['entry', 1, 'response']);
    const parsed = post(noRequest);
    expect(parsed.events[0]).toMatchObject({ content: 'full-resource', interaction: 'unknown' });
    expect(parsed.warnings.map((warning) => warning.expression?.[0])).toEqual(['Bundle.entry[1].request']);

    const put = withValue(fixture, ['entry', 1, 'request'], { method: 'PUT', url: 'Encounter/x' });
    expect(post(withValue(put, ['entry', 1, 'response'], { status: '200 OK' })).events[0]?.interaction).toBe(
      'update',
    );
    const deleted = withValue(fixture, ['entry', 1, 'request'], { method: 'DELETE', url: 'Encounter/x' });
    expect(post(without(deleted, ['entry', 1, 'resource'])).events[0]).toMatchObject({
      interaction: 'delete',
      content: 'id-only',
    });
  });

  it('keeps additional context, with the resource when the Bundle carries it (draft multi-resource)', () => {
    const parsed = post(
      readJsonFixture(
        'subscriptions/draft-0.1.0__event-notification__multi-resource__argonaut-backport.json',
      ),
    );
    expect(parsed.subscription?.eventsInNotification).toBe(1);
    const [event] = parsed.events;
    expect(event?.resource?.resourceType).toBe('Encounter');
    expect(event?.additionalContext).toHaveLength(1);
    expect(event?.additionalContext?.[0]).toMatchObject({
      resourceType: 'Patient',
      id: '46db3334-dbf5-43f3-868f-93ae0883cce1',
      fullUrl: 'https://example.org/fhir/r4/Patient/46db3334-dbf5-43f3-868f-93ae0883cce1',
      resource: { resourceType: 'Patient' },
    });
  });

  it('keeps additional context that was not included (fhir-candle id-only)', () => {
    const parsed = post(
      readJsonFixture('subscriptions/r4-backport__event-notification__id-only__fhir-candle-capture.json'),
    );
    expect(parsed.events[0]?.additionalContext).toEqual([
      {
        reference: 'https://subscriptions.argo.run/fhir/r4/Patient/example',
        resourceType: 'Patient',
        id: 'example',
      },
    ]);
  });

  it('reads athenahealth identifier-only foci, event ids and the matching AuditEvent', () => {
    const parsed = post(readJsonFixture('subscriptions/athenahealth/send-order-notification.json'));
    const [event] = parsed.events;
    expect(event?.focus).toEqual({
      identifier: { system: 'urn:athenahealth:athenanet:order:195900', value: '157479' },
    });
    expect(event?.id).toBe('b594cd05-74e6-4b5e-9205-c618667ebf75');
    expect(event?.timestamp).toBe('2023-04-14T09:22:56Z');
    expect(event?.auditEvent?.resourceType).toBe('AuditEvent');
    expect(event?.auditEvent?.id).toBe(event?.id);
    expect(parsed.subscription).toMatchObject({
      reference: 'Subscription/62865e96-3fe4-3f6f-b476-b8eb87b90892',
      topic: 'https://api.platform.athenahealth.com/fhir/r4/SubscriptionTopic/Order.signoff',
      eventsInNotification: 1,
    });
  });

  it('reads status=error and error codes (draft query-status)', () => {
    const parsed = post(
      readJsonFixture('subscriptions/draft-0.1.0__query-status__error__argonaut-backport.json'),
    );
    expect(parsed.subscription).toMatchObject({ status: 'error', error: ['unreachable'] });
  });

  it('reads several events in one notification, each matched to its own entry', () => {
    const fixture = readJsonFixture(
      'subscriptions/r4b__event-notification__full-resource__fhir-4.3.0-spec.json',
    );
    const status = ['entry', 0, 'resource'];
    const twoEvents = withValue(
      withValue(
        fixture,
        [...status, 'notificationEvent'],
        [
          { eventNumber: '2', focus: { reference: 'http://example.org/FHIR/R4/Encounter/2' } },
          {
            eventNumber: '3',
            focus: { reference: 'Patient/123' },
            additionalContext: [{ reference: 'Encounter/2' }],
          },
        ],
      ),
      [...status, 'eventsSinceSubscriptionStart'],
      '3',
    );
    const parsed = post(twoEvents);
    expect(parsed.subscription?.eventsSinceSubscriptionStart).toBe('3');
    expect(parsed.events.map((event) => [event.eventNumber, event.content, event.focus?.reference])).toEqual([
      ['2', 'full-resource', 'http://example.org/FHIR/R4/Encounter/2'],
      ['3', 'id-only', 'Patient/123'],
    ]);
    expect(parsed.events[1]?.additionalContext?.[0]?.resource?.resourceType).toBe('Encounter');
  });

  it('tolerates the fhir-candle subscription given as valueString, with a warning', () => {
    const parsed = post(readJsonFixture('subscriptions/r4-backport__handshake__fhir-candle-capture.json'));
    expect(parsed.subscription?.reference).toBe(
      'https://subscriptions.argo.run/fhir/r4/Subscription/383c610b-8a8b-4173-b363-7b811509aadd',
    );
    expect(parsed.warnings[1]?.details?.text).toContain('valueString');
  });
});

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

describe('parseNotification: counters', () => {
  const backport = readJsonFixture(
    'subscriptions/r4-backport__event-notification__full-resource__inferno.json',
  );
  const sinceStart = ['entry', 0, 'resource', 'parameter', 4];
  const eventNumber = ['entry', 0, 'resource', 'parameter', 5, 'part', 0];
  const r5 = readJsonFixture('subscriptions/r5__event-notification__full-resource__tewhatuora-doc.json');
  const r5Status = ['entry', 0, 'resource'];

  it.each<[string, Record<string, unknown>, string]>([
    ['valueString', { valueString: '2' }, '2'],
    ['valueString with leading zeros', { valueString: '0002' }, '2'],
    ['valueUnsignedInt', { valueUnsignedInt: 2 }, '2'],
    ['valueInteger', { valueInteger: 2 }, '2'],
    ['valueInteger64', { valueInteger64: '2' }, '2'],
    [
      'valueInteger64 at the integer64 maximum',
      { valueInteger64: '9223372036854775807' },
      '9223372036854775807',
    ],
  ])('events-since-subscription-start as %s', (_label, value, expected) => {
    const body = withValue(backport, sinceStart, { name: 'events-since-subscription-start', ...value });
    expect(post(body).subscription?.eventsSinceSubscriptionStart).toBe(expected);
  });

  it.each<[string, Record<string, unknown>]>([
    ['a negative string', { valueString: '-1' }],
    ['a decimal string', { valueString: '1.5' }],
    ['a non-numeric string', { valueString: 'one' }],
    ['an empty string', { valueString: '' }],
    ['a negative valueInteger', { valueInteger: -1 }],
    ['a fractional number', { valueUnsignedInt: 1.5 }],
    ['a number beyond 2^53', { valueInteger: 2 ** 60 }],
    ['a string beyond integer64', { valueString: '9223372036854775808' }],
    ['valueDecimal', { valueDecimal: 2 }],
    ['valueBoolean', { valueBoolean: true }],
  ])('rejects events-since-subscription-start as %s', (_label, value) => {
    const body = withValue(backport, sinceStart, { name: 'events-since-subscription-start', ...value });
    expectBadRequest(() => post(body), 'value', 'Bundle.entry[0].resource.parameter[4].value');
  });

  it('rejects a counter parameter with no value at all', () => {
    const body = withValue(backport, sinceStart, { name: 'events-since-subscription-start' });
    expectBadRequest(() => post(body), 'structure', 'Bundle.entry[0].resource.parameter[4]');
  });

  it('rejects a bad event-number with the FHIRPath of the part value', () => {
    const body = withValue(backport, eventNumber, { name: 'event-number', valueString: 'x1' });
    expectBadRequest(() => post(body), 'value', 'Bundle.entry[0].resource.parameter[5].part[0].value');
  });

  it.each<[string, unknown]>([
    ['a string', '2'],
    ['a JSON number (published R5 examples)', 2],
  ])('reads R5 eventsSinceSubscriptionStart and eventNumber given as %s', (_label, value) => {
    const body = withValue(
      withValue(r5, [...r5Status, 'eventsSinceSubscriptionStart'], value),
      [...r5Status, 'notificationEvent', 0, 'eventNumber'],
      value,
    );
    const parsed = post(body);
    expect(parsed.subscription?.eventsSinceSubscriptionStart).toBe('2');
    expect(parsed.events[0]?.eventNumber).toBe('2');
  });

  it.each<[string, unknown]>([
    ['-1', -1],
    ['2.5', 2.5],
    ['"2.0"', '2.0'],
    ['null', null],
    ['an object', { value: 2 }],
  ])('rejects R5 eventsSinceSubscriptionStart %s', (_label, value) => {
    const body = withValue(r5, [...r5Status, 'eventsSinceSubscriptionStart'], value);
    expectBadRequest(() => post(body), 'value', 'Bundle.entry[0].resource.eventsSinceSubscriptionStart');
  });

  it('rejects a bad R5 eventNumber with its FHIRPath', () => {
    const body = withValue(r5, [...r5Status, 'notificationEvent', 0, 'eventNumber'], '-3');
    expectBadRequest(() => post(body), 'value', 'Bundle.entry[0].resource.notificationEvent[0].eventNumber');
  });

  it('rejects a negative athenahealth eventsInNotification', () => {
    const body = withValue(
      readJsonFixture('subscriptions/athenahealth/send-patient-notification.json'),
      [...r5Status, 'eventsInNotification'],
      -1,
    );
    expectBadRequest(() => post(body), 'value', 'Bundle.entry[0].resource.eventsInNotification');
  });
});

// ---------------------------------------------------------------------------------------------
// Malformed notification Bundles
// ---------------------------------------------------------------------------------------------

describe('parseNotification: malformed notification Bundles', () => {
  const handshake = readJsonFixture('subscriptions/r4-backport__handshake__inferno.json');
  const fullResource = readJsonFixture(
    'subscriptions/r4-backport__event-notification__full-resource__inferno.json',
  );
  const r4b = readJsonFixture('subscriptions/r4b__event-notification__id-only__fhir-4.3.0-spec.json');

  it.each(['collection', 'transaction', 'searchset', undefined])('rejects Bundle.type %s', (type) => {
    expectBadRequest(() => post(withValue(handshake, ['type'], type)), 'invalid', 'Bundle.type');
  });

  it('rejects a notification Bundle without entries (status entry missing)', () => {
    expectBadRequest(() => post(withValue(handshake, ['entry'], [])), 'structure', 'Bundle.entry[0]');
    expectBadRequest(() => post(without(handshake, ['entry'])), 'structure', 'Bundle.entry[0]');
  });

  it('rejects a history Bundle whose first entry is not a subscription status', () => {
    const patientFirst = withValue(
      handshake,
      ['entry', 0, 'resource'],
      readJsonFixture('r4-examples/Patient-example.json'),
    );
    expectBadRequest(() => post(patientFirst), 'structure', 'Bundle.entry[0].resource');
    expectBadRequest(
      () => post(without(handshake, ['entry', 0, 'resource'])),
      'structure',
      'Bundle.entry[0].resource',
    );
  });

  it('rejects an R5 subscription-notification Bundle led by Parameters', () => {
    const r5WithParameters = withValue(handshake, ['type'], 'subscription-notification');
    expectBadRequest(() => post(r5WithParameters), 'structure', 'Bundle.entry[0].resource');
  });

  it('rejects an entry resource without resourceType', () => {
    expectBadRequest(
      () => post(withValue(fullResource, ['entry', 1, 'resource'], { id: 'x' })),
      'structure',
      'Bundle.entry[1].resource',
    );
  });

  it('rejects a notification-event without focus when the Bundle carries resource entries', () => {
    const noFocus = without(fullResource, ['entry', 0, 'resource', 'parameter', 5, 'part', 2]);
    expectBadRequest(() => post(noFocus), 'structure', 'Bundle.entry[0].resource.parameter[5]');
    const r4bNoFocus = without(r4b, ['entry', 0, 'resource', 'notificationEvent', 0, 'focus']);
    expectBadRequest(() => post(r4bNoFocus), 'structure', 'Bundle.entry[0].resource.notificationEvent[0]');
  });

  it('rejects a focus that names no resource', () => {
    const emptyFocus = withValue(r4b, ['entry', 0, 'resource', 'notificationEvent', 0, 'focus'], {
      display: 'x',
    });
    expectBadRequest(
      () => post(emptyFocus),
      'structure',
      'Bundle.entry[0].resource.notificationEvent[0].focus',
    );
    const stringFocus = withValue(fullResource, ['entry', 0, 'resource', 'parameter', 5, 'part', 2], {
      name: 'focus',
      valueBoolean: true,
    });
    expectBadRequest(() => post(stringFocus), 'structure', 'Bundle.entry[0].resource.parameter[5].part[2]');
  });

  it('rejects a notification-event parameter without parts', () => {
    const noParts = withValue(fullResource, ['entry', 0, 'resource', 'parameter', 5], {
      name: 'notification-event',
    });
    expectBadRequest(() => post(noParts), 'structure', 'Bundle.entry[0].resource.parameter[5]');
  });

  it('rejects a missing or unknown notification type', () => {
    expectBadRequest(
      () => post(without(handshake, ['entry', 0, 'resource', 'parameter', 3])),
      'structure',
      "Bundle.entry[0].resource.parameter.where(name = 'type')",
    );
    expectBadRequest(
      () => post(withValue(handshake, ['entry', 0, 'resource', 'parameter', 3, 'valueCode'], 'ping')),
      'value',
      'Bundle.entry[0].resource.parameter[3].value',
    );
    expectBadRequest(
      () => post(without(r4b, ['entry', 0, 'resource', 'type'])),
      'structure',
      'Bundle.entry[0].resource.type',
    );
  });

  it('rejects Parameters whose parameter is not an array', () => {
    expectBadRequest(
      () => post(withValue(handshake, ['entry', 0, 'resource', 'parameter'], { name: 'type' })),
      'structure',
      'Bundle.entry[0].resource.parameter',
    );
  });

  it('warns (does not fail) on an unknown subscription status and a missing subscription', () => {
    const odd = without(
      withValue(handshake, ['entry', 0, 'resource', 'parameter', 2, 'valueCode'], 'paused'),
      ['entry', 0, 'resource', 'parameter', 0],
    );
    const parsed = post(odd);
    expect(parsed.subscription?.status).toBe('paused');
    expect(parsed.warnings.map((warning) => warning.expression?.[0])).toEqual([
      'Bundle.entry[0].resource.parameter[1].value',
      'Bundle.entry[0].resource.parameter',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Classic shapes: empty POST, HAPI PUT/DELETE, Medplum bare POST
// ---------------------------------------------------------------------------------------------

describe('parseNotification: classic rest-hook shapes', () => {
  const patient = readJsonFixture('r4-examples/Patient-example.json');
  const observation = readJsonFixture('r4-examples/Observation-example.json');

  it('classifies an empty POST as a ping with one empty event', () => {
    expect(post(undefined)).toEqual({
      shape: 'empty-ping',
      notificationType: 'rest-hook',
      events: [{ interaction: 'unknown', content: 'empty' }],
      warnings: [],
    });
  });

  it('reads HAPI PUT /{Type}/{id} with the resource', () => {
    const versioned = withValue(patient, ['meta'], { versionId: '3' });
    const parsed = parseNotification({
      method: 'PUT',
      body: versioned,
      pathResource: { resourceType: 'Patient', id: 'example' },
      headers: {},
    });
    expect(parsed.shape).toBe('bare-resource');
    expect(parsed.notificationType).toBe('rest-hook');
    expect(parsed.events).toEqual([
      {
        interaction: 'update',
        content: 'full-resource',
        focus: { reference: 'Patient/example', resourceType: 'Patient', id: 'example', versionId: '3' },
        resource: versioned,
      },
    ]);
  });

  it('reads an old-HAPI PUT without body as a ping that still names the resource (hapi-fhir#807)', () => {
    const parsed = parseNotification({
      method: 'PUT',
      body: undefined,
      pathResource: { resourceType: 'Observation', id: 'example' },
      headers: {},
    });
    expect(parsed.shape).toBe('empty-ping');
    expect(parsed.events).toEqual([
      {
        interaction: 'update',
        content: 'id-only',
        focus: { reference: 'Observation/example', resourceType: 'Observation', id: 'example' },
      },
    ]);
  });

  it('reads an empty POST on a resource path as an id-only ping for that resource', () => {
    const parsed = parseNotification({
      method: 'POST',
      body: undefined,
      pathResource: { resourceType: 'Patient', id: 'example' },
      headers: { 'x-medplum-subscription': 'sub-1' },
    });
    expect(parsed.shape).toBe('empty-ping');
    expect(parsed.subscription).toEqual({ reference: 'Subscription/sub-1' });
    expect(parsed.events).toEqual([
      {
        interaction: 'unknown',
        content: 'id-only',
        focus: { reference: 'Patient/example', resourceType: 'Patient', id: 'example' },
      },
    ]);
  });

  it('rejects a PUT body whose type or id does not match the path', () => {
    const put = (body: unknown): ParsedNotification =>
      parseNotification({
        method: 'PUT',
        body,
        pathResource: { resourceType: 'Patient', id: 'example' },
        headers: {},
      });
    expectBadRequest(() => put(observation), 'invalid', 'Observation');
    expectBadRequest(() => put(withValue(patient, ['id'], 'other')), 'invalid', 'Patient.id');
    expectBadRequest(() => put(without(patient, ['id'])), 'structure', 'Patient.id');
  });

  it('rejects a path that is not /{Type}/{id}', () => {
    for (const pathResource of [
      { resourceType: 'patient', id: 'example' },
      { resourceType: 'Patient', id: 'bad id' },
      { resourceType: 'Patient', id: '' },
    ]) {
      expectBadRequest(
        () => parseNotification({ method: 'PUT', body: patient, pathResource, headers: {} }),
        'value',
      );
    }
  });

  it('reads HAPI DELETE /{Type}/{id}', () => {
    const parsed = parseNotification({
      method: 'DELETE',
      body: undefined,
      pathResource: { resourceType: 'Patient', id: 'example' },
      headers: {},
    });
    expect(parsed).toEqual({
      shape: 'resource-delete',
      notificationType: 'rest-hook',
      events: [
        {
          interaction: 'delete',
          content: 'id-only',
          focus: { reference: 'Patient/example', resourceType: 'Patient', id: 'example' },
        },
      ],
      warnings: [],
    });
  });

  it('rejects a DELETE without a resource path', () => {
    expectBadRequest(
      () => parseNotification({ method: 'DELETE', body: undefined, headers: {} }),
      'structure',
    );
  });

  it.each(['create', 'update'] as const)(
    'reads a Medplum bare-resource POST (interaction %s)',
    (interaction) => {
      const parsed = post(observation, {
        'content-type': 'application/fhir+json',
        'x-medplum-subscription': 'sub-1',
        'x-medplum-interaction': interaction,
      });
      expect(parsed.shape).toBe('bare-resource');
      expect(parsed.subscription).toEqual({ reference: 'Subscription/sub-1' });
      expect(parsed.events).toEqual([
        {
          interaction,
          content: 'full-resource',
          focus: { reference: 'Observation/example', resourceType: 'Observation', id: 'example' },
          resource: observation,
        },
      ]);
    },
  );

  it('reads a bare-resource POST without Medplum headers as interaction unknown', () => {
    expect(post(patient).events[0]?.interaction).toBe('unknown');
  });

  it('warns about an unknown X-Medplum-Interaction value', () => {
    const parsed = post(patient, { 'x-medplum-interaction': 'patch' });
    expect(parsed.events[0]?.interaction).toBe('unknown');
    expect(parsed.warnings).toHaveLength(1);
  });

  it('reads a Medplum delete: {} body + X-Medplum-Deleted-Resource', () => {
    const parsed = post(
      {},
      {
        'x-medplum-interaction': 'delete',
        'x-medplum-deleted-resource': 'Patient/example',
        'x-medplum-subscription': 'sub-1',
      },
    );
    expect(parsed).toEqual({
      shape: 'resource-delete',
      notificationType: 'rest-hook',
      subscription: { reference: 'Subscription/sub-1' },
      events: [
        {
          interaction: 'delete',
          content: 'id-only',
          focus: { reference: 'Patient/example', resourceType: 'Patient', id: 'example' },
        },
      ],
      warnings: [],
    });
  });

  it('reads a Medplum delete whose body is the deleted resource', () => {
    const parsed = post(patient, {
      'x-medplum-interaction': 'delete',
      'x-medplum-deleted-resource': 'Patient/example',
    });
    expect(parsed.shape).toBe('resource-delete');
    expect(parsed.events[0]).toMatchObject({
      interaction: 'delete',
      content: 'full-resource',
      resource: patient,
    });
    expectBadRequest(
      () =>
        post(patient, { 'x-medplum-interaction': 'delete', 'x-medplum-deleted-resource': 'Patient/other' }),
      'invalid',
      'Patient.id',
    );
  });

  it('rejects Medplum deletes that do not name the resource', () => {
    expectBadRequest(() => post({}, { 'x-medplum-interaction': 'delete' }), 'structure');
    expectBadRequest(() => post({}, { 'x-medplum-deleted-resource': 'not a reference' }), 'value');
    expectBadRequest(
      () => post({ foo: 1 }, { 'x-medplum-deleted-resource': 'Patient/example' }),
      'structure',
    );
  });

  it('treats a Bundle delivered with Medplum headers as a bare resource', () => {
    const bundle = readJsonFixture('subscriptions/r4-backport__handshake__inferno.json');
    const parsed = post(bundle, { 'x-medplum-interaction': 'create' });
    expect(parsed.shape).toBe('bare-resource');
    expect(parsed.events[0]?.focus?.reference).toBe('Bundle/r4-notification-handshake');
  });

  it.each<[string, unknown]>([
    ['an array', []],
    ['a string', 'ping'],
    ['a number', 42],
    ['null', null],
  ])('rejects a body that is %s', (_label, body) => {
    expectBadRequest(() => post(body), 'structure');
  });

  it('rejects a body without resourceType', () => {
    expectBadRequest(() => post({}), 'structure');
    expectBadRequest(() => post(without(patient, ['resourceType'])), 'structure');
    expectBadRequest(() => post(withValue(patient, ['resourceType'], 7)), 'structure');
  });

  it('rejects a bare resource whose id is not a FHIR id', () => {
    expectBadRequest(() => post(withValue(patient, ['id'], 'has spaces')), 'value', 'Patient.id');
  });
});

// ---------------------------------------------------------------------------------------------
// No PHI in errors and warnings
// ---------------------------------------------------------------------------------------------

describe('parseNotification: errors do not echo resource data', () => {
  const patient = readJsonFixture('r4-examples/Patient-example.json');
  // Values from Patient-example that must never reach a log line.
  const secrets = ['Chalmers', '12345', 'Peter', 'secret-id-42'];
  const withSecretId = withValue(patient, ['id'], 'secret-id-42');

  it.each<[string, () => unknown]>([
    [
      'PUT id mismatch',
      () =>
        parseNotification({
          method: 'PUT',
          body: withSecretId,
          pathResource: { resourceType: 'Patient', id: 'example' },
          headers: {},
        }),
    ],
    ['bad id', () => post(withValue(patient, ['id'], 'Chalmers 12345'))],
    [
      'deleted-resource header mismatch',
      () =>
        post(withSecretId, {
          'x-medplum-interaction': 'delete',
          'x-medplum-deleted-resource': 'Patient/example',
        }),
    ],
    [
      'bad counter',
      () =>
        post(
          withValue(
            readJsonFixture('subscriptions/r4-backport__heartbeat__inferno.json'),
            ['entry', 0, 'resource', 'parameter', 4, 'valueString'],
            'Chalmers',
          ),
        ),
    ],
  ])('%s', (_label, parse) => {
    const error = rejection(parse);
    const logged = `${error.message} ${JSON.stringify(error.outcome)}`;
    for (const secret of secrets) expect(logged).not.toContain(secret);
  });

  it('gives a message that summarises the outcome for logs', () => {
    const error = rejection(() => post(withValue(patient, ['id'], 'x y')));
    expect(error.message).toBe('The notified resource id is not a valid FHIR id (at Patient.id)');
    expect(error.name).toBe('FhirRequestError');
    expect(valueAt(error.outcome, ['issue', 0, 'code'])).toBe('value');
  });
});
