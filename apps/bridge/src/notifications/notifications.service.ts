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
import { Store } from '@fhir-trail/store';
import { STORE } from '@fhir-trail/runtime';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { parseJsonBody, single } from '../fhir/json-body';
import { IngestEnqueuer } from './ingest-enqueuer';
import { authenticateSender } from './sender-authentication';
import { SourceRateLimiter } from './source-rate-limiter';
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

/**
 * Credentials never reach the inbox. Signatures do (they are MACs of the stored body, kept for
 * audit); `X-Hub-Secret` belongs on the Subscription create request, but is dropped if a sender sends it.
 */
const STORE_UNAVAILABLE = 'the bridge cannot store notifications right now; retry later';
const REDACTED_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'x-hub-secret']);

/**
 * The intake path: authenticate (every check configured for the source, over the raw body bytes),
 * apply the source's rate limit, parse the shape, commit the raw notification to the inbox, then
 * enqueue a job carrying only the inbox id. Authentication comes before the rate limit, so forged
 * requests cannot spend a real sender's budget. 200 is answered only after the commit; if the queue is
 * unreachable the inbox relay enqueues it later, so nothing accepted is lost.
 */
@Injectable()
export class NotificationsService {
  private readonly logger = new Logger(NotificationsService.name);

  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly sources: SourcesService,
    private readonly enqueuer: IngestEnqueuer,
    private readonly rateLimiter: SourceRateLimiter,
  ) {}

  async accept(request: HookRequest): Promise<AcceptedNotification> {
    const intake = await unavailableAs503(() => this.sources.find(request.sourceId), STORE_UNAVAILABLE);
    // A disabled (deleted) source answers exactly like one never registered: a caller without
    // credentials learns nothing about which ids exist.
    if (!intake?.source.enabled) {
      throw new FhirRequestError(
        404,
        operationOutcome([outcomeIssue({ code: 'not-found', text: `unknown source '${request.sourceId}'` })]),
      );
    }
    const { source, credentials } = intake;
    authenticateSender(source.senderAuth, credentials, request);
    await this.rateLimiter.take(source);

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

    const inboxId = await unavailableAs503(
      () =>
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
      STORE_UNAVAILABLE,
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
