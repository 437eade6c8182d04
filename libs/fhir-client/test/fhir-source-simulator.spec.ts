import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Patient, Resource } from '@medplum/fhirtypes';
import {
  parseNotification,
  type NotificationRequest,
  type ParsedNotification,
} from '@fhir-trail/fhir-mapping';
import { readJsonFixture } from '../../../test/fixtures/fixture-files';
import {
  FhirSourceSimulator,
  generateKeyPair,
  type NotificationDelivery,
  type SimulatedContent,
  type SimulatedShape,
} from '../../../test/support/fhir-source-simulator';
import { importAssertionKey, signClientAssertion } from '../src';

/** A receiver that records what arrives and answers 200, like the bridge's hook endpoint. */
class CapturingReceiver {
  readonly received: { method: string; path: string; headers: IncomingMessage['headers']; body: Buffer }[] =
    [];
  private server?: Server;
  url = '';

  async start(): Promise<string> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.received.push({
          method: request.method ?? '',
          path: request.url ?? '',
          headers: request.headers,
          body: Buffer.concat(chunks),
        });
        response.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/sim`;
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The last request as the bridge hands it to parseNotification. */
  lastAsNotification(): NotificationRequest {
    const last = this.received.at(-1);
    if (!last) throw new Error('nothing received');
    const path = last.path.split('?')[0] ?? '';
    const tail = /\/hooks\/sim\/([A-Za-z]+)\/([A-Za-z0-9\-.]+)$/.exec(path);
    const headers: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(last.headers)) {
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const request: NotificationRequest = {
      method: last.method as NotificationRequest['method'],
      body: last.body.length === 0 ? undefined : (JSON.parse(last.body.toString('utf8')) as unknown),
      headers,
    };
    if (tail?.[1] !== undefined && tail[2] !== undefined) {
      request.pathResource = { resourceType: tail[1], id: tail[2] };
    }
    return request;
  }

  lastParsed(): ParsedNotification {
    return parseNotification(this.lastAsNotification());
  }
}

const patient = (family: string): Patient => ({ resourceType: 'Patient', name: [{ family }] });

async function fhirGet(
  url: string,
  token?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(
    url,
    token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
  );
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

describe('FhirSourceSimulator', () => {
  const simulator = new FhirSourceSimulator({ pageSize: 2 });
  const receiver = new CapturingReceiver();

  beforeAll(async () => {
    await simulator.start();
    await receiver.start();
  });
  afterAll(async () => {
    await receiver.stop();
    await simulator.stop();
  });

  describe('notifications parse with parseNotification', () => {
    const shapes: [SimulatedShape, ParsedNotification['shape']][] = [
      ['backport', 'backport-history'],
      ['r4b', 'r4b-history'],
      ['r5', 'r5-notification'],
    ];
    const contents: SimulatedContent[] = ['full-resource', 'id-only', 'empty'];

    it.each(shapes)('%s handshake and heartbeat', async (shape, parsedShape) => {
      const notifier = simulator.notifier({ endpoint: receiver.url });
      expect((await notifier.sendHandshake({ shape })).status).toBe(200);
      let parsed = receiver.lastParsed();
      expect(parsed).toMatchObject({
        shape: parsedShape,
        notificationType: 'handshake',
        events: [],
        subscription: {
          status: 'requested',
          eventsSinceSubscriptionStart: '0',
          reference: `${simulator.baseUrl}/Subscription/${notifier.subscriptionId}`,
        },
      });
      await notifier.sendEvent(patient('Heartbeat'), { shape });
      await notifier.sendHeartbeat({ shape });
      parsed = receiver.lastParsed();
      expect(parsed.notificationType).toBe('heartbeat');
      expect(parsed.subscription).toMatchObject({ status: 'active', eventsSinceSubscriptionStart: '1' });
      expect(parsed.warnings).toEqual([]);
    });

    describe.each(shapes)('%s event-notification', (shape, parsedShape) => {
      it.each(contents)('%s', async (content) => {
        const notifier = simulator.notifier({ endpoint: receiver.url });
        await notifier.sendEvent(patient('First'), { shape, content });
        const delivery = await notifier.sendEvent(patient('Second'), { shape, content, skipNumbers: 2 });
        expect(delivery.status).toBe(200);
        const parsed = receiver.lastParsed();
        expect(parsed.shape).toBe(parsedShape);
        expect(parsed.notificationType).toBe('event-notification');
        expect(parsed.subscription?.eventsSinceSubscriptionStart).toBe('4');
        expect(parsed.events).toHaveLength(1);
        const [event] = parsed.events;
        expect(event?.eventNumber).toBe('4');
        expect(event?.content).toBe(content);
        const id = delivery.event?.focus.id;
        if (content === 'empty') {
          expect(event?.focus).toBeUndefined();
        } else {
          expect(event?.focus).toMatchObject({ resourceType: 'Patient', id });
          expect(event?.interaction).toBe('create');
        }
        if (content === 'full-resource') {
          expect(event?.resource).toMatchObject({ resourceType: 'Patient', id, meta: { versionId: '1' } });
        }
        expect(parsed.warnings).toEqual([]);
      });
    });

    it('an update and a delete carry their interaction', async () => {
      const notifier = simulator.notifier({ endpoint: receiver.url });
      const created = simulator.put(patient('Update'));
      await notifier.sendEvent({ ...created, active: true });
      expect(receiver.lastParsed().events[0]).toMatchObject({
        interaction: 'update',
        content: 'full-resource',
      });
      await notifier.sendEvent(created, { interaction: 'delete' });
      expect(receiver.lastParsed().events[0]).toMatchObject({ interaction: 'delete', content: 'id-only' });
      expect(simulator.current('Patient', created.id as string)).toBeUndefined();
    });

    it('Backport Bundles follow the layout of the Inferno examples', async () => {
      const notifier = simulator.notifier({ endpoint: receiver.url });
      await notifier.sendEvent(patient('Layout'));
      const sent = JSON.parse((receiver.received.at(-1)?.body ?? Buffer.alloc(0)).toString('utf8')) as Bundle;
      const fixture = readJsonFixture(
        'subscriptions/r4-backport__event-notification__full-resource__inferno.json',
      ) as Bundle;
      const layout = (bundle: Bundle): unknown => ({
        type: bundle.type,
        profile: bundle.meta?.profile,
        names: bundle.entry[0]?.resource.parameter?.map((parameter) => [
          parameter.name,
          Object.keys(parameter).filter((key) => key !== 'name'),
          parameter.part?.map((part) => [part.name, Object.keys(part).filter((key) => key !== 'name')]),
        ]),
        statusRequest: bundle.entry[0]?.request?.method,
        entries: bundle.entry.map((entry) => Object.keys(entry).sort()),
      });
      expect(layout(sent)).toEqual(layout(fixture));
    });
  });

  describe('classic shapes parse with parseNotification', () => {
    it('Medplum create and delete, with X-Signature over the exact body', async () => {
      const notifier = simulator.notifier({
        endpoint: receiver.url,
        signing: { style: 'x-signature', secret: 'medplum-secret' },
      });
      const created = await notifier.sendMedplum(patient('Medplum'), 'create');
      expect(receiver.lastParsed()).toMatchObject({
        shape: 'bare-resource',
        subscription: { reference: `Subscription/${notifier.subscriptionId}` },
        events: [{ interaction: 'create', content: 'full-resource' }],
      });
      expect(receiver.received.at(-1)?.headers['x-signature']).toBe(hmac('medplum-secret', created.body));

      const id = (JSON.parse(created.body.toString('utf8')) as Resource).id as string;
      const deleted = await notifier.sendMedplumDelete('Patient', id);
      expect(deleted.body.toString('utf8')).toBe('{}');
      expect(receiver.lastParsed()).toMatchObject({
        shape: 'resource-delete',
        events: [{ interaction: 'delete', focus: { resourceType: 'Patient', id } }],
      });
      expect(receiver.received.at(-1)?.headers['x-signature']).toBe(
        hmac('medplum-secret', Buffer.from('{}')),
      );
    });

    it('HAPI PUT and DELETE on {endpoint}/{Type}/{id}, and the empty ping', async () => {
      const notifier = simulator.notifier({ endpoint: receiver.url });
      const put = await notifier.sendHapiUpdate(patient('Hapi'));
      const id = (JSON.parse(put.body.toString('utf8')) as Resource).id as string;
      expect(receiver.received.at(-1)).toMatchObject({ method: 'PUT', path: `/hooks/sim/Patient/${id}` });
      expect(receiver.lastParsed()).toMatchObject({
        shape: 'bare-resource',
        events: [{ interaction: 'update' }],
      });

      await notifier.sendHapiDelete('Patient', id);
      expect(receiver.received.at(-1)).toMatchObject({ method: 'DELETE', path: `/hooks/sim/Patient/${id}` });
      expect(receiver.lastParsed()).toMatchObject({
        shape: 'resource-delete',
        events: [{ interaction: 'delete' }],
      });

      await notifier.sendPing();
      expect(receiver.received.at(-1)?.body.length).toBe(0);
      expect(receiver.lastParsed()).toMatchObject({ shape: 'empty-ping', events: [{ content: 'empty' }] });
    });

    it('sends channel.header lines as headers, and X-Hub-Signature over the exact bytes', async () => {
      const notifier = simulator.notifier({
        endpoint: receiver.url,
        headers: ['Authorization: Bearer demo-token', 'X-Trace: a:b:c'],
        signing: { style: 'x-hub-signature', secret: 'SecretHashKeyForConsumer1' },
      });
      const delivery: NotificationDelivery = await notifier.sendEvent(patient('Signed'), {
        content: 'id-only',
      });
      const headers = receiver.received.at(-1)?.headers;
      expect(headers?.authorization).toBe('Bearer demo-token');
      expect(headers?.['x-trace']).toBe('a:b:c');
      expect(headers?.['x-hub-signature']).toBe(`sha256=${hmac('SecretHashKeyForConsumer1', delivery.body)}`);
      expect(receiver.received.at(-1)?.body.equals(delivery.body)).toBe(true);
    });
  });

  describe('FHIR REST', () => {
    it('versions resources; 404 for unknown, 410 for deleted, vread of old versions', async () => {
      const first = simulator.put(patient('Versioned'));
      const second = simulator.put({ ...first, active: true });
      expect(second.meta?.versionId).toBe('2');
      expect(Date.parse(second.meta?.lastUpdated ?? '')).toBeGreaterThan(
        Date.parse(first.meta?.lastUpdated ?? ''),
      );
      const url = `${simulator.baseUrl}/Patient/${first.id}`;
      expect((await fhirGet(url)).body).toMatchObject({ active: true, meta: { versionId: '2' } });
      expect((await fhirGet(`${url}/_history/1`)).body).toMatchObject({ meta: { versionId: '1' } });
      expect(simulator.readCount('Patient', first.id as string)).toBe(1);
      expect((await fhirGet(`${simulator.baseUrl}/Patient/nope`)).status).toBe(404);
      simulator.delete('Patient', first.id as string);
      expect((await fhirGet(url)).status).toBe(410);
      expect((await fhirGet(`${url}/_history/2`)).status).toBe(200);
    });

    it('searches by _id, _lastUpdated and _since, with next links', async () => {
      const lab = new FhirSourceSimulator({ pageSize: 2 });
      const base = await lab.start();
      try {
        const stored = ['A', 'B', 'C', 'D', 'E'].map((family) => lab.put(patient(family)));
        const page1 = (await fhirGet(`${base}/Patient`)).body as unknown as Bundle;
        expect(page1.total).toBe(5);
        expect(page1.entry).toHaveLength(2);
        const next = page1.link?.find((link) => link.relation === 'next')?.url ?? '';
        expect(next.startsWith(`${base}/Patient?`)).toBe(true);
        const page2 = (await fhirGet(next)).body as unknown as Bundle;
        expect(page2.entry.map((entry) => entry.resource.id)).toEqual([stored[2]?.id, stored[3]?.id]);

        const after = stored[2]?.meta?.lastUpdated ?? '';
        const gt = (await fhirGet(`${base}/Patient?_lastUpdated=gt${after}&_count=10`))
          .body as unknown as Bundle;
        expect(gt.entry.map((entry) => entry.resource.id)).toEqual([stored[3]?.id, stored[4]?.id]);
        const since = (await fhirGet(`${base}/Patient?_since=${after}&_count=10`)).body as unknown as Bundle;
        expect(since.total).toBe(3);
        const byId = (await fhirGet(`${base}/Patient?_id=${stored[1]?.id},${stored[4]?.id}`))
          .body as unknown as Bundle;
        expect(byId.total).toBe(2);
        expect((await fhirGet(`${base}/Patient?_lastUpdated=gtnot-a-date`)).status).toBe(400);
      } finally {
        await lab.stop();
      }
    });

    it('$status answers a searchset and $events the logged events, gaps included', async () => {
      const notifier = simulator.notifier({ endpoint: receiver.url });
      await notifier.sendEvent(patient('One'));
      await notifier.sendEvent(patient('Three'), { skipNumbers: 1 });
      const id = notifier.subscriptionId;
      const status = (await fhirGet(`${simulator.baseUrl}/Subscription/${id}/$status`))
        .body as unknown as Bundle;
      expect(status.type).toBe('searchset');
      expect(status.entry[0]?.resource.resourceType).toBe('Parameters');
      const events = (
        await fhirGet(
          `${simulator.baseUrl}/Subscription/${id}/$events?eventsSinceNumber=2&eventsUntilNumber=3`,
        )
      ).body;
      const parsed = parseNotification({ method: 'POST', body: events, headers: {} });
      expect(parsed.notificationType).toBe('query-event');
      expect(parsed.events.map((event) => event.eventNumber)).toEqual(['2', '3']);
      expect((await fhirGet(`${simulator.baseUrl}/Subscription/unknown/$status`)).status).toBe(404);
    });
  });

  describe('SMART Backend Services', () => {
    const secured = new FhirSourceSimulator({ auth: {} });
    const keys = generateKeyPair('ES384');
    const sign = (
      overrides: { tokenUrl?: string; nowSeconds?: number; lifetimeSeconds?: number } = {},
    ): string =>
      signClientAssertion({
        clientId: 'bridge',
        tokenUrl: overrides.tokenUrl ?? secured.tokenUrl,
        keyId: keys.kid,
        algorithm: 'ES384',
        key: importAssertionKey(keys.privateJwk, 'ES384'),
        ...(overrides.nowSeconds === undefined ? {} : { nowSeconds: overrides.nowSeconds }),
        ...(overrides.lifetimeSeconds === undefined ? {} : { lifetimeSeconds: overrides.lifetimeSeconds }),
      });
    const requestToken = async (
      assertion: string,
    ): Promise<{ status: number; body: Record<string, unknown> }> => {
      const response = await fetch(secured.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          scope: 'system/Patient.rs',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }).toString(),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    beforeAll(async () => {
      await secured.start();
      secured.registerClient('bridge', keys.publicJwk);
    });
    afterAll(() => secured.stop());

    it('publishes its configuration without a token and guards FHIR endpoints with one', async () => {
      const config = await fhirGet(`${secured.baseUrl}/.well-known/smart-configuration`);
      expect(config.body).toMatchObject({
        token_endpoint: secured.tokenUrl,
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
      });
      expect((await fhirGet(`${secured.baseUrl}/Patient`)).status).toBe(401);
      const granted = await requestToken(sign());
      expect(granted).toMatchObject({ status: 200, body: { token_type: 'bearer', expires_in: 300 } });
      expect((await fhirGet(`${secured.baseUrl}/Patient`, granted.body.access_token as string)).status).toBe(
        200,
      );
    });

    it.each([
      [
        'wrong aud',
        () => sign({ tokenUrl: 'http://127.0.0.1:1/other/token' }),
        'aud is not the token endpoint',
      ],
      ['expired', () => sign({ nowSeconds: Math.floor(Date.now() / 1000) - 600 }), 'assertion expired'],
      [
        'too far ahead',
        () => sign({ nowSeconds: Math.floor(Date.now() / 1000) + 120 }),
        'exp more than five minutes ahead',
      ],
      ['forged', () => `${sign().slice(0, -8)}AAAAAAAA`, 'bad signature'],
    ])('refuses an assertion: %s', async (_name, assertion, reason) => {
      const refused = await requestToken(assertion());
      expect(refused).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
      expect(secured.stats.refusedAssertions.at(-1)).toBe(reason);
    });

    it('refuses a replayed jti', async () => {
      const assertion = sign();
      expect((await requestToken(assertion)).status).toBe(200);
      expect(await requestToken(assertion)).toMatchObject({ status: 401 });
      expect(secured.stats.refusedAssertions.at(-1)).toBe('jti replayed');
    });
  });
});

interface Bundle {
  type: string;
  total?: number;
  meta?: { profile?: string[] };
  link?: { relation: string; url: string }[];
  entry: {
    resource: {
      resourceType: string;
      id?: string;
      parameter?: { name: string; part?: { name: string }[] }[];
    };
    request?: { method: string };
  }[];
}

function hmac(secret: string, body: Buffer): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}
