import {
  PURPOSES_OF_USE,
  SHARING_ACTIONS,
  dataClassBitmap,
  purposeBitmap,
  type ConsentPolicy,
  type ConsentRule,
} from './consent-policy';
import { R4_RESOURCE_TYPES } from './r4-resource-types';

/**
 * What the consent registry holds for one (patient, recipient organisation) pair: an upper bound of
 * what the patient's active consents permit that organisation. Exact decisions (deny exceptions,
 * security labels, practitioners) stay with {@link decide}; the registry is a public, coarser mirror.
 */
export interface RegistryScope {
  /** `Organization/<id>`. */
  readonly recipientOrg: string;
  readonly purposes: bigint;
  readonly dataClasses: bigint;
  /** Unix seconds, inclusive; 0 = unbounded. */
  readonly validFrom: number;
  /** Unix seconds, exclusive; 0 = open-ended. */
  readonly validUntil: number;
}

const ALL_PURPOSES = purposeBitmap(PURPOSES_OF_USE);
const ALL_DATA_CLASSES = dataClassBitmap(R4_RESOURCE_TYPES);

/**
 * The registry grants implied by a patient's policies: one per organisation named as recipient in
 * a permit rule of an active policy, with the union of those rules' purposes and data classes and
 * the hull of their periods (each clipped to its enclosing rules' periods). A permit naming no
 * organisation is not mirrored, so it never satisfies the registry check: a disclosure needs a
 * named recipient. Sorted by organisation.
 */
export function registryScopesOf(policies: readonly ConsentPolicy[]): RegistryScope[] {
  const byOrg = new Map<string, { purposes: bigint; dataClasses: bigint; from: number; until: number }>();
  const visit = (rule: ConsentRule, from: number, until: number): void => {
    const ruleFrom = Math.max(from, rule.validFrom ?? 0);
    const ruleUntil = Math.min(until, rule.validUntil ?? Number.POSITIVE_INFINITY);
    if (ruleUntil <= ruleFrom) return;
    const concernsSharing =
      rule.actions.length === 0 || rule.actions.some((a) => SHARING_ACTIONS.includes(a));
    if (rule.effect === 'permit' && concernsSharing) {
      const purposes = rule.purposes.length === 0 ? ALL_PURPOSES : purposeBitmap(rule.purposes);
      const dataClasses =
        rule.resourceTypes.length === 0 ? ALL_DATA_CLASSES : dataClassBitmap(rule.resourceTypes);
      for (const actor of rule.actors) {
        if (actor.kind !== 'organisation') continue;
        const seen = byOrg.get(actor.reference);
        byOrg.set(actor.reference, {
          purposes: (seen?.purposes ?? 0n) | purposes,
          dataClasses: (seen?.dataClasses ?? 0n) | dataClasses,
          from: Math.min(seen?.from ?? Number.POSITIVE_INFINITY, ruleFrom),
          until: Math.max(seen?.until ?? 0, ruleUntil),
        });
      }
    }
    for (const exception of rule.exceptions) visit(exception, ruleFrom, ruleUntil);
  };
  for (const policy of policies) {
    if (policy.status === 'active') visit(policy.rule, 0, Number.POSITIVE_INFINITY);
  }
  return [...byOrg.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([recipientOrg, s]) => ({
      recipientOrg,
      purposes: s.purposes,
      dataClasses: s.dataClasses,
      validFrom: Math.floor(s.from / 1000),
      validUntil: Number.isFinite(s.until) ? Math.ceil(s.until / 1000) : 0,
    }));
}

/**
 * The registry's `isConsented` evaluated on a mirrored scope (what the bridge checks before each
 * disclosure, from its PostgreSQL mirror of finalised chain state).
 */
export function registryScopeAllows(
  scope: Pick<RegistryScope, 'purposes' | 'dataClasses' | 'validFrom' | 'validUntil'>,
  purposeBit: number,
  dataClassBit: number,
  atSeconds: number,
): boolean {
  return (
    ((scope.purposes >> BigInt(purposeBit)) & 1n) === 1n &&
    ((scope.dataClasses >> BigInt(dataClassBit)) & 1n) === 1n &&
    atSeconds >= scope.validFrom &&
    (scope.validUntil === 0 || atSeconds < scope.validUntil)
  );
}
