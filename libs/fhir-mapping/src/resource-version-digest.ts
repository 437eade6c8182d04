import { keyedDigest } from './content-digest';

/**
 * A resource version as the bridge stores it: the resource and every fact recorded with it.
 * Timestamps are ISO 8601 UTC with milliseconds (`Date#toISOString`), absent facts are null.
 */
export interface StoredResourceVersionFacts {
  readonly source: string;
  readonly resourceType: string;
  readonly resourceId: string;
  /** The bridge's version number (1, 2, ...). */
  readonly version: number;
  readonly sourceVersionId: string | null;
  readonly sourceLastUpdated: string | null;
  readonly interaction: string;
  readonly recorded: string;
  /** The inbox notification it came in, and its position there. */
  readonly inboxId: string;
  readonly entryIndex: number;
  /** False when a late, older version was recorded but not applied. */
  readonly applied: boolean;
  /** The resource; null for a delete tombstone. */
  readonly resource: Readonly<Record<string, unknown>> | null;
}

/**
 * The keyed digest of a stored resource version (the ledger's `resourceDigest`):
 * `HMAC-SHA-256(K_patient, RFC 8785 JSON of the resource and its stored facts)`. Covering every
 * stored fact, not only the resource, means no column of the version can change unnoticed.
 */
export function resourceVersionDigest(key: Uint8Array, facts: StoredResourceVersionFacts): string {
  return keyedDigest(key, {
    source: facts.source,
    resourceType: facts.resourceType,
    resourceId: facts.resourceId,
    version: facts.version,
    sourceVersionId: facts.sourceVersionId,
    sourceLastUpdated: facts.sourceLastUpdated,
    interaction: facts.interaction,
    recorded: facts.recorded,
    inboxId: facts.inboxId,
    entryIndex: facts.entryIndex,
    applied: facts.applied,
    resource: facts.resource,
  });
}
