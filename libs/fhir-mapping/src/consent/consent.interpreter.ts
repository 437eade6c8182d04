import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

import { isRecord, type JsonRecord } from '../json-value';
import { operationOutcome, outcomeIssue } from '../operation-outcome';
import { isFhirId, parseResourceReference } from '../resource-reference';
import {
  CONSENT_ACTION_SYSTEM,
  CONSENT_ACTIONS,
  CONSENT_STATUSES,
  PURPOSE_OF_USE_SYSTEM,
  PURPOSES_OF_USE,
  isPurposeOfUse,
  type ConsentAction,
  type ConsentActor,
  type ConsentPolicy,
  type ConsentRule,
  type ConsentStatus,
  type PurposeOfUse,
  type SecurityLabelKey,
} from './consent-policy';
import { R4_RESOURCE_TYPES } from './r4-resource-types';

export const CONSENT_SCOPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/consentscope';
export const ACT_CODE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
export const PARTICIPATION_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
export const RESOURCE_TYPE_CLASS_SYSTEM = 'http://hl7.org/fhir/resource-types';

/** Actor roles read as "the party that receives the data": primary and secondary information recipient. */
const RECIPIENT_ROLES: ReadonlySet<string> = new Set(['PRCP', 'IRCP']);

/** Elements of Consent that carry no access rule and are kept only as metadata (not interpreted). */
const METADATA_ELEMENTS: ReadonlySet<string> = new Set([
  'resourceType',
  'id',
  'meta',
  'text',
  'language',
  'contained',
  'extension',
  'identifier',
  'status',
  'scope',
  'category',
  'patient',
  'dateTime',
  'performer',
  'organization',
  'sourceAttachment',
  'sourceReference',
  'policy',
  'policyRule',
  'verification',
  'provision',
]);

const SUPPORTED_PROVISION_ELEMENTS: ReadonlySet<string> = new Set([
  'id',
  'extension',
  'type',
  'period',
  'actor',
  'action',
  'securityLabel',
  'purpose',
  'class',
  'provision',
]);

/** Why a provision element is refused, keyed by element name. */
const UNSUPPORTED_PROVISION_ELEMENTS: Readonly<Record<string, string>> = {
  code: 'Rules by clinical code (provision.code) are not supported; use provision.class with resource types',
  data: 'Rules about specific resource instances (provision.data) are not supported',
  dataPeriod: 'Rules by the time period of the data (provision.dataPeriod) are not supported',
  modifierExtension: 'Modifier extensions change the meaning of a rule and are not supported',
};

/** The result of reading a Consent: a policy, or the reasons it cannot be used. */
export type ConsentInterpretation =
  | { readonly ok: true; readonly policy: ConsentPolicy }
  | {
      readonly ok: false;
      /** 400 when the resource is malformed, 422 when it is valid but uses what the bridge does not support. */
      readonly status: 400 | 422;
      readonly outcome: OperationOutcome;
    };

export interface InterpretConsentOptions {
  /** Used as `consentRef` when the resource has no id (e.g. a create before an id is assigned). */
  readonly consentRef?: string;
}

/**
 * Reads a FHIR R4 Consent into a {@link ConsentPolicy}, or refuses it with an OperationOutcome
 * whose issues name the FHIRPath of every element it cannot read.
 *
 * Supported (see the README "Consent" section): scope `patient-privacy`; `status`; a root rule
 * whose effect is its own `type`, else `policyRule` v3-ActCode OPTIN (permit) / OPTOUT (deny);
 * nested provisions that each reverse their parent's effect; conditions `actor` (role PRCP/IRCP,
 * reference to an Organization or Practitioner), `purpose` (v3 PurposeOfUse), `class` (R4
 * resource types), `securityLabel`, `action` (consentaction), `period`. Refused: `code`, `data`,
 * `dataPeriod`, other actor roles, other class systems, modifier extensions, `implicitRules`.
 * Narrative text is never read: the coded elements alone decide.
 */
