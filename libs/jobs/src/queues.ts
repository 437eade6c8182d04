/** Every BullMQ queue of FHIR Trail, in one place (bridge produces, worker consumes). */
export const QUEUES = {
  /** One job per accepted notification (inbox row); payload carries ids only. */
  ingest: 'ingest',
  /** Closes a ledger batch: sequences pending leaves, anchors the new tree head. */
  anchor: 'anchor',
  /** Recovery: repairs gaps in a subscription's event numbers, watches silent subscriptions. */
  backfill: 'backfill',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

/** An accepted notification waiting in the inbox. No PHI: the worker reads the body from PostgreSQL. */
export interface IngestJob {
  readonly inboxId: string;
}

/** Repair one gap in a subscription's event numbers, or run the periodic sweep. */
export type BackfillJob = { readonly kind: 'gap'; readonly gapId: string } | { readonly kind: 'sweep' };

/** Job id of a gap repair: one per gap while it is queued. */
export function gapJobId(gapId: string): string {
  return `gap-${gapId}`;
}

/** Scheduler id of the periodic recovery sweep. */
export const BACKFILL_SWEEP_SCHEDULER_ID = 'backfill-sweep';

/** Why an anchor run was asked for. */
export interface AnchorJob {
  readonly trigger: 'interval' | 'size';
}

/**
 * Deterministic job id for an inbox row: re-enqueueing the same row (relay after a Redis flush,
 * a retry) collapses into one job while it is still queued. BullMQ ids must not contain ':'.
 */
export function ingestJobId(inboxId: string): string {
  return `inbox-${inboxId}`;
}

/** Scheduler id of the periodic anchor run (one per deployment). */
export const ANCHOR_SCHEDULER_ID = 'anchor-interval';
/** Job id of a size-triggered anchor run; duplicates collapse while one is queued. */
export const ANCHOR_SIZE_JOB_ID = 'anchor-size';
