import { sql } from 'kysely';
import type { StoreDb } from './database';
import type { EventGapStatus } from './schema';

/** What one notification says about its subscription. */
export interface SubscriptionNotice {
  readonly sourceId: string;
  readonly reference: string;
  readonly topic?: string;
  readonly status?: string;
  readonly type: string;
  /** `eventsSinceSubscriptionStart` as sent (the sender's counter), decimal string. */
  readonly eventsSinceStart?: string;
  /** Event numbers carried by this notification (decimal strings). */
  readonly eventNumbers: readonly string[];
  readonly resourceTypes: readonly string[];
  /** Gap detection applies only to senders keeping the IG's gap-free counter. */
  readonly gapDetection: boolean;
  /** Error codes the sender reported (status `error`). */
  readonly errors?: readonly string[];
}

export interface EventGap {
  readonly id: string;
  readonly sourceId: string;
  readonly subscription: string;
  readonly from: bigint;
  readonly to: bigint;
  readonly status: EventGapStatus;
  readonly detectedAt: Date;
}

export interface SubscriptionView {
  readonly sourceId: string;
  readonly reference: string;
  readonly topic: string | null;
  readonly status: string | null;
  readonly lastEventNumber: string | null;
  readonly heartbeatPeriodSeconds: number | null;
  readonly lastHeartbeatAt: Date | null;
  readonly lastNotificationAt: Date | null;
  readonly alert: string | null;
  readonly alertAt: Date | null;
  readonly notifications: number;
  readonly duplicates: number;
  readonly openGaps: number;
}

/**
 * What each subscription has told us: status, the highest event number seen, heartbeats, alerts,
 * and the gaps in its event numbers. Heartbeats and handshakes update the status but never
 * advance the event counter; a counter they report beyond what we saw is still a gap.
 */
export class SubscriptionsRepository {
  constructor(private readonly db: StoreDb) {}

  /**
   * Records a notification (inside the ingest transaction) and returns the gaps it revealed:
   * event numbers above the last one seen that neither this notification nor an earlier one
   * carried. Alerts are raised for `status=error` and `query-status` answers that are not active.
   */
  async recordNotification(trx: StoreDb, notice: SubscriptionNotice): Promise<readonly EventGap[]> {
    await sql`select pg_advisory_xact_lock(hashtextextended(${`sub|${notice.sourceId}|${notice.reference}`}, 0))`.execute(
      trx,
    );
    const current = await trx
      .selectFrom('subscriptions')
      .selectAll()
      .where('source_id', '=', notice.sourceId)
      .where('reference', '=', notice.reference)
      .executeTakeFirst();
    const now = new Date();
    const carried = notice.eventNumbers.map((n) => BigInt(n));
    const last =
      current?.last_event_number === null || current === undefined
        ? undefined
        : BigInt(current.last_event_number);
    const isEvent = notice.type === 'event-notification' || notice.type === 'query-event';
    const highestCarried = carried.reduce<bigint | undefined>(
      (max, n) => (max === undefined || n > max ? n : max),
      undefined,
    );
    const reported = notice.eventsSinceStart === undefined ? undefined : BigInt(notice.eventsSinceStart);
    const horizon = maxOf(
      highestCarried,
      notice.type === 'heartbeat' || notice.type === 'query-status' ? reported : undefined,
    );

    const gaps: { from: bigint; to: bigint }[] = [];
    if (notice.gapDetection && last !== undefined && horizon !== undefined && horizon > last) {
      const present = new Set(carried.map(String));
      let start: bigint | undefined;
      for (let n = last + 1n; n <= horizon; n++) {
        const missing = !present.has(String(n));
        if (missing && start === undefined) start = n;
        if (!missing && start !== undefined) {
          gaps.push({ from: start, to: n - 1n });
          start = undefined;
        }
      }
      if (start !== undefined) gaps.push({ from: start, to: horizon });
    }

    const alert = alertFor(notice);
    const nextLast = isEvent ? maxOf(last, highestCarried) : last;
    const types = [...new Set([...(current?.resource_types ?? []), ...notice.resourceTypes])].sort();
    const values = {
      topic: notice.topic ?? current?.topic ?? null,
      status: notice.status ?? current?.status ?? null,
      last_event_number: nextLast === undefined ? null : nextLast.toString(),
      last_heartbeat_at: notice.type === 'heartbeat' ? now : (current?.last_heartbeat_at ?? null),
      last_notification_at: now,
      last_event_at: isEvent ? now : (current?.last_event_at ?? null),
      alert: alert ?? (notice.status === 'active' ? null : (current?.alert ?? null)),
      alert_at: alert ? now : notice.status === 'active' ? null : (current?.alert_at ?? null),
      resource_types: types,
      updated_at: now,
    };
    if (current) {
      await trx
        .updateTable('subscriptions')
        .set({ ...values, notifications: sql`notifications + 1` })
        .where('source_id', '=', notice.sourceId)
        .where('reference', '=', notice.reference)
        .execute();
    } else {
      await trx
        .insertInto('subscriptions')
        .values({ source_id: notice.sourceId, reference: notice.reference, notifications: 1, ...values })
        .execute();
    }

    const opened: EventGap[] = [];
    for (const gap of gaps) {
      const row = await trx
        .insertInto('event_gaps')
        .values({
          source_id: notice.sourceId,
          subscription: notice.reference,
          from_number: gap.from.toString(),
          to_number: gap.to.toString(),
        })
        .onConflict((oc) =>
          oc.columns(['source_id', 'subscription', 'from_number']).where('status', '=', 'open').doNothing(),
        )
        .returning('id')
        .executeTakeFirst();
      if (row)
        opened.push({
          id: row.id,
          sourceId: notice.sourceId,
          subscription: notice.reference,
          ...gap,
          status: 'open',
          detectedAt: now,
        });
    }
    return opened;
  }