export function interpretConsent(
  resource: unknown,
  options: InterpretConsentOptions = {},
): ConsentInterpretation {
  const issues: OperationOutcomeIssue[] = [];
  let malformed = false;
  const invalid = (expression: string, text: string, code: MalformedCode = 'invalid'): void => {
    malformed = true;
    issues.push(outcomeIssue({ code, text, expression }));
  };
  const unsupported = (expression: string, text: string): void => {
    issues.push(outcomeIssue({ code: 'not-supported', text, expression }));
  };

  if (!isRecord(resource) || resource['resourceType'] !== 'Consent') {
    invalid('Consent', 'Expected a FHIR R4 Consent resource', 'structure');
    return refusal(issues, true);
  }

  for (const key of Object.keys(resource)) {
    if (key === 'implicitRules' || key === 'modifierExtension') {
      unsupported(`Consent.${key}`, `Consent.${key} changes the meaning of the consent and is not supported`);
    } else if (!METADATA_ELEMENTS.has(key)) {
      invalid(`Consent.${key}`, `${key} is not an element of an R4 Consent`);
    }
  }

  const id = resource['id'];
  if (id !== undefined && !isFhirId(id)) invalid('Consent.id', 'Must be a FHIR id');
  const consentRef = typeof id === 'string' && isFhirId(id) ? `Consent/${id}` : options.consentRef;
  if (consentRef === undefined) {
    invalid('Consent.id', 'A consent needs an id (or the caller must assign a reference)', 'required');
  }

  const status = resource['status'];
  if (typeof status !== 'string' || !(CONSENT_STATUSES as readonly string[]).includes(status)) {
    invalid(
      'Consent.status',
      `Must be one of ${CONSENT_STATUSES.join(', ')}`,
      status === undefined ? 'required' : 'value',
    );
  }

  const scope = resource['scope'];
  if (!isRecord(scope)) {
    invalid('Consent.scope', 'A consent needs a scope', 'required');
  } else if (!hasCoding(scope, CONSENT_SCOPE_SYSTEM, 'patient-privacy')) {
    unsupported('Consent.scope', 'Only privacy consents (consentscope patient-privacy) are supported');
  }

  const patient = patientReference(resource['patient']);
  if (patient === undefined) {
    invalid(
      'Consent.patient',
      'A privacy consent needs a literal reference to its Patient (Patient/<id>)',
      'required',
    );
  }

  const base = baseEffect(resource['policyRule']);
  const provision = resource['provision'];
  let rule: ConsentRule | undefined;
  if (provision === undefined) {
    if (base === undefined) {
      invalid(
        'Consent.provision',
        'A consent needs a provision or a policyRule of OPTIN or OPTOUT',
        'required',
      );
    } else {
      rule = emptyRule(base, 'Consent');
    }
  } else if (!isRecord(provision)) {
    invalid('Consent.provision', 'Must be an object');
  } else {
    const rootType = provisionType(provision['type']);
    if (rootType === 'invalid') invalid('Consent.provision.type', 'Must be permit or deny', 'value');
    const effect = rootType === 'invalid' ? undefined : (rootType ?? base);
    if (effect === undefined && rootType !== 'invalid') {
      unsupported(
        'Consent.provision.type',
        'The root rule needs a type, or the consent a policyRule of v3-ActCode OPTIN or OPTOUT to give it one',
      );
    }
    rule = readRule(provision, 'Consent.provision', effect ?? 'deny', { invalid, unsupported });
  }

  if (issues.length > 0 || rule === undefined || patient === undefined || consentRef === undefined) {
    return refusal(issues, malformed);
  }
  return { ok: true, policy: { consentRef, patient, status: status as ConsentStatus, rule } };
}

type MalformedCode = 'invalid' | 'required' | 'value' | 'structure';

interface IssueSink {
  invalid(expression: string, text: string, code?: MalformedCode): void;
  unsupported(expression: string, text: string): void;
}

function readRule(
  provision: JsonRecord,
  path: string,
  effect: 'permit' | 'deny',
  sink: IssueSink,
): ConsentRule {
  for (const key of Object.keys(provision)) {
    const reason = UNSUPPORTED_PROVISION_ELEMENTS[key];
    if (reason !== undefined) sink.unsupported(`${path}.${key}`, reason);
    else if (!SUPPORTED_PROVISION_ELEMENTS.has(key))
      sink.invalid(`${path}.${key}`, `${key} is not an element of Consent.provision`);
  }
  const actors = readList(provision, 'actor', path, sink, (actor, at) => readActor(actor, at, sink));
  const purposes = readList(provision, 'purpose', path, sink, (coding, at) => readPurpose(coding, at, sink));
  const actions = readList(provision, 'action', path, sink, (concept, at) => readAction(concept, at, sink));
  const resourceTypes = readList(provision, 'class', path, sink, (coding, at) => readClass(coding, at, sink));
  const securityLabels = readList(provision, 'securityLabel', path, sink, (coding, at) =>
    readLabel(coding, at, sink),
  );
  const period = readPeriod(provision['period'], `${path}.period`, sink);

  const exceptions: ConsentRule[] = [];
  const nested = readList(provision, 'provision', path, sink, (child) =>
    isRecord(child) ? child : undefined,
  );
  nested.forEach((child, index) => {
    const at = `${path}.provision[${index}]`;
    const type = provisionType(child['type']);
    if (type === undefined) {
      sink.unsupported(
        `${at}.type`,
        'A nested rule without a type (permit or deny) cannot be read without guessing',
      );
    } else if (type === 'invalid') {
      sink.invalid(`${at}.type`, 'Must be permit or deny', 'value');
    } else if (type === effect) {
      sink.unsupported(
        `${at}.type`,
        `A nested rule is an exception and must reverse its parent rule (${effect}); a ${type} inside a ${effect} cannot be read without guessing`,
      );
    }
    exceptions.push(readRule(child, at, type === 'permit' || type === 'deny' ? type : effect, sink));
  });

  return {
    effect,
    path,
    actors,
    purposes,
    actions,
    resourceTypes,
    securityLabels,
    ...period,
    exceptions,
  };
}

