/** Every BullMQ queue of FHIR Trail, in one place (bridge produces, worker consumes). */
export const QUEUES = {
  /** One job per accepted notification (inbox row); payload carries ids only. */
  ingest: 'ingest',
  /** Closes a ledger batch: sequences pending leaves, anchors the new tree head. */
  anchor: 'anchor',
  /** Recovery: repairs gaps in a subscription's event numbers, watches silent subscriptions. */
  backfill: 'backfill',
  /** Replays one dead letter through its source's active mapping profile (admin API). */
  replay: 'replay',
  /** Brings the consent registry contract in line with a patient's consents; then checks it at finality. */
  consent: 'consent',
  /** Delivers new resource versions to destinations whose consent check passes (fan-out, then one job per destination). */
  share: 'share',
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

/** Replay one dead letter; the worker reads its input from PostgreSQL (no PHI in Redis). */
export interface ReplayJob {
  readonly deadLetterId: string;
}

/** Job id of a dead letter's replay: asking twice while it is queued collapses into one job. */
export function replayJobId(deadLetterId: string): string {
  return `replay-${deadLetterId}`;
}

/** A stored consent (row id) whose patient's registry pairs must be synced. No PHI: ids only. */
export interface ConsentJob {
  readonly consentRowId: string;
}

/** Job id of a consent sync: one per stored consent version while it is queued. */
export function consentJobId(consentRowId: string, version: number): string {
  return `consent-${consentRowId}-${version}`;
}

/** Fan a stored version out to the destinations, or deliver it to one. Ids only. */
export type ShareJob =
  | { readonly kind: 'fan-out'; readonly resourceVersionId: string }
  | { readonly kind: 'deliver'; readonly resourceVersionId: string; readonly destinationId: string };

/** One fan-out per stored version, one delivery per (version, destination), while queued. */
export function shareJobId(resourceVersionId: string, destinationId?: string): string {
  return destinationId ? `deliver-${resourceVersionId}-${destinationId}` : `share-${resourceVersionId}`;
}
