import { R4_RESOURCE_TYPES } from './r4-resource-types';

/** `Consent.status` (R4 consent-state-codes). Only `active` consents take part in decisions. */
export const CONSENT_STATUSES = [
  'draft',
  'proposed',
  'active',
  'rejected',
  'inactive',
  'entered-in-error',
] as const;
export type ConsentStatus = (typeof CONSENT_STATUSES)[number];

/** http://terminology.hl7.org/CodeSystem/v3-ActReason — where the v3 PurposeOfUse codes live. */
export const PURPOSE_OF_USE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';

/**
 * The v3 PurposeOfUse codes the bridge understands, in bit order: a code's position is its bit in a
 * consent registry purpose bitmap ({@link purposeBitmap}); append only, never reorder.
 */
export const PURPOSES_OF_USE = [
  'TREAT',
  'ETREAT',
  'HRESCH',
  'CLINTRCH',
  'HPAYMT',
  'HOPERAT',
  'PUBHLTH',
  'PATRQT',
  'HMARKT',
] as const;
export type PurposeOfUse = (typeof PURPOSES_OF_USE)[number];

/**
 * Specialisations in the v3 PurposeOfUse hierarchy: a rule naming the parent also covers a request
 * made for the child (a treatment consent covers emergency treatment), never the other way round.
 */
export const PURPOSE_PARENT: Readonly<Partial<Record<PurposeOfUse, PurposeOfUse>>> = {
  ETREAT: 'TREAT',
  CLINTRCH: 'HRESCH',
};

/** http://terminology.hl7.org/CodeSystem/consentaction. */
export const CONSENT_ACTION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/consentaction';
export const CONSENT_ACTIONS = ['collect', 'access', 'use', 'disclose', 'correct'] as const;
export type ConsentAction = (typeof CONSENT_ACTIONS)[number];
/** The actions that mean "the recipient gets the data": a delivery or a read by the recipient. */
export const SHARING_ACTIONS: readonly ConsentAction[] = ['access', 'disclose'];

/** Who a rule is about: a recipient organisation or practitioner, by literal reference. */
export interface ConsentActor {
  readonly kind: 'organisation' | 'practitioner';
  /** `Organization/<id>` or `Practitioner/<id>`. */
  readonly reference: string;
}

/** A security label as `system|code`. */
export type SecurityLabelKey = string;

/** One rule of a consent: its effect, its conditions (empty list = any) and its exceptions. */
export interface ConsentRule {
  readonly effect: 'permit' | 'deny';
  /** FHIRPath of the provision, e.g. `Consent.provision.provision[1]`. */
  readonly path: string;
  readonly actors: readonly ConsentActor[];
  readonly purposes: readonly PurposeOfUse[];
  /** Empty: every action; otherwise the rule only concerns sharing if it names access or disclose. */
  readonly actions: readonly ConsentAction[];
  readonly resourceTypes: readonly string[];
  readonly securityLabels: readonly SecurityLabelKey[];
  /** Epoch milliseconds, inclusive; absent = unbounded. */
  readonly validFrom?: number;
  /** Epoch milliseconds, exclusive; absent = unbounded. */
  readonly validUntil?: number;
  /** Nested provisions: each reverses this rule's effect where its own conditions also hold. */
  readonly exceptions: readonly ConsentRule[];
}

/** A FHIR R4 Consent read into what a decision needs. Holds references, never display text. */
export interface ConsentPolicy {
  /** `Consent/<id>` (or the caller's reference when the resource has no id yet). */
  readonly consentRef: string;
  /** `Patient/<id>`. */
  readonly patient: string;
  readonly status: ConsentStatus;
  /** The root provision with its effect resolved (its own `type`, else from `policyRule`). */
  readonly rule: ConsentRule;
}

/** Bit `i` set for each purpose at position `i` of {@link PURPOSES_OF_USE}. */
export function purposeBitmap(purposes: readonly PurposeOfUse[]): bigint {
  return purposes.reduce((bits, purpose) => bits | (1n << BigInt(PURPOSES_OF_USE.indexOf(purpose))), 0n);
}

/**
 * Bit `i` set for each resource type at position `i` of {@link R4_RESOURCE_TYPES}. Throws for a
 * name that is not an R4 resource type (the interpreter never produces one).
 */
export function dataClassBitmap(resourceTypes: readonly string[]): bigint {
  return resourceTypes.reduce((bits, type) => bits | (1n << BigInt(dataClassIndex(type))), 0n);
}

/** The bit of one R4 resource type in a data-class bitmap. */
export function dataClassIndex(resourceType: string): number {
  const index = (R4_RESOURCE_TYPES as readonly string[]).indexOf(resourceType);
  if (index < 0) throw new RangeError('Not an R4 resource type');
  return index;
}

/** The bit of one purpose in a purpose bitmap. */
export function purposeIndex(purpose: PurposeOfUse): number {
  return PURPOSES_OF_USE.indexOf(purpose);
}

export function isPurposeOfUse(value: unknown): value is PurposeOfUse {
  return typeof value === 'string' && (PURPOSES_OF_USE as readonly string[]).includes(value);
}