function readList<T>(
  provision: JsonRecord,
  key: string,
  path: string,
  sink: IssueSink,
  read: (item: unknown, at: string) => T | undefined,
): T[] {
  const value = provision[key];
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    sink.invalid(`${path}.${key}`, 'Must be an array');
    return [];
  }
  const out: T[] = [];
  (value as unknown[]).forEach((item, index) => {
    const at = `${path}.${key}[${index}]`;
    const read1 = read(item, at);
    if (read1 === undefined) {
      if (!isRecord(item)) sink.invalid(at, 'Must be an object');
    } else if (!out.includes(read1)) {
      out.push(read1);
    }
  });
  return out;
}

function readActor(actor: unknown, at: string, sink: IssueSink): ConsentActor | undefined {
  if (!isRecord(actor)) return undefined;
  const role = isRecord(actor['role']) ? codings(actor['role']) : [];
  const recipient = role.some((c) => c.system === PARTICIPATION_TYPE_SYSTEM && RECIPIENT_ROLES.has(c.code));
  if (!recipient) {
    sink.unsupported(
      `${at}.role`,
      'Only recipient actors are supported (v3-ParticipationType PRCP or IRCP); custodian, author and other roles are not',
    );
  }
  const reference = isRecord(actor['reference']) ? actor['reference']['reference'] : undefined;
  const address = typeof reference === 'string' ? parseResourceReference(reference) : undefined;
  if (address === undefined || address.baseUrl !== undefined || address.versionId !== undefined) {
    sink.invalid(
      `${at}.reference`,
      'An actor needs a literal relative reference (Organization/<id> or Practitioner/<id>)',
      'required',
    );
    return { kind: 'organisation', reference: '' };
  }
  if (address.resourceType !== 'Organization' && address.resourceType !== 'Practitioner') {
    sink.unsupported(`${at}.reference`, 'Only Organization and Practitioner recipients are supported');
  }
  return {
    kind: address.resourceType === 'Practitioner' ? 'practitioner' : 'organisation',
    reference: `${address.resourceType}/${address.id}`,
  };
}

function readPurpose(coding: unknown, at: string, sink: IssueSink): PurposeOfUse | undefined {
  if (!isRecord(coding)) return undefined;
  if (coding['system'] !== PURPOSE_OF_USE_SYSTEM || !isPurposeOfUse(coding['code'])) {
    sink.unsupported(at, `Unsupported purpose of use; supported: v3-ActReason ${PURPOSES_OF_USE.join(', ')}`);
    return 'TREAT';
  }
  return coding['code'];
}

function readAction(concept: unknown, at: string, sink: IssueSink): ConsentAction | undefined {
  if (!isRecord(concept)) return undefined;
  const found = codings(concept).find(
    (c) => c.system === CONSENT_ACTION_SYSTEM && (CONSENT_ACTIONS as readonly string[]).includes(c.code),
  );
  if (found === undefined) {
    sink.unsupported(at, `Unsupported action; supported: consentaction ${CONSENT_ACTIONS.join(', ')}`);
    return 'access';
  }
  return found.code as ConsentAction;
}

function readClass(coding: unknown, at: string, sink: IssueSink): string | undefined {
  if (!isRecord(coding)) return undefined;
  const code = coding['code'];
  if (coding['system'] !== RESOURCE_TYPE_CLASS_SYSTEM) {
    sink.unsupported(at, `Only resource-type classes (${RESOURCE_TYPE_CLASS_SYSTEM}) are supported`);
    return '';
  }
  if (typeof code !== 'string' || !(R4_RESOURCE_TYPES as readonly string[]).includes(code)) {
    sink.invalid(`${at}.code`, 'Must be an R4 resource type', 'value');
    return '';
  }
  return code;
}

