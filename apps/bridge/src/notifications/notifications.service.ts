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
import { InboxWriter } from './inbox-writer';
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

/** What the answer needs of an accepted notification (the parsed body itself is not kept). */
export interface NotificationSummary {
  readonly shape: ParsedNotification['shape'];
  readonly notificationType: ParsedNotification['notificationType'];
  readonly eventCount: number;
  /** Tolerated departures from the specifications, returned to the sender. */
  readonly warnings: ParsedNotification['warnings'];
}

export interface AcceptedNotification extends NotificationSummary {
  readonly inboxId: string;
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
  private readonly inbox: InboxWriter;

  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly sources: SourcesService,
    private readonly enqueuer: IngestEnqueuer,
    private readonly rateLimiter: SourceRateLimiter,
  ) {
    this.inbox = new InboxWriter(store.inbox);
  }

  async accept(request: HookRequest): Promise<AcceptedNotification> {
    // A source looked up within the cache period is answered without a promise or a database trip.
    const intake =
      this.sources.cached(request.sourceId) ??
      (await unavailableAs503(() => this.sources.find(request.sourceId), STORE_UNAVAILABLE));
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
    if (source.rateLimitPerSecond !== undefined) await this.rateLimiter.take(source);

    const contentType = single(request.headers['content-type']);
    const { headers, stored } = splitHeaders(request.headers);
    const parsed = summarise(request, contentType, headers);
    if ('rejected' in parsed) {
      await this.keepRejected(source.id, request.body, parsed.rejected.outcome);
      throw parsed.rejected;
    }
    const { summary } = parsed;

    const inboxId = await unavailableAs503(
      () =>
        this.inbox.write({
          sourceId: source.id,
          method: request.method,
          path: request.path,
          contentType,
          headers: stored,
          body: request.body,
          shape: summary.shape,
          notificationType: summary.notificationType,
          eventCount: summary.eventCount,
        }),
      STORE_UNAVAILABLE,
    );
    // Committed: from here the notification cannot be lost. The job is a convenience for latency;
    // if Redis is down or loses it, the worker's inbox relay enqueues the row again.
    this.enqueuer.enqueue(inboxId);
    return { inboxId, ...summary };
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

/**
 * Parses the body (throws 415 / 400 as parseJsonBody says) and the notification shape (a malformed
 * notification comes back as `rejected`, for the caller to keep as a dead letter), and keeps only
 * what the answer and the inbox row need. Synchronous and separate from `accept` on purpose: the
 * parsed body, several times the size of the raw bytes on the heap, is garbage as soon as this
 * returns rather than held across the inbox INSERT by every request in flight.
 */
function summarise(
  request: HookRequest,
  contentType: string | undefined,
  headers: NotificationRequest['headers'],
): { summary: NotificationSummary } | { rejected: FhirRequestError } {
  const body = request.body.length === 0 ? undefined : parseJsonBody(request.body, contentType);
  let notification: ParsedNotification;
  try {
    notification = parseNotification({
      method: request.method,
      body,
      pathResource: request.pathResource,
      headers,
    });
  } catch (error) {
    if (error instanceof FhirRequestError) return { rejected: error };
    throw error;
  }
  return {
    summary: {
      shape: notification.shape,
      notificationType: notification.notificationType,
      eventCount: notification.events.length,
      warnings: notification.warnings,
    },
  };
}

/**
 * One pass over the request headers: every header by its lower-case name for the parser (Medplum's
 * `X-Medplum-*`), and the ones the inbox keeps (all but credentials).
 */
function splitHeaders(raw: HookRequest['headers']): {
  headers: Record<string, string | undefined>;
  stored: Record<string, string>;
} {
  const headers: Record<string, string | undefined> = {};
  const stored: Record<string, string> = {};
  for (const name in raw) {
    const key = name.toLowerCase();
    const text = single(raw[name]);
    headers[key] = text;
    if (text !== undefined && !REDACTED_HEADERS.has(key)) stored[key] = text;
  }
  return { headers, stored };
}
