import { Inject, Injectable, Logger } from '@nestjs/common';
import type { OperationOutcome } from '@medplum/fhirtypes';
import {
  FhirRequestError,
  operationOutcome,
  outcomeIssue,
  parseNotification,
  type NotificationRequest,
  type ParsedNotification,
} from '@fhir-trail/fhir-mapping';
import { isDatabaseUnavailable, type SourceRecord, Store, tokenMatches } from '@fhir-trail/store';
import { STORE } from '@fhir-trail/runtime';
import { IngestEnqueuer } from './ingest-enqueuer';
import { SourcesService } from './sources.service';

/** One request on a hook endpoint, as the controller hands it over. */
export interface HookRequest {
  readonly sourceId: string;
  readonly method: NotificationRequest['method'];
  readonly path: string;
  readonly pathResource?: { resourceType: string; id: string };
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Raw body bytes, exactly as received (empty for a ping). */
  readonly body: Buffer;
}

export interface AcceptedNotification {
  readonly inboxId: string;
  readonly notification: ParsedNotification;
}

const JSON_MEDIA_TYPES = new Set(['application/fhir+json', 'application/json']);
/** Credentials never reach the inbox. */
const REDACTED_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/**
 * The intake path: authenticate, parse the shape, commit the raw notification to the inbox, then
 * enqueue a job carrying only the inbox id. 200 is answered only after the commit; if the queue is
 * unreachable the inbox relay enqueues it later, so nothing accepted is lost.
 */
@Injectable()
export class NotificationsService {
  private readonly logger = new Logger(NotificationsService.name);

  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly sources: SourcesService,
    private readonly enqueuer: IngestEnqueuer,
  ) {}

  async accept(request: HookRequest): Promise<AcceptedNotification> {
    const source = await this.unavailableAs503(() => this.sources.find(request.sourceId));
    if (!source) {
      throw new FhirRequestError(
        404,
        operationOutcome([outcomeIssue({ code: 'not-found', text: `unknown source '${request.sourceId}'` })]),
      );
    }
    authenticate(source, request.headers.authorization);

    const contentType = single(request.headers['content-type']);
    const body = request.body.length === 0 ? undefined : parseJsonBody(request.body, contentType);

    let notification: ParsedNotification;
    try {
      notification = parseNotification({
        method: request.method,
        body,
        pathResource: request.pathResource,
        headers: lowerCaseHeaders(request.headers),
      });
    } catch (error) {
      if (error instanceof FhirRequestError) await this.keepRejected(source.id, request.body, error.outcome);
      throw error;
    }

    const inboxId = await this.unavailableAs503(() =>
      this.store.inbox.insert({
        sourceId: source.id,
        method: request.method,
        path: request.path,
        contentType,
        headers: storedHeaders(request.headers),
        body: request.body,
        shape: notification.shape,
        notificationType: notification.notificationType,
        eventCount: notification.events.length,
      }),
    );
    // Committed: from here the notification cannot be lost. The job is a convenience for latency;
    // if Redis is down or loses it, the worker's inbox relay enqueues the row again.
    this.enqueuer.enqueue(inboxId);
    return { inboxId, notification };
  }

  /** A malformed notification is refused (4xx) but kept as a dead letter an engineer can inspect. */
  private async keepRejected(sourceId: string, raw: Buffer, outcome: OperationOutcome): Promise<void> {
    try {
      await this.store.deadLetters.insert({
        sourceId,
        reasonCode: 'malformed-notification',
        outcome: { ...outcome },
        raw,
      });
    } catch (error) {
      this.logger.warn({ msg: 'could not keep a rejected notification', sourceId, error: String(error) });
    }
  }

  private async unavailableAs503<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (isDatabaseUnavailable(error)) {
        throw new FhirRequestError(
          503,
          operationOutcome([
            outcomeIssue({
              code: 'transient',
              text: 'the bridge cannot store notifications right now; retry later',
            }),
          ]),
          { cause: error },
        );
      }
      throw error;
    }
  }
}

function authenticate(source: SourceRecord, authorization: string | string[] | undefined): void {
  const header = single(authorization);
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match || !tokenMatches(match[1], source.tokenSha256)) {
    throw new FhirRequestError(
      401,
      operationOutcome([
        outcomeIssue({
          code: 'security',
          text: header
            ? 'the bearer token is not valid for this source'
            : 'missing Authorization: Bearer token',
        }),
      ]),
    );
  }
}

function parseJsonBody(raw: Buffer, contentType: string | undefined): unknown {
  const mediaType = contentType?.split(';')[0].trim().toLowerCase();
  if (!mediaType || !JSON_MEDIA_TYPES.has(mediaType)) {
    throw new FhirRequestError(
      415,
      operationOutcome([
        outcomeIssue({
          code: 'not-supported',
          text: `unsupported content type '${mediaType ?? '(none)'}'; send application/fhir+json or application/json`,
        }),
      ]),
    );
  }
  try {
    // A UTF-8 byte-order mark is tolerated (one real sender's captures start with one).
    return JSON.parse(raw.toString('utf8').replace(/^\uFEFF/, '')) as unknown;
  } catch (error) {
    // V8's message quotes the input; report only where it broke.
    const position = /position (\d+)/.exec(String(error))?.[1];
    throw new FhirRequestError(
      400,
      operationOutcome([
        outcomeIssue({
          code: 'structure',
          text: `the body is not valid JSON${position ? ` (syntax error at byte ${position})` : ''}`,
        }),
      ]),
      { cause: error },
    );
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function lowerCaseHeaders(headers: HookRequest['headers']): Record<string, string | undefined> {
  const result: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) result[name.toLowerCase()] = single(value);
  return result;
}

function storedHeaders(headers: HookRequest['headers']): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    const text = single(value);
    if (text !== undefined && !REDACTED_HEADERS.has(key)) result[key] = text;
  }
  return result;
}
