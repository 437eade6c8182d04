import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import type { Resource } from '@medplum/fhirtypes';
import type { AppConfig } from '@fhir-trail/config';
import {
  buildDisclosureAuditEvent,
  isPurposeOfUse,
  patientReferenceOf,
  type ConsentDecision,
  type DisclosureOutcome,
  type PurposeOfUse,
} from '@fhir-trail/fhir-mapping';
import { type ShareJob, QUEUES, shareJobId } from '@fhir-trail/jobs';
import {
  APP_CONFIG,
  LEDGER,
  type LedgerConnection,
  STORE,
  checkDisclosureConsent,
  recordDisclosureLeaf,
} from '@fhir-trail/runtime';
import type { Destination, Store, VersionForSharing } from '@fhir-trail/store';
import type { Queue } from 'bullmq';
import { type AccessTokens, smartTokenProvider } from '@fhir-trail/fhir-client';

const DELIVERY_TIMEOUT_MS = 10_000;

/** What one delivery attempt came to. */
export type DeliveryResult =
  | { readonly status: 'decided'; readonly decision: DisclosureOutcome }
  | { readonly status: 'already-decided' | 'not-wanted' };

/** Raised when a delivery failed but the destination's retry policy allows another attempt. */
export class RetryableDeliveryError extends Error {
  override readonly name = 'RetryableDeliveryError';
}

/**
 * Sharing: delivers a stored resource version to every destination that wants its type, each
 * only if the consent check passes **at the moment of that attempt** (so a revocation stops every
 * delivery not yet made): the patient's active policies must permit it (`decide`), and the
 * registry mirror's pair must be confirmed at finality and allow the purpose and type. Every
 * decision — delivered, denied, or failed after the destination's retries — is recorded once per
 * (version, destination) with an AuditEvent (IHE BALP Export) and a `sharing` ledger leaf.
 */
