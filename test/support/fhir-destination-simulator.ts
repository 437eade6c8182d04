import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the destination received. */
export interface ReceivedDelivery {
  readonly method: string;
  readonly path: string;
  readonly authorization?: string;
  readonly body: Record<string, unknown>;
  /** The status the destination answered with. */
  readonly status: number;
  /** `performance.now()` when the request was complete. */
  readonly receivedAt: number;
}

/**
 * A small FHIR R4 destination server on node:http, for tests: accepts `PUT {base}/{Type}/{id}` and
 * `POST {base}` transaction Bundles, keeps what it received, and can be made to answer 503 (down)
 * to exercise the bridge's retries. Binds 127.0.0.1 on a free port; the FHIR base is
 * `http://127.0.0.1:{port}/fhir`.
 */
export class FhirDestinationSimulator {
  readonly received: ReceivedDelivery[] = [];
  /** While true every request gets 503. */
  down = false;
  private server?: Server;
  private port = 0;

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/fhir`;
  }

  /** Bodies of the successful deliveries of one resource (`Type/id`), in arrival order. */
  deliveredOf(reference: string): Record<string, unknown>[] {
    return this.received.filter((r) => r.status < 300 && r.path === `/fhir/${reference}`).map((r) => r.body);
  }

  async start(): Promise<this> {
    this.server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      body = {};
    }
    const receivedAt = performance.now();
    const path = request.url ?? '/';
    const status = this.down
      ? 503
      : request.method === 'PUT' && /^\/fhir\/[A-Z][A-Za-z]+\/[^/]+$/.test(path)
        ? 200
        : request.method === 'POST' && path === '/fhir'
          ? 200
          : 400;
    this.received.push({
      method: request.method ?? '',
      path,
      ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
      body,
      status,
      receivedAt,
    });
    response.writeHead(status, { 'content-type': 'application/fhir+json' });
    response.end(JSON.stringify(status === 200 ? body : { resourceType: 'OperationOutcome', issue: [] }));
  }
}