function readLabel(coding: unknown, at: string, sink: IssueSink): SecurityLabelKey | undefined {
  if (!isRecord(coding)) return undefined;
  const { system, code } = coding;
  if (typeof system !== 'string' || typeof code !== 'string' || system === '' || code === '') {
    sink.invalid(at, 'A security label needs a system and a code', 'required');
    return '';
  }
  return `${system}|${code}`;
}

function readPeriod(
  value: unknown,
  at: string,
  sink: IssueSink,
): { validFrom?: number; validUntil?: number } {
  if (value === undefined) return {};
  if (!isRecord(value)) {
    sink.invalid(at, 'Must be a Period');
    return {};
  }
  const out: { validFrom?: number; validUntil?: number } = {};
  if (value['start'] !== undefined) {
    const start = dateTimeBounds(value['start']);
    if (start === undefined) sink.invalid(`${at}.start`, 'Must be a FHIR dateTime', 'value');
    else out.validFrom = start.from;
  }
  if (value['end'] !== undefined) {
    const end = dateTimeBounds(value['end']);
    if (end === undefined) sink.invalid(`${at}.end`, 'Must be a FHIR dateTime', 'value');
    else out.validUntil = end.until;
  }
  if (out.validFrom !== undefined && out.validUntil !== undefined && out.validUntil <= out.validFrom) {
    sink.invalid(at, 'The period ends before it starts', 'value');
  }
  return out;
}

const DATE_TIME =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))?)?)?$/;

/**
 * The instants a FHIR dateTime covers: from its first millisecond (inclusive) to the first
 * millisecond after its precision (exclusive) — `2016-01-01` as an end includes that whole day.
 * Dates without a time zone are read as UTC.
 */
export function dateTimeBounds(value: unknown): { from: number; until: number } | undefined {
  if (typeof value !== 'string') return undefined;
  const m = DATE_TIME.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, fraction, zone] = m;
  const year = Number(y);
  if (mo === undefined) return bounds(Date.UTC(year, 0, 1), Date.UTC(year + 1, 0, 1));
  const month = Number(mo) - 1;
  if (month > 11) return undefined;
  if (d === undefined) return bounds(Date.UTC(year, month, 1), Date.UTC(year, month + 1, 1));
  const day = Number(d);
  if (day < 1 || new Date(Date.UTC(year, month, day)).getUTCMonth() !== month) return undefined;
  if (h === undefined) return bounds(Date.UTC(year, month, day), Date.UTC(year, month, day + 1));
  const from = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${fraction ?? ''}${zone}`);
  if (Number.isNaN(from)) return undefined;
  const step = fraction === undefined ? 1000 : 1;
  return bounds(from, from + step);
}

function bounds(from: number, until: number): { from: number; until: number } {
  return { from, until };
}

function emptyRule(effect: 'permit' | 'deny', path: string): ConsentRule {
  return {
    effect,
    path,
    actors: [],
    purposes: [],
    actions: [],
    resourceTypes: [],
    securityLabels: [],
    exceptions: [],
  };
}

function provisionType(value: unknown): 'permit' | 'deny' | 'invalid' | undefined {
  if (value === undefined) return undefined;
  return value === 'permit' || value === 'deny' ? value : 'invalid';
}

function baseEffect(policyRule: unknown): 'permit' | 'deny' | undefined {
  if (!isRecord(policyRule)) return undefined;
  if (hasCoding(policyRule, ACT_CODE_SYSTEM, 'OPTIN')) return 'permit';
  if (hasCoding(policyRule, ACT_CODE_SYSTEM, 'OPTOUT')) return 'deny';
  return undefined;
}

function patientReference(value: unknown): string | undefined {
  if (!isRecord(value) || typeof value['reference'] !== 'string') return undefined;
  const address = parseResourceReference(value['reference']);
  if (address?.resourceType !== 'Patient' || address.baseUrl !== undefined) return undefined;
  return `Patient/${address.id}`;
}

interface PlainCoding {
  readonly system: string;
  readonly code: string;
}

function codings(concept: JsonRecord): PlainCoding[] {
  const list = concept['coding'];
  if (!Array.isArray(list)) return [];
  return (list as unknown[]).flatMap((c) =>
    isRecord(c) && typeof c['system'] === 'string' && typeof c['code'] === 'string'
      ? [{ system: c['system'], code: c['code'] }]
      : [],
  );
}

function hasCoding(concept: JsonRecord, system: string, code: string): boolean {
  return codings(concept).some((c) => c.system === system && c.code === code);
}

function refusal(issues: OperationOutcomeIssue[], malformed: boolean): ConsentInterpretation {
  return { ok: false, status: malformed ? 400 : 422, outcome: operationOutcome(issues) };
}