@Injectable()
export class ShareService {
  private readonly logger = new Logger(ShareService.name);
  /** SMART Backend Services token providers by destination id, with the registration they were made from. */
  private readonly smartTokens = new Map<string, { version: string; tokens: AccessTokens }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORE) private readonly store: Store,
    @Inject(LEDGER) private readonly ledger: LedgerConnection,
    @InjectQueue(QUEUES.share) private readonly queue: Queue<ShareJob>,
  ) {}

  /**
   * Enqueues one delivery job per interested destination, with that destination's retry policy, then
   * marks the version's share-outbox row fanned out.
   */
  async fanOut(resourceVersionId: string): Promise<number> {
    const version = await this.store.sharing.findVersion(resourceVersionId);
    if (!version?.content || !version.applied) {
      await this.store.sharing.markFannedOut(resourceVersionId);
      return 0;
    }
    const destinations = (await this.store.sharing.enabledDestinations(version.sourceId)).filter((d) =>
      wants(d, version),
    );
    await this.queue.addBulk(
      destinations.map((d) => ({
        name: 'deliver',
        data: { kind: 'deliver' as const, resourceVersionId, destinationId: d.id },
        opts: {
          jobId: shareJobId(resourceVersionId, d.id),
          attempts: d.maxAttempts,
          backoff: { type: 'fixed', delay: d.backoffMs },
          removeOnComplete: true,
          removeOnFail: true,
        },
      })),
    );
    // Only now: a crash before this line leaves the row pending, and the share relay enqueues it again.
    await this.store.sharing.markFannedOut(resourceVersionId);
    return destinations.length;
  }

  /** One delivery attempt (`attempt` counts from 1). Throws {@link RetryableDeliveryError} to be retried. */
  async deliver(resourceVersionId: string, destinationId: string, attempt: number): Promise<DeliveryResult> {
    if (await this.store.sharing.findDecision(resourceVersionId, destinationId))
      return { status: 'already-decided' };
    const [version, destination] = await Promise.all([
      this.store.sharing.findVersion(resourceVersionId),
      this.store.sharing.findDestination(destinationId),
    ]);
    if (!version?.content || !destination || !wants(destination, version)) return { status: 'not-wanted' };
    const content = version.content;
    const patientRef = patientReferenceOf(content as unknown as Resource);
    const purpose: PurposeOfUse = isPurposeOfUse(destination.purpose) ? destination.purpose : 'TREAT';

    const decision = await checkDisclosureConsent(this.store, this.ledger, {
      sourceId: version.sourceId,
      patientRef,
      recipientOrg: destination.organisation,
      purpose,
      resourceType: version.resourceType,
      content,
    });
    if (decision.decision === 'deny') {
      await this.record(
        version,
        destination,
        patientRef,
        purpose,
        'denied',
        decision.reason,
        attempt,
        decision,
      );
      return { status: 'decided', decision: 'denied' };
    }
    const failure = await this.send(version, destination);
    if (failure === undefined) {
      await this.record(
        version,
        destination,
        patientRef,
        purpose,
        'delivered',
        decision.reason,
        attempt,
        decision,
      );
      return { status: 'decided', decision: 'delivered' };
    }
    if (attempt < destination.maxAttempts) throw new RetryableDeliveryError(failure);
    await this.record(version, destination, patientRef, purpose, 'failed', failure, attempt, decision);
    this.logger.warn({ msg: 'delivery failed after its retries', destinationId, attempts: attempt });
    return { status: 'decided', decision: 'failed' };
  }

  /** PUTs the version (or POSTs a one-entry transaction); undefined on success, else a reason without PHI. */
  private async send(version: VersionForSharing, destination: Destination): Promise<string | undefined> {
    const base = destination.fhirBaseUrl.replace(/\/+$/, '');
    const resource = { ...version.content, id: version.resourceId };
    const transaction = destination.deliveryMode === 'transaction';
    const url = transaction ? base : `${base}/${version.resourceType}/${version.resourceId}`;
    const body = transaction
      ? {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              fullUrl: `${base}/${version.resourceType}/${version.resourceId}`,
              resource,
              request: { method: 'PUT', url: `${version.resourceType}/${version.resourceId}` },
            },
          ],
        }
      : resource;
    let token: string | undefined;
    let tokens: AccessTokens | undefined;
    try {
      tokens = this.tokensFor(destination);
      token = tokens ? await tokens.accessToken() : destination.bearerToken;
    } catch (error) {
      // SourceFhirError messages name the failing step and status only (never a token or key).
      return `no access token for the destination (${error instanceof Error ? error.message : 'error'})`;
    }
    try {
      const response = await fetch(url, {
        method: transaction ? 'POST' : 'PUT',
        headers: {
          'content-type': 'application/fhir+json',
          accept: 'application/fhir+json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
      });
      await response.body?.cancel();
      // A refused token is dropped, so the next attempt asks for a fresh one.
      if (response.status === 401 && tokens && token) tokens.invalidate(token);
      return response.ok ? undefined : `the destination answered HTTP ${response.status}`;
    } catch (error) {
      return `the destination could not be reached (${error instanceof Error ? error.name : 'error'})`;
    }
  }

  /** The destination's SMART token provider (kept while its registration is unchanged), or undefined for bearer/none. */
  private tokensFor(destination: Destination): AccessTokens | undefined {
    const smart = destination.smartBackend;
    if (!smart?.privateKey) return undefined;
    const version = `${destination.fhirBaseUrl}|${destination.updatedAt.getTime()}`;
    const cached = this.smartTokens.get(destination.id);
    if (cached?.version === version) return cached.tokens;
    const tokens = smartTokenProvider(
      {
        type: 'smart-backend',
        clientId: smart.clientId,
        scope: smart.scope,
        ...(smart.tokenUrl ? { tokenUrl: smart.tokenUrl } : {}),
        privateKey: smart.privateKey,
        keyId: smart.keyId,
        algorithm: smart.algorithm,
      },
      destination.fhirBaseUrl,
      { timeoutMs: DELIVERY_TIMEOUT_MS },
    );
    this.smartTokens.set(destination.id, { version, tokens });
    return tokens;
  }

  private async record(
    version: VersionForSharing,
    destination: Destination,
    patientRef: string | undefined,
    purpose: PurposeOfUse,
    outcome: DisclosureOutcome,
    reason: string,
    attempts: number,
    decision: ConsentDecision,
  ): Promise<void> {
    const eventId = randomUUID();
    const recordedAt = new Date();
    const recorded = recordedAt.toISOString();
    const auditEvent = buildDisclosureAuditEvent({
      id: eventId,
      recorded,
      outcome,
      reason,
      purpose,
      resource: `${version.resourceType}/${version.resourceId}/_history/${version.version}`,
      ...(patientRef ? { patient: patientRef } : {}),
      ...(decision.consentRef ? { consent: decision.consentRef } : {}),
      bridge: { system: 'urn:fhir-trail:bridge', value: this.config.bridgeId },
      recipient: { organisation: destination.organisation, endpoint: destination.fhirBaseUrl },
    });
    await this.store.transaction(async (trx) => {
      const inserted = await this.store.sharing.insertDecision(trx, {
        resourceVersionId: version.id,
        destinationId: destination.id,
        decision: outcome,
        reason,
        ...(decision.consentRef ? { consentRef: decision.consentRef } : {}),
        attempts,
        eventId,
        auditEvent: auditEvent as unknown as Record<string, unknown>,
      });
      if (!inserted) return;
      if (outcome === 'failed') {
        // Nothing is lost: the failed delivery waits as a dead letter (the version stays stored).
        await this.store.deadLetters.insert(
          {
            sourceId: version.sourceId,
            reasonCode: 'delivery-failed',
            outcome: {
              resourceType: 'OperationOutcome',
              issue: [
                {
                  severity: 'error',
                  code: 'transient',
                  details: { text: `${reason}; ${attempts} attempts` },
                  diagnostics: `resource version ${version.id} to destination ${destination.id}`,
                },
              ],
            },
          },
          trx,
        );
      }
      await recordDisclosureLeaf(this.store, trx, {
        kind: 'sharing',
        eventId,
        recordedAt,
        version,
        patientRef,
        actor: `bridge:${this.config.bridgeId}`,
        destinationId: destination.id,
        purpose,
        consentRef: decision.consentRef,
        decision: outcome,
      });
    });
  }
}

/**
 * Whether a destination wants a version: from its source or one of its further `sources`, a type it asked for (none = all) and, when it names
 * profiles, a `meta.profile` naming one of them (compared without a `|version` suffix).
 */
export function wants(destination: Destination, version: VersionForSharing): boolean {
  if (version.sourceId !== destination.sourceId && !destination.sources.includes(version.sourceId))
    return false;
  if (destination.resourceTypes.length > 0 && !destination.resourceTypes.includes(version.resourceType)) {
    return false;
  }
  if (destination.profiles.length === 0) return true;
  const meta = version.content?.['meta'] as { profile?: unknown } | undefined;
  const declared = Array.isArray(meta?.profile)
    ? meta.profile.filter((p): p is string => typeof p === 'string')
    : [];
  const canonical = (url: string) => url.split('|')[0];
  const wanted = new Set(destination.profiles.map(canonical));
  return declared.some((p) => wanted.has(canonical(p)));
}
