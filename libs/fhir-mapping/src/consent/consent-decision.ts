import {
  PURPOSE_PARENT,
  SHARING_ACTIONS,
  type ConsentPolicy,
  type ConsentRule,
  type PurposeOfUse,
  type SecurityLabelKey,
} from './consent-policy';

/** One disclosure to decide: a delivery to, or a read by, a recipient. */
export interface ConsentRequest {
  /** `Patient/<id>` the data is about. */
  readonly patient: string;
  /** `Organization/<id>` that receives the data. */
  readonly recipientOrg: string;
  /** `Practitioner/<id>` when a known individual receives it (reads); absent for deliveries to an organisation. */
  readonly recipientPractitioner?: string;
  readonly purpose: PurposeOfUse;
  /** The R4 type of the resource disclosed. */
  readonly resourceType: string;
  /** The resource's `meta.security` labels as `system|code`. */
  readonly securityLabels: readonly SecurityLabelKey[];
  /** When the disclosure happens (epoch ms or a Date). */
  readonly at: number | Date;
}

export type ConsentDecisionReason = 'permitted-by-consent' | 'denied-by-consent' | 'no-applicable-consent';

export interface ConsentDecision {
  readonly decision: 'permit' | 'deny';
  readonly reason: ConsentDecisionReason;
  /** The consent that decided; absent when none applied (deny by default). */
  readonly consentRef?: string;
  /** FHIRPath of the rule that decided, e.g. `Consent.provision.provision[0]`. */
  readonly rulePath?: string;
}

type Match = 'yes' | 'no' | 'unknown';

/**
 * Decides one disclosure against a patient's consent policies.
 *
 * - Deny by default: with no active consent of this patient whose rules apply, the answer is deny.
 * - Within a consent, a rule applies when all its conditions hold; its matching exceptions (nested
 *   rules) override it, recursively.
 * - Across consents and sibling exceptions, deny overrides permit.
 * - A condition that cannot be checked (a rule naming a practitioner when the request names none)
 *   makes a deny rule apply and a permit rule not apply: doubt never discloses.
 */
export function decide(policies: readonly ConsentPolicy[], request: ConsentRequest): ConsentDecision {
  const at = typeof request.at === 'number' ? request.at : request.at.getTime();
  let permit: ConsentDecision | undefined;
  for (const policy of policies) {
    if (policy.status !== 'active' || policy.patient !== request.patient) continue;
    const outcome = evaluate(policy.rule, request, at);
    if (outcome === undefined) continue;
    if (outcome.effect === 'deny') {
      return {
        decision: 'deny',
        reason: 'denied-by-consent',
        consentRef: policy.consentRef,
        rulePath: outcome.path,
      };
    }
    permit ??= {
      decision: 'permit',
      reason: 'permitted-by-consent',
      consentRef: policy.consentRef,
      rulePath: outcome.path,
    };
  }
  return permit ?? { decision: 'deny', reason: 'no-applicable-consent' };
}

interface RuleOutcome {
  readonly effect: 'permit' | 'deny';
  readonly path: string;
}

function evaluate(rule: ConsentRule, request: ConsentRequest, at: number): RuleOutcome | undefined {
  const match = matchRule(rule, request, at);
  const applies = match === 'yes' || (match === 'unknown' && rule.effect === 'deny');
  if (!applies) return undefined;
  let permit: RuleOutcome | undefined;
  for (const exception of rule.exceptions) {
    const outcome = evaluate(exception, request, at);
    if (outcome?.effect === 'deny') return outcome;
    permit ??= outcome;
  }
  return permit ?? { effect: rule.effect, path: rule.path };
}

function matchRule(rule: ConsentRule, request: ConsentRequest, at: number): Match {
  if (rule.validFrom !== undefined && at < rule.validFrom) return 'no';
  if (rule.validUntil !== undefined && at >= rule.validUntil) return 'no';
  if (rule.actions.length > 0 && !rule.actions.some((a) => SHARING_ACTIONS.includes(a))) return 'no';
  if (rule.purposes.length > 0) {
    const parent = PURPOSE_PARENT[request.purpose];
    if (!rule.purposes.some((p) => p === request.purpose || p === parent)) return 'no';
  }
  if (rule.resourceTypes.length > 0 && !rule.resourceTypes.includes(request.resourceType)) return 'no';
  if (
    rule.securityLabels.length > 0 &&
    !rule.securityLabels.some((l) => request.securityLabels.includes(l))
  ) {
    return 'no';
  }
  return matchActors(rule, request);
}

function matchActors(rule: ConsentRule, request: ConsentRequest): Match {
  if (rule.actors.length === 0) return 'yes';
  let unknown = false;
  for (const actor of rule.actors) {
    if (actor.kind === 'organisation') {
      if (actor.reference === request.recipientOrg) return 'yes';
    } else if (request.recipientPractitioner === undefined) {
      unknown = true;
    } else if (actor.reference === request.recipientPractitioner) {
      return 'yes';
    }
  }
  return unknown ? 'unknown' : 'no';
}