  /**
   * Records a subscription the bridge created on a source: what the source granted, and the SHA-256
   * of the bearer secret it will present (the secret itself is not kept).
   */
  async registerManaged(input: {
    sourceId: string;
    reference: string;
    tokenSha256: Buffer;
    status?: string;
    topic?: string;
    content?: string;
    heartbeatPeriodSeconds?: number;
  }): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const values = {
        status: input.status ?? null,
        topic: input.topic ?? null,
        content: input.content ?? null,
        heartbeat_period_s: input.heartbeatPeriodSeconds ?? null,
        managed: true,
        updated_at: new Date(),
      };
      await trx
        .insertInto('subscriptions')
        .values({ source_id: input.sourceId, reference: input.reference, ...values })
        .onConflict((oc) => oc.columns(['source_id', 'reference']).doUpdateSet(values))
        .execute();
      await trx
        .insertInto('subscription_tokens')
        .values({ source_id: input.sourceId, reference: input.reference, token_sha256: input.tokenSha256 })
        .onConflict((oc) =>
          oc.columns(['source_id', 'reference']).doUpdateSet({ token_sha256: input.tokenSha256 }),
        )
        .execute();
    });
  }

  async countDuplicate(trx: StoreDb, sourceId: string, reference: string): Promise<void> {
    await trx
      .updateTable('subscriptions')
      .set({ duplicates: sql`duplicates + 1` })
      .where('source_id', '=', sourceId)
      .where('reference', '=', reference)
      .execute();
  }

  async setHeartbeatPeriod(sourceId: string, reference: string, seconds: number | null): Promise<void> {
    await this.db
      .insertInto('subscriptions')
      .values({ source_id: sourceId, reference, heartbeat_period_s: seconds })
      .onConflict((oc) => oc.columns(['source_id', 'reference']).doUpdateSet({ heartbeat_period_s: seconds }))
      .execute();
  }

  async raiseAlert(sourceId: string, reference: string, alert: string, status?: string): Promise<void> {
    await this.db
      .updateTable('subscriptions')
      .set({ alert, alert_at: new Date(), ...(status ? { status } : {}) })
      .where('source_id', '=', sourceId)
      .where('reference', '=', reference)
      .execute();
  }

  async find(sourceId: string, reference: string): Promise<SubscriptionView | undefined> {
    return (await this.list({ sourceId, reference }))[0];
  }

  async list(filter: { sourceId?: string; reference?: string } = {}): Promise<readonly SubscriptionView[]> {
    let query = this.db
      .selectFrom('subscriptions as s')
      .selectAll('s')
      .select((eb) =>
        eb
          .selectFrom('event_gaps as g')
          .select((e) => e.fn.countAll<string>().as('n'))
          .whereRef('g.source_id', '=', 's.source_id')
          .whereRef('g.subscription', '=', 's.reference')
          .where('g.status', '=', 'open')
          .as('open_gaps'),
      )
      .orderBy('s.source_id')
      .orderBy('s.reference');
    if (filter.sourceId) query = query.where('s.source_id', '=', filter.sourceId);
    if (filter.reference) query = query.where('s.reference', '=', filter.reference);
    const rows = await query.execute();
    return rows.map((r) => ({
      sourceId: r.source_id,
      reference: r.reference,
      topic: r.topic,
      status: r.status,
      lastEventNumber: r.last_event_number,
      heartbeatPeriodSeconds: r.heartbeat_period_s,
      lastHeartbeatAt: r.last_heartbeat_at,
      lastNotificationAt: r.last_notification_at,
      alert: r.alert,
      alertAt: r.alert_at,
      notifications: Number(r.notifications),
      duplicates: Number(r.duplicates),
      openGaps: Number(r.open_gaps ?? 0),
    }));
  }

  /** Subscriptions with a heartbeat period that have been silent for longer than `factor` periods. */
  async silent(now: Date, factor: number): Promise<readonly SubscriptionView[]> {
    const all = await this.list();
    return all.filter((s) => {
      if (!s.heartbeatPeriodSeconds) return false;
      const lastSeen = s.lastNotificationAt ?? s.lastHeartbeatAt;
      return !lastSeen || now.getTime() - lastSeen.getTime() > s.heartbeatPeriodSeconds * 1000 * factor;
    });
  }

  async touch(sourceId: string, reference: string, status: string | undefined): Promise<void> {
    await this.db
      .updateTable('subscriptions')
      .set({ last_notification_at: new Date(), ...(status ? { status } : {}) })
      .where('source_id', '=', sourceId)
      .where('reference', '=', reference)
      .execute();
  }

  async gap(id: string): Promise<EventGap | undefined> {
    const row = await this.db.selectFrom('event_gaps').selectAll().where('id', '=', id).executeTakeFirst();
    return row
      ? {
          id: row.id,
          sourceId: row.source_id,
          subscription: row.subscription,
          from: BigInt(row.from_number),
          to: BigInt(row.to_number),
          status: row.status,
          detectedAt: row.detected_at,
        }
      : undefined;
  }

  async closeGap(id: string, status: Exclude<EventGapStatus, 'open'>, detail?: string): Promise<void> {
    await this.db
      .updateTable('event_gaps')
      .set({ status, closed_at: new Date(), detail: detail ?? null })
      .where('id', '=', id)
      .where('status', '=', 'open')
      .execute();
  }

  async openGaps(): Promise<readonly EventGap[]> {
    const rows = await this.db
      .selectFrom('event_gaps')
      .selectAll()
      .where('status', '=', 'open')
      .orderBy('id')
      .execute();
    return rows.map((row) => ({
      id: row.id,
      sourceId: row.source_id,
      subscription: row.subscription,
      from: BigInt(row.from_number),
      to: BigInt(row.to_number),
      status: row.status,
      detectedAt: row.detected_at,
    }));
  }

  /**
   * What an empty ping from a classic sender (which names no subscription) should re-query: every
   * resource type seen in the source's subscriptions, plus the type of each managed classic
   * subscription's criteria (`Observation?patient=…` → Observation).
   */
  async resourceTypesForSource(sourceId: string): Promise<readonly string[]> {
    const rows = await this.db
      .selectFrom('subscriptions')
      .select(['resource_types', 'topic', 'managed'])
      .where('source_id', '=', sourceId)
      .execute();
    const types = new Set<string>();
    for (const row of rows) {
      for (const type of row.resource_types) types.add(type);
      const criteriaType = row.managed ? /^([A-Z][A-Za-z]+)(\?|$)/.exec(row.topic ?? '')?.[1] : undefined;
      if (criteriaType) types.add(criteriaType);
    }
    return [...types].sort();
  }

  async resourceTypes(sourceId: string, reference: string): Promise<readonly string[]> {
    const row = await this.db
      .selectFrom('subscriptions')
      .select('resource_types')
      .where('source_id', '=', sourceId)
      .where('reference', '=', reference)
      .executeTakeFirst();
    return row?.resource_types ?? [];
  }
}

function maxOf(a: bigint | undefined, b: bigint | undefined): bigint | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}

function alertFor(notice: SubscriptionNotice): string | undefined {
  if (notice.status === 'error') {
    return `the sender reports status error${notice.errors?.length ? ` (${notice.errors.join(', ')})` : ''}`;
  }
  if (notice.type === 'query-status' && notice.status && notice.status !== 'active') {
    return `query-status answered ${notice.status}`;
  }
  if (notice.status === 'off' || notice.status === 'entered-in-error')
    return `the sender reports status ${notice.status}`;
  return undefined;
}
