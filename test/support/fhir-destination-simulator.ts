import { type JsonWebKey, type KeyObject, createPublicKey, randomBytes, verify } from 'node:crypto';
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
  /** SMART Backend Services: token requests seen, tokens issued, assertions refused (with why). */
  readonly smart = { tokenRequests: 0, tokensIssued: 0, refused: [] as string[] };
  private server?: Server;
  private port = 0;
  private client?: { readonly clientId: string; readonly kid: string; readonly key: KeyObject };
  private readonly tokens = new Set<string>();
  private readonly seenJtis = new Set<string>();

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/fhir`;
  }

  /** The token endpoint (SMART Backend Services), also announced at `{base}/.well-known/smart-configuration`. */
  get tokenUrl(): string {
    return `http://127.0.0.1:${this.port}/auth/token`;
  }

  /**
   * From now on FHIR requests need a bearer token this simulator issued, which `POST /auth/token`
   * grants for a `client_credentials` request with a `private_key_jwt` assertion by `clientId`,
   * signed (RS384 or ES384) by the key whose public JWK (with `kid`) is given here.
   */
  requireSmart(clientId: string, publicJwk: JsonWebKey & { kid?: string }): void {
    if (typeof publicJwk.kid !== 'string') throw new Error('the public JWK needs a kid');
    this.client = { clientId, kid: publicJwk.kid, key: createPublicKey({ key: publicJwk, format: 'jwk' }) };
  }

  /** Forgets every token issued so far (the next request with one gets 401). */
  revokeTokens(): void {
    this.tokens.clear();
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
    if (this.client && path === '/fhir/.well-known/smart-configuration' && request.method === 'GET') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          token_endpoint: this.tokenUrl,
          token_endpoint_auth_methods_supported: ['private_key_jwt'],
          token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
          grant_types_supported: ['client_credentials'],
        }),
      );
      return;
    }
    if (this.client && path === '/auth/token' && request.method === 'POST') {
      const [status, answer] = this.issueToken(Buffer.concat(chunks).toString('utf8'));
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(answer));
      return;
    }
    const bearer = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1];
    const unauthorised = this.client !== undefined && (bearer === undefined || !this.tokens.has(bearer));
    const status = unauthorised
      ? 401
      : this.down
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

  private issueToken(body: string): [number, Record<string, unknown>] {
    this.smart.tokenRequests += 1;
    const form = new URLSearchParams(body);
    const refuse = (why: string): [number, Record<string, unknown>] => {
      this.smart.refused.push(why);
      return [why === 'unsupported grant' ? 400 : 401, { error: 'invalid_client' }];
    };
    if (form.get('grant_type') !== 'client_credentials') return refuse('unsupported grant');
    if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      return refuse('no jwt-bearer assertion');
    }
    const [encodedHeader = '', encodedClaims = '', encodedSignature = ''] = (
      form.get('client_assertion') ?? ''
    ).split('.');
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >;
      claims = JSON.parse(Buffer.from(encodedClaims, 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >;
    } catch {
      return refuse('malformed assertion');
    }
    const client = this.client!;
    if (claims['iss'] !== client.clientId || claims['sub'] !== client.clientId)
      return refuse('unknown client');
    if (header['kid'] !== client.kid) return refuse('unknown kid');
    const signed = Buffer.from(`${encodedHeader}.${encodedClaims}`);
    const signature = Buffer.from(encodedSignature, 'base64url');
    const valid =
      header['alg'] === 'ES384'
        ? verify('sha384', signed, { key: client.key, dsaEncoding: 'ieee-p1363' }, signature)
        : header['alg'] === 'RS384' && verify('sha384', signed, client.key, signature);
    if (!valid) return refuse('bad signature');
    if (claims['aud'] !== this.tokenUrl) return refuse('aud is not the token endpoint');
    if (typeof claims['exp'] !== 'number' || claims['exp'] <= Date.now() / 1000) return refuse('expired');
    const jti = claims['jti'];
    if (typeof jti !== 'string' || this.seenJtis.has(jti)) return refuse('jti missing or replayed');
    this.seenJtis.add(jti);
    const token = randomBytes(24).toString('base64url');
    this.tokens.add(token);
    this.smart.tokensIssued += 1;
    return [200, { access_token: token, token_type: 'bearer', expires_in: 300, scope: form.get('scope') }];
  }
}
