import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

import { isRecord, type JsonRecord } from '../json-value';
import { outcomeIssue } from '../operation-outcome';
import type { SourceFhirVersion } from './mapping-profile.types';
import { isKnownCodeSystem } from './terminology';

/*
 * DSTU2 (1.0.2) and STU3 (3.0.x) -> R4 (4.0.1) for the resources EHRs emit most. Each converter
 * follows the R4 "differences from STU3" tables and the DSTU2->STU3 maps of the FHIR spec, for
 * the elements those resources actually carry; what R4 has no place for is dropped with an
 * information issue (never silently). Contained resources and Bundle entries are converted too.
 */

type Converter = (resource: JsonRecord, at: ConversionSite) => JsonRecord;

/** Where a conversion runs: the version, the resource's path, and the issues list. */
interface ConversionSite {
  readonly version: 'DSTU2' | 'STU3';
  readonly path: string;
  readonly issues: OperationOutcomeIssue[];
}

// ---------------------------------------------------------------------------------------------
// Detection

/** Elements (or element shapes) only DSTU2 has, per resource type. */
const DSTU2_MARKERS: Readonly<Record<string, (resource: JsonRecord) => boolean>> = {
  Patient: (r) => 'careProvider' in r || hasArrayFamily(r),
  Practitioner: (r) => isRecord(r.name) || 'practitionerRole' in r,
  Organization: (r) => isRecord(r.type),
  Observation: (r) => 'comments' in r || isRecord(r.category),
  Condition: (r) => 'patient' in r || 'dateRecorded' in r || 'notes' in r,
  AllergyIntolerance: (r) => 'substance' in r || 'status' in r || 'lastOccurence' in r,
  Encounter: (r) => 'patient' in r || typeof r.class === 'string' || 'indication' in r,
  Procedure: (r) =>
    'notPerformed' in r || 'reasonNotPerformed' in r || 'notes' in r || 'reasonCodeableConcept' in r,
  Immunization: (r) => 'wasNotGiven' in r || 'reported' in r || 'requester' in r,
  DiagnosticReport: (r) => isRecord(r.category) || isRecord(r.performer) || 'request' in r,
  MedicationStatement: (r) => 'patient' in r || 'wasNotTaken' in r || 'reasonForUseCodeableConcept' in r,
  MedicationOrder: () => true,
  DiagnosticOrder: () => true,
};

/** Elements only STU3 (or STU3 and DSTU2) has, per resource type. */
const STU3_MARKERS: Readonly<Record<string, (resource: JsonRecord) => boolean>> = {
  Patient: (r) => 'animal' in r,
  Observation: (r) => 'comment' in r || 'context' in r || 'related' in r,
  Condition: (r) =>
    typeof r.clinicalStatus === 'string' ||
    typeof r.verificationStatus === 'string' ||
    'context' in r ||
    'assertedDate' in r ||
    'abatementBoolean' in r,
  AllergyIntolerance: (r) =>
    typeof r.clinicalStatus === 'string' || typeof r.verificationStatus === 'string' || 'assertedDate' in r,
  Encounter: (r) => 'reason' in r || 'incomingReferral' in r,
  Procedure: (r) => 'notDone' in r || 'context' in r || 'definition' in r,
  Immunization: (r) => 'notGiven' in r || 'practitioner' in r || 'date' in r || 'vaccinationProtocol' in r,
  DiagnosticReport: (r) => 'context' in r || 'codedDiagnosis' in r || 'image' in r || hasPerformerActor(r),
  MedicationRequest: (r) =>
    'context' in r ||
    'definition' in r ||
    (isRecord(r.requester) && 'agent' in r.requester) ||
    isRecord(r.category) ||
    hasOldDosage(r.dosageInstruction),
  MedicationStatement: (r) =>
    'taken' in r || 'notTaken' in r || 'reasonNotTaken' in r || hasOldDosage(r.dosage),
  Appointment: (r) => 'reason' in r || 'incomingReferral' in r || 'indication' in r,
  ProcedureRequest: () => true,
  ReferralRequest: () => true,
};

/**
 * Detects the FHIR version a resource (or Bundle: its entries) was written in, from elements that
 * only DSTU2 or STU3 have. Resources without such elements read as R4, which is then right or
 * harmless (their JSON is the same in R4).
 */
export function detectFhirVersion(resource: JsonRecord): SourceFhirVersion {
  if ('fhir_comments' in resource) return 'DSTU2';
  const type = String(resource.resourceType);
  if (type === 'Bundle') {
    let found: SourceFhirVersion = 'R4';
    for (const entry of Array.isArray(resource.entry) ? (resource.entry as unknown[]) : []) {
      if (!isRecord(entry)) continue;
      if ('base' in entry || 'fhir_comments' in entry) return 'DSTU2';
      if (!isRecord(entry.resource)) continue;
      const version = detectFhirVersion(entry.resource);
      if (version === 'DSTU2') return 'DSTU2';
      if (version === 'STU3') found = 'STU3';
    }
    return found;
  }
  if (DSTU2_MARKERS[type]?.(resource)) return 'DSTU2';
  if (STU3_MARKERS[type]?.(resource)) return 'STU3';
  // Pre-R4 code system URIs are looked for only in the types we convert (a whole-resource walk:
  // not worth it on large R4-only types such as ExplanationOfBenefit).
  if (type in CONVERTERS && hasOldCodeSystem(resource)) return 'STU3';
  return 'R4';
}

function hasArrayFamily(patient: JsonRecord): boolean {
  return (
    Array.isArray(patient.name) &&
    (patient.name as unknown[]).some((name) => isRecord(name) && Array.isArray(name.family))
  );
}

function hasPerformerActor(report: JsonRecord): boolean {
  return (
    Array.isArray(report.performer) &&
    (report.performer as unknown[]).some((p) => isRecord(p) && 'actor' in p)
  );
}

function hasOldDosage(dosages: unknown): boolean {
  if (!Array.isArray(dosages)) return false;
  return (dosages as unknown[]).some(
    (dosage) => isRecord(dosage) && Object.keys(dosage).some((key) => OLD_DOSE_KEY.test(key)),
  );
}

const OLD_DOSE_KEY = /^(dose|rate|quantity)(Quantity|Range|Ratio|SimpleQuantity)$/;

/** Pre-R4 code system URIs (`http://hl7.org/fhir/v2/0203`, `http://hl7.org/fhir/v3/ActCode`). */
const OLD_V2_V3 = /^http:\/\/hl7\.org\/fhir\/v[23]\//;

function hasOldCodeSystem(value: unknown): boolean {
  if (Array.isArray(value)) return (value as unknown[]).some(hasOldCodeSystem);
  if (!isRecord(value)) return false;
  if (typeof value.system === 'string' && OLD_V2_V3.test(value.system)) return true;
  for (const key in value) {
    const child = value[key];
    if (typeof child === 'object' && child !== null && hasOldCodeSystem(child)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Entry point

/**
 * Converts a DSTU2 or STU3 resource (or Bundle of them) to R4. The resource is changed in place;
 * the returned object is the R4 resource (a new object when the type changes). Elements R4 has
 * no place for are dropped with an `informational` issue naming their path.
 */
export function convertToR4(
  resource: JsonRecord,
  version: SourceFhirVersion,
  path: string,
  issues: OperationOutcomeIssue[],
): JsonRecord {
  if (version === 'R4') return resource;
  return convertResource(resource, { version, path, issues });
}

function convertResource(resource: JsonRecord, at: ConversionSite): JsonRecord {
  convertDatatypes(resource, at);
  if (Array.isArray(resource.contained)) {
    resource.contained = (resource.contained as unknown[]).map((inner, index) =>
      isRecord(inner) ? convertResource(inner, { ...at, path: `${at.path}.contained[${index}]` }) : inner,
    );
  }
  const converter = CONVERTERS[String(resource.resourceType)];
  return converter ? converter(resource, at) : resource;
}

const CONVERTERS: Readonly<Record<string, Converter>> = {
  Bundle: convertBundle,
  Patient: convertPatient,
  Practitioner: convertPractitioner,
  Organization: (r) => (toArray(r, 'type'), r),
  Observation: convertObservation,
  Condition: convertCondition,
  AllergyIntolerance: convertAllergyIntolerance,
  Encounter: convertEncounter,
  Procedure: convertProcedure,
  Immunization: convertImmunization,
  DiagnosticReport: convertDiagnosticReport,
  MedicationOrder: convertMedicationOrder,
  MedicationRequest: convertMedicationRequest,
  MedicationStatement: convertMedicationStatement,
  DiagnosticOrder: convertDiagnosticOrder,
  ProcedureRequest: convertProcedureRequest,
  ReferralRequest: convertReferralRequest,
  Appointment: convertAppointment,
  Medication: convertMedication,
  DocumentReference: convertDocumentReference,
};

// ---------------------------------------------------------------------------------------------
// Datatypes and JSON rules shared by every resource

/** FHIR code systems that moved to terminology.hl7.org in R4 under a new name. */
const RENAMED_SYSTEMS: Readonly<Record<string, string>> = {
  'http://hl7.org/fhir/identifier-type': 'http://terminology.hl7.org/CodeSystem/v2-0203',
};

/** The R4 URI of a pre-R4 code system URI; the same URI when it did not move. */
export function r4CodeSystem(system: string): string {
  const renamed = RENAMED_SYSTEMS[system];
  if (renamed) return renamed;
  const old = /^http:\/\/hl7\.org\/fhir\/(v[23])\/(.+)$/.exec(system);
  if (old) return `http://terminology.hl7.org/CodeSystem/${old[1]}-${old[2]}`;
  const fhir = /^http:\/\/hl7\.org\/fhir\/([a-z][a-z0-9-]*)$/.exec(system);
  if (fhir && !isKnownCodeSystem(system)) {
    const moved = `http://terminology.hl7.org/CodeSystem/${fhir[1]}`;
    if (isKnownCodeSystem(moved)) return moved;
  }
  return system;
}

/**
 * Rules for every element: DSTU2 `fhir_comments` removed, code system URIs moved, DSTU2
 * `HumanName.family` arrays joined, Timing.repeat element renames. Stops at contained resources
 * and Bundle entry resources (they are converted on their own).
 */
function convertDatatypes(root: JsonRecord, at: ConversionSite): void {
  const visit = (value: JsonRecord): void => {
    delete value.fhir_comments;
    if (typeof value.system === 'string') value.system = r4CodeSystem(value.system);
    if (Array.isArray(value.family)) joinFamily(value);
    if (isRecord(value.repeat)) convertTimingRepeat(value.repeat);
    for (const key of Object.keys(value)) {
      const child = value[key];
      if (key === 'contained' && value === root) continue;
      if (key === 'resource' && value !== root && isRecord(child) && typeof child.resourceType === 'string')
        continue;
      if (Array.isArray(child)) {
        // Vendors send `"entry": []`; FHIR JSON (every version) says omit the element instead.
        if (child.length === 0) delete value[key];
        for (const item of child as unknown[]) if (isRecord(item)) visit(item);
      } else if (isRecord(child)) {
        visit(child);
        // `_element` objects that held only DSTU2 comments are empty now.
        if (key.startsWith('_') && Object.keys(child).length === 0) delete value[key];
      }
    }
  };
  visit(root);
  if (at.version === 'DSTU2') {
    for (const key of Object.keys(root)) {
      const child = root[key];
      if (
        key.startsWith('_') &&
        Array.isArray(child) &&
        (child as unknown[]).every(
          (item) => item === null || (isRecord(item) && Object.keys(item).length === 0),
        )
      ) {
        delete root[key];
      }
    }
  }
}

/** DSTU2 `HumanName.family` is a list of parts; R4 has one string (its `_family` one extension object). */
function joinFamily(name: JsonRecord): void {
  const parts = name.family as unknown[];
  name.family = parts.filter((part) => typeof part === 'string').join(' ');
  if (Array.isArray(name._family)) {
    const [first] = name._family as unknown[];
    if (parts.length === 1 && isRecord(first)) name._family = first;
    else delete name._family;
  }
}

function convertTimingRepeat(repeat: JsonRecord): void {
  rename(repeat, 'periodUnits', 'periodUnit');
  rename(repeat, 'durationUnits', 'durationUnit');
  rename(repeat, 'boundsQuantity', 'boundsDuration');
  if (typeof repeat.when === 'string') repeat.when = [repeat.when];
}

// ---------------------------------------------------------------------------------------------
// Small editing helpers

function rename(resource: JsonRecord, from: string, to: string): void {
  for (const [source, target] of [
    [from, to],
    [`_${from}`, `_${to}`],
  ] as const) {
    if (!(source in resource)) continue;
    if (!(target in resource)) resource[target] = resource[source];
    delete resource[source];
  }
}

function toArray(resource: JsonRecord, key: string): void {
  const value = resource[key];
  if (value !== undefined && !Array.isArray(value)) resource[key] = [value];
  const extra = resource[`_${key}`];
  if (extra !== undefined && !Array.isArray(extra)) resource[`_${key}`] = [extra];
}

/** A plain `code` element becomes a CodeableConcept with one coding (the `_element` extension is dropped). */
function codeToConcept(
  resource: JsonRecord,
  key: string,
  system: string,
  codes?: Readonly<Record<string, string>>,
): void {
  const code = resource[key];
  if (typeof code !== 'string') return;
  resource[key] = { coding: [{ system, code: codes?.[code] ?? code }] };
  delete resource[`_${key}`];
}

/** A string (or Annotation) element becomes an Annotation array under `to`. */
function toAnnotations(resource: JsonRecord, from: string, to = 'note'): void {
  const value = resource[from];
  if (value === undefined) return;
  delete resource[from];
  delete resource[`_${from}`];
  const notes = (Array.isArray(value) ? (value as unknown[]) : [value]).map((note) =>
    typeof note === 'string' ? { text: note } : note,
  );
  const existing = Array.isArray(resource[to]) ? (resource[to] as unknown[]) : [];
  resource[to] = [...existing, ...notes];
}

/** Drops an element R4 has no place for, saying so. */
function drop(resource: JsonRecord, key: string, at: ConversionSite, why = 'R4 has no element for it'): void {
  if (!(key in resource) && !(`_${key}` in resource)) return;
  delete resource[key];
  delete resource[`_${key}`];
  at.issues.push(
    outcomeIssue({
      severity: 'information',
      code: 'informational',
      text: `Dropped in the conversion from ${at.version} to R4: ${why}`,
      expression: `${at.path}.${key}`,
    }),
  );
}

/** Replaces a code by its R4 value (codes not in the table stay). */
function recode(resource: JsonRecord, key: string, codes: Readonly<Record<string, string>>): void {
  const value = resource[key];
  if (typeof value === 'string' && codes[value] !== undefined) resource[key] = codes[value];
}

function records(value: unknown): JsonRecord[] {
  return Array.isArray(value) ? (value as unknown[]).filter(isRecord) : isRecord(value) ? [value] : [];
}

/** A new object with `resourceType` first and the rest in order (for a resource type change). */
function retype(resource: JsonRecord, resourceType: string): JsonRecord {
  const rest: JsonRecord = { ...resource };
  delete rest.resourceType;
  return { resourceType, ...rest };
}

/**
 * Pre-R4 Dosage (STU3 `dose[x]`/`rate[x]`, DSTU2 `dose[x]`/`quantity[x]`/`rate[x]`, DSTU2
 * `additionalInstructions`, `site[x]`) -> R4 Dosage (`doseAndRate`, `additionalInstruction`, `site`).
 */
function convertDosage(dosage: JsonRecord, at: ConversionSite): void {
  rename(dosage, 'siteCodeableConcept', 'site');
  if ('siteReference' in dosage) drop(dosage, 'siteReference', at, 'Dosage.site is a CodeableConcept in R4');
  if (isRecord(dosage.additionalInstructions)) {
    dosage.additionalInstruction = [dosage.additionalInstructions];
    delete dosage.additionalInstructions;
  }
  toArray(dosage, 'additionalInstruction');
  const doseAndRate: JsonRecord = {};
  for (const [from, to] of [
    ['doseQuantity', 'doseQuantity'],
    ['doseSimpleQuantity', 'doseQuantity'],
    ['doseRange', 'doseRange'],
    ['quantityQuantity', 'doseQuantity'],
    ['quantitySimpleQuantity', 'doseQuantity'],
    ['quantityRange', 'doseRange'],
    ['rateRatio', 'rateRatio'],
    ['rateRange', 'rateRange'],
    ['rateQuantity', 'rateQuantity'],
    ['rateSimpleQuantity', 'rateQuantity'],
  ] as const) {
    if (dosage[from] === undefined) continue;
    doseAndRate[to] = dosage[from];
    delete dosage[from];
  }
  if (Object.keys(doseAndRate).length > 0) dosage.doseAndRate = [doseAndRate];
}

function convertDosages(resource: JsonRecord, key: string, at: ConversionSite): void {
  toArray(resource, key);
  for (const [index, dosage] of records(resource[key]).entries()) {
    convertDosage(dosage, { ...at, path: `${at.path}.${key}[${index}]` });
  }
}

// ---------------------------------------------------------------------------------------------
// Resource converters

function convertBundle(bundle: JsonRecord, at: ConversionSite): JsonRecord {
  for (const [index, entry] of records(bundle.entry).entries()) {
    delete entry.base;
    if (isRecord(entry.resource)) {
      entry.resource = convertResource(entry.resource, {
        ...at,
        path: `${at.path}.entry[${index}].resource`,
      });
    }
  }
  return bundle;
}

const PATIENT_LINK_TYPES: Readonly<Record<string, string>> = { replace: 'replaced-by' };

function convertPatient(patient: JsonRecord, at: ConversionSite): JsonRecord {
  rename(patient, 'careProvider', 'generalPractitioner');
  drop(patient, 'animal', at, 'R4 Patient has no animal element (use the patient-animal extension)');
  for (const link of records(patient.link)) recode(link, 'type', PATIENT_LINK_TYPES);
  return patient;
}

function convertPractitioner(practitioner: JsonRecord, at: ConversionSite): JsonRecord {
  toArray(practitioner, 'name');
  drop(practitioner, 'practitionerRole', at, 'roles are PractitionerRole resources in R4');
  return practitioner;
}

function convertObservation(observation: JsonRecord): JsonRecord {
  toArray(observation, 'category');
  toArray(observation, 'interpretation');
  for (const component of records(observation.component)) toArray(component, 'interpretation');
  toAnnotations(observation, 'comments');
  toAnnotations(observation, 'comment');
  rename(observation, 'context', 'encounter');
  for (const range of [
    ...records(observation.referenceRange),
    ...records(observation.component).flatMap((c) => records(c.referenceRange)),
  ]) {
    if (isRecord(range.meaning)) {
      range.type = range.meaning;
      delete range.meaning;
    } else if (Array.isArray(range.meaning)) {
      const [type, ...appliesTo] = range.meaning as unknown[];
      range.type = type;
      if (appliesTo.length > 0) range.appliesTo = appliesTo;
      delete range.meaning;
    }
  }
  for (const related of records(observation.related)) {
    const target = related.target;
    if (!isRecord(target)) continue;
    const key = related.type === 'derived-from' || related.type === 'sequel-to' ? 'derivedFrom' : 'hasMember';
    observation[key] = [...(Array.isArray(observation[key]) ? (observation[key] as unknown[]) : []), target];
  }
  delete observation.related;
  return observation;
}

const CONDITION_CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
const CONDITION_VERIFICATION = 'http://terminology.hl7.org/CodeSystem/condition-ver-status';

function convertCondition(condition: JsonRecord, at: ConversionSite): JsonRecord {
  rename(condition, 'patient', 'subject');
  rename(condition, 'context', 'encounter');
  rename(condition, 'dateRecorded', 'recordedDate');
  rename(condition, 'assertedDate', 'recordedDate');
  toAnnotations(condition, 'notes');
  toArray(condition, 'category');
  toArray(condition, 'stage');
  for (const evidence of records(condition.evidence)) toArray(evidence, 'code');
  codeToConcept(condition, 'clinicalStatus', CONDITION_CLINICAL);
  codeToConcept(condition, 'verificationStatus', CONDITION_VERIFICATION, { unknown: 'unconfirmed' });
  if (condition.abatementBoolean !== undefined) {
    if (condition.abatementBoolean === true && condition.clinicalStatus === undefined) {
      condition.clinicalStatus = { coding: [{ system: CONDITION_CLINICAL, code: 'resolved' }] };
    }
    drop(
      condition,
      'abatementBoolean',
      at,
      'R4 abatement has no boolean form (a true value became clinicalStatus resolved when absent)',
    );
  }
  return condition;
}

const ALLERGY_CLINICAL = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical';
const ALLERGY_VERIFICATION = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification';

/** DSTU2 AllergyIntolerance.status -> R4 clinicalStatus / verificationStatus. */
const ALLERGY_DSTU2_STATUS: Readonly<Record<string, [clinical?: string, verification?: string]>> = {
  active: ['active', undefined],
  unconfirmed: ['active', 'unconfirmed'],
  confirmed: ['active', 'confirmed'],
  inactive: ['inactive', undefined],
  resolved: ['resolved', undefined],
  refuted: [undefined, 'refuted'],
  'entered-in-error': [undefined, 'entered-in-error'],
};

function convertAllergyIntolerance(allergy: JsonRecord, at: ConversionSite): JsonRecord {
  rename(allergy, 'substance', 'code');
  rename(allergy, 'lastOccurence', 'lastOccurrence');
  rename(allergy, 'reporter', 'asserter');
  rename(allergy, 'assertedDate', 'recordedDate');
  rename(allergy, 'onset', 'onsetDateTime');
  if (typeof allergy.status === 'string') {
    const [clinical, verification] = ALLERGY_DSTU2_STATUS[allergy.status] ?? [];
    if (clinical) allergy.clinicalStatus = clinical;
    if (verification) allergy.verificationStatus = verification;
    delete allergy.status;
    delete allergy._status;
  }
  codeToConcept(allergy, 'clinicalStatus', ALLERGY_CLINICAL);
  codeToConcept(allergy, 'verificationStatus', ALLERGY_VERIFICATION);
  recode(allergy, 'criticality', { CRITL: 'low', CRITH: 'high', CRITU: 'unable-to-assess' });
  toArray(allergy, 'category');
  if (Array.isArray(allergy.category) && (allergy.category as unknown[]).includes('other')) {
    allergy.category = (allergy.category as unknown[]).filter((category) => category !== 'other');
    delete allergy._category;
    at.issues.push(
      outcomeIssue({
        severity: 'information',
        code: 'informational',
        text: `Dropped in the conversion from ${at.version} to R4: the category "other" is not an R4 code`,
        expression: `${at.path}.category`,
      }),
    );
    if ((allergy.category as unknown[]).length === 0) delete allergy.category;
  }
  toAnnotations(allergy, 'note');
  for (const [index, reaction] of records(allergy.reaction).entries()) {
    const reactionAt = { ...at, path: `${at.path}.reaction[${index}]` };
    drop(reaction, 'certainty', reactionAt);
    toAnnotations(reaction, 'note');
  }
  return allergy;
}

/** DSTU2 Encounter.class code -> R4 v3 ActCode coding. */
const ENCOUNTER_CLASS: Readonly<Record<string, [code: string, display: string]>> = {
  inpatient: ['IMP', 'inpatient encounter'],
  outpatient: ['AMB', 'ambulatory'],
  ambulatory: ['AMB', 'ambulatory'],
  emergency: ['EMER', 'emergency'],
  home: ['HH', 'home health'],
  field: ['FLD', 'field'],
  daytime: ['SS', 'short stay'],
  virtual: ['VR', 'virtual'],
};

function convertEncounter(encounter: JsonRecord, at: ConversionSite): JsonRecord {
  rename(encounter, 'patient', 'subject');
  rename(encounter, 'reason', 'reasonCode');
  if (typeof encounter.class === 'string') {
    const [code, display] = ENCOUNTER_CLASS[encounter.class] ?? [];
    if (code) encounter.class = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code, display };
    else drop(encounter, 'class', at, 'the class code has no R4 ActCode equivalent');
    delete encounter._class;
  }
  const basedOn = [...records(encounter.incomingReferral), ...records(encounter.fulfills)];
  delete encounter.incomingReferral;
  delete encounter.fulfills;
  if (basedOn.length > 0) encounter.basedOn = basedOn;
  const diagnosis = [...records(encounter.indication).map((condition) => ({ condition }))];
  delete encounter.indication;
  if (diagnosis.length > 0) encounter.diagnosis = [...records(encounter.diagnosis), ...diagnosis];
  if (isRecord(encounter.hospitalization)) {
    const stay = encounter.hospitalization;
    const hospitalizationAt = { ...at, path: `${at.path}.hospitalization` };
    drop(stay, 'admittingDiagnosis', hospitalizationAt, 'diagnoses are Encounter.diagnosis in R4');
    drop(stay, 'dischargeDiagnosis', hospitalizationAt, 'diagnoses are Encounter.diagnosis in R4');
  }
  for (const participant of records(encounter.participant)) toArray(participant, 'type');
  return encounter;
}

const PROCEDURE_STATUS: Readonly<Record<string, string>> = { aborted: 'stopped', suspended: 'on-hold' };

function convertProcedure(procedure: JsonRecord, at: ConversionSite): JsonRecord {
  rename(procedure, 'patient', 'subject');
  rename(procedure, 'context', 'encounter');
  recode(procedure, 'status', PROCEDURE_STATUS);
  if (procedure.notPerformed === true || procedure.notDone === true) procedure.status = 'not-done';
  delete procedure.notPerformed;
  delete procedure.notDone;
  const notDoneReason = procedure.reasonNotPerformed ?? procedure.notDoneReason;
  if (notDoneReason !== undefined)
    procedure.statusReason = Array.isArray(notDoneReason) ? notDoneReason[0] : notDoneReason;
  delete procedure.reasonNotPerformed;
  delete procedure.notDoneReason;
  if (isRecord(procedure.reasonCodeableConcept)) procedure.reasonCode = [procedure.reasonCodeableConcept];
  if (isRecord(procedure.reasonReference)) procedure.reasonReference = [procedure.reasonReference];
  delete procedure.reasonCodeableConcept;
  rename(procedure, 'request', 'basedOn');
  toArray(procedure, 'basedOn');
  toAnnotations(procedure, 'notes');
  drop(procedure, 'definition', at, 'instantiatesCanonical needs a canonical, not a reference');
  for (const performer of records(procedure.performer)) rename(performer, 'role', 'function');
  for (const device of records(procedure.focalDevice)) if (isRecord(device.action)) toArray(device, 'action');
  if (Array.isArray(procedure.used)) procedure.usedReference = procedure.used;
  delete procedure.used;
  return procedure;
}

const IMMUNIZATION_STATUS: Readonly<Record<string, string>> = {
  'in-progress': 'completed',
  'on-hold': 'not-done',
  stopped: 'not-done',
};

function convertImmunization(immunization: JsonRecord, at: ConversionSite): JsonRecord {
  rename(immunization, 'date', 'occurrenceDateTime');
  recode(immunization, 'status', IMMUNIZATION_STATUS);
  if (immunization.wasNotGiven === true || immunization.notGiven === true) immunization.status = 'not-done';
  delete immunization.wasNotGiven;
  delete immunization.notGiven;
  if (typeof immunization.reported === 'boolean') immunization.primarySource = !immunization.reported;
  delete immunization.reported;
  const performers: JsonRecord[] = [];
  const ADMINISTERING = 'http://terminology.hl7.org/CodeSystem/v2-0443';
  if (isRecord(immunization.performer)) {
    performers.push({
      function: { coding: [{ system: ADMINISTERING, code: 'AP' }] },
      actor: immunization.performer,
    });
  }
  if (isRecord(immunization.requester)) {
    performers.push({
      function: { coding: [{ system: ADMINISTERING, code: 'OP' }] },
      actor: immunization.requester,
    });
  }
  for (const practitioner of records(immunization.practitioner)) {
    const performer: JsonRecord = { actor: practitioner.actor };
    if (practitioner.role !== undefined) performer.function = practitioner.role;
    performers.push(performer);
  }
  delete immunization.requester;
  delete immunization.practitioner;
  if (performers.length > 0) immunization.performer = performers;
  else delete immunization.performer;
  if (isRecord(immunization.explanation)) {
    const { reason, reasonNotGiven } = immunization.explanation;
    if (Array.isArray(reason)) immunization.reasonCode = reason;
    if (Array.isArray(reasonNotGiven) && reasonNotGiven.length > 0)
      immunization.statusReason = reasonNotGiven[0] as unknown;
    delete immunization.explanation;
  }
  for (const reaction of records(immunization.reaction)) delete reaction._reported;
  const protocols = records(immunization.vaccinationProtocol);
  if (protocols.length > 0) {
    immunization.protocolApplied = protocols.map((protocol) => {
      const applied: JsonRecord = {};
      if (protocol.series !== undefined) applied.series = protocol.series;
      if (protocol.authority !== undefined) applied.authority = protocol.authority;
      if (protocol.targetDisease !== undefined) applied.targetDisease = protocol.targetDisease;
      applied.doseNumberPositiveInt = typeof protocol.doseSequence === 'number' ? protocol.doseSequence : 1;
      if (typeof protocol.seriesDoses === 'number') applied.seriesDosesPositiveInt = protocol.seriesDoses;
      return applied;
    });
    at.issues.push(
      outcomeIssue({
        severity: 'information',
        code: 'informational',
        text: `Converted from ${at.version}: vaccinationProtocol became protocolApplied (description and dose status dropped)`,
        expression: `${at.path}.vaccinationProtocol`,
      }),
    );
  }
  delete immunization.vaccinationProtocol;
  return immunization;
}

function convertDiagnosticReport(report: JsonRecord, at: ConversionSite): JsonRecord {
  toArray(report, 'category');
  rename(report, 'context', 'encounter');
  rename(report, 'request', 'basedOn');
  toArray(report, 'basedOn');
  rename(report, 'codedDiagnosis', 'conclusionCode');
  if (Array.isArray(report.performer)) {
    report.performer = (report.performer as unknown[]).map((performer) =>
      isRecord(performer) && isRecord(performer.actor) ? performer.actor : performer,
    );
  } else {
    toArray(report, 'performer');
  }
  const images = records(report.image);
  if (images.length > 0) report.media = images;
  delete report.image;
  drop(report, 'imagingStudy', at, 'only ImagingStudy references are allowed in R4');
  return report;
}

function convertMedicationOrder(order: JsonRecord, at: ConversionSite): JsonRecord {
  const request = retype(order, 'MedicationRequest');
  request.intent = 'order';
  rename(request, 'dateWritten', 'authoredOn');
  rename(request, 'patient', 'subject');
  rename(request, 'prescriber', 'requester');
  if (isRecord(request.reasonCodeableConcept)) request.reasonCode = [request.reasonCodeableConcept];
  delete request.reasonCodeableConcept;
  toArray(request, 'reasonReference');
  if (isRecord(request.reasonEnded)) request.statusReason = request.reasonEnded;
  delete request.reasonEnded;
  drop(request, 'dateEnded', at);
  toAnnotations(request, 'note');
  convertDosages(request, 'dosageInstruction', at);
  if (isRecord(request.dispenseRequest)) {
    const dispense = request.dispenseRequest;
    const dispenseAt = { ...at, path: `${at.path}.dispenseRequest` };
    drop(
      dispense,
      'medicationCodeableConcept',
      dispenseAt,
      'the medication is MedicationRequest.medication[x] in R4',
    );
    drop(
      dispense,
      'medicationReference',
      dispenseAt,
      'the medication is MedicationRequest.medication[x] in R4',
    );
  }
  if (isRecord(request.substitution)) {
    const substitution = request.substitution;
    if (isRecord(substitution.type)) substitution.allowedCodeableConcept = substitution.type;
    else substitution.allowedBoolean = true;
    delete substitution.type;
  }
  return request;
}

function convertMedicationRequest(request: JsonRecord, at: ConversionSite): JsonRecord {
  rename(request, 'context', 'encounter');
  if (request.status === undefined) {
    request.status = 'unknown';
    at.issues.push(
      outcomeIssue({
        severity: 'information',
        code: 'informational',
        text: `Set in the conversion from ${at.version} to R4: status is required in R4; the source had none, so unknown`,
        expression: `${at.path}.status`,
      }),
    );
  }
  toArray(request, 'category');
  if (isRecord(request.requester)) {
    const { agent, onBehalfOf } = request.requester;
    if (isRecord(agent)) request.requester = agent;
    if (isRecord(onBehalfOf)) {
      at.issues.push(
        outcomeIssue({
          severity: 'information',
          code: 'informational',
          text: `Dropped in the conversion from ${at.version} to R4: requester.onBehalfOf (R4 requester is one reference)`,
          expression: `${at.path}.requester.onBehalfOf`,
        }),
      );
    }
  }
  drop(request, 'definition', at, 'instantiatesCanonical needs a canonical, not a reference');
  convertDosages(request, 'dosageInstruction', at);
  if (isRecord(request.substitution) && typeof request.substitution.allowed === 'boolean') {
    request.substitution.allowedBoolean = request.substitution.allowed;
    delete request.substitution.allowed;
  }
  return request;
}

const MEDICATION_STATEMENT_TAKEN: Readonly<Record<string, string | undefined>> = {
  n: 'not-taken',
  unk: 'unknown',
};

function convertMedicationStatement(statement: JsonRecord, at: ConversionSite): JsonRecord {
  rename(statement, 'patient', 'subject');
  if (statement.wasNotTaken === true || statement.notTaken === true) statement.status = 'not-taken';
  delete statement.wasNotTaken;
  delete statement.notTaken;
  if (typeof statement.taken === 'string') {
    const status = MEDICATION_STATEMENT_TAKEN[statement.taken];
    if (status && statement.status !== 'entered-in-error') statement.status = status;
    delete statement.taken;
    delete statement._taken;
  }
  const notTaken = statement.reasonNotTaken;
  if (Array.isArray(notTaken) && notTaken.length > 0) statement.statusReason = notTaken;
  else if (isRecord(notTaken)) statement.statusReason = [notTaken];
  delete statement.reasonNotTaken;
  if (isRecord(statement.reasonForUseCodeableConcept))
    statement.reasonCode = [statement.reasonForUseCodeableConcept];
  if (isRecord(statement.reasonForUseReference))
    statement.reasonReference = [statement.reasonForUseReference];
  delete statement.reasonForUseCodeableConcept;
  delete statement.reasonForUseReference;
  rename(statement, 'supportingInformation', 'derivedFrom');
  toAnnotations(statement, 'note');
  convertDosages(statement, 'dosage', at);
  return statement;
}

/** DSTU2 DiagnosticOrder.status -> R4 ServiceRequest.status. */
const DIAGNOSTIC_ORDER_STATUS: Readonly<Record<string, string>> = {
  proposed: 'draft',
  draft: 'draft',
  planned: 'active',
  requested: 'active',
  received: 'active',
  accepted: 'active',
  'in-progress': 'active',
  review: 'active',
  completed: 'completed',
  cancelled: 'revoked',
  suspended: 'on-hold',
  rejected: 'revoked',
  failed: 'revoked',
  'entered-in-error': 'entered-in-error',
};

function convertDiagnosticOrder(order: JsonRecord, at: ConversionSite): JsonRecord {
  const request = retype(order, 'ServiceRequest');
  request.intent = 'order';
  request.status =
    typeof order.status === 'string' ? (DIAGNOSTIC_ORDER_STATUS[order.status] ?? 'unknown') : 'unknown';
  delete request._status;
  rename(request, 'orderer', 'requester');
  rename(request, 'reason', 'reasonCode');
  rename(request, 'supportingInformation', 'supportingInfo');
  const events = records(request.event);
  const requested = events.find((event) => event.status === 'requested') ?? events[0];
  if (typeof requested?.dateTime === 'string') request.authoredOn = requested.dateTime;
  if (events.length > 0)
    drop(request, 'event', at, 'the order history is in Provenance/Task in R4 (authoredOn kept)');
  const items = records(request.item);
  delete request.item;
  const [first, ...rest] = items;
  if (first) {
    if (first.code !== undefined) request.code = first.code;
    if (Array.isArray(first.specimen))
      request.specimen = [...records(request.specimen), ...(first.specimen as unknown[])];
    if (first.bodySite !== undefined) request.bodySite = [first.bodySite];
  }
  if (rest.length > 0) {
    at.issues.push(
      outcomeIssue({
        severity: 'warning',
        code: 'informational',
        text: `The ${at.version} DiagnosticOrder has several items; the R4 ServiceRequest carries the first (split the order to keep the others)`,
        expression: `${at.path}.item`,
      }),
    );
  }
  return request;
}

function convertProcedureRequest(procedureRequest: JsonRecord, at: ConversionSite): JsonRecord {
  const request = retype(procedureRequest, 'ServiceRequest');
  rename(request, 'context', 'encounter');
  if (isRecord(request.requester) && isRecord(request.requester.agent))
    request.requester = request.requester.agent;
  drop(request, 'definition', at, 'instantiatesCanonical needs a canonical, not a reference');
  recode(request, 'status', { suspended: 'on-hold', cancelled: 'revoked' });
  return request;
}

function convertReferralRequest(referral: JsonRecord, at: ConversionSite): JsonRecord {
  const request = retype(referral, 'ServiceRequest');
  rename(request, 'context', 'encounter');
  rename(request, 'type', 'code');
  rename(request, 'serviceRequested', 'orderDetail');
  rename(request, 'recipient', 'performer');
  rename(request, 'groupIdentifier', 'requisition');
  if (isRecord(request.specialty)) request.performerType = request.specialty;
  delete request.specialty;
  if (isRecord(request.requester) && isRecord(request.requester.agent))
    request.requester = request.requester.agent;
  if (typeof request.description === 'string') toAnnotations(request, 'description');
  drop(request, 'definition', at, 'instantiatesCanonical needs a canonical, not a reference');
  recode(request, 'status', { suspended: 'on-hold', cancelled: 'revoked' });
  return request;
}

function convertAppointment(appointment: JsonRecord): JsonRecord {
  rename(appointment, 'reason', 'reasonCode');
  rename(appointment, 'indication', 'reasonReference');
  rename(appointment, 'incomingReferral', 'basedOn');
  return appointment;
}

function convertMedication(medication: JsonRecord, at: ConversionSite): JsonRecord {
  drop(medication, 'isBrand', at);
  drop(medication, 'isOverTheCounter', at);
  drop(medication, 'image', at);
  if (isRecord(medication.product)) {
    // DSTU2: Medication.product holds form, ingredients and batches.
    const { form, ingredient, batch } = medication.product;
    if (form !== undefined) medication.form = form;
    if (ingredient !== undefined) medication.ingredient = ingredient;
    const [first] = records(batch);
    if (first) medication.batch = first;
    delete medication.product;
  }
  if (isRecord(medication.package)) {
    const [first] = records(medication.package.batch);
    if (first && medication.batch === undefined) medication.batch = first;
    drop(medication, 'package', at, 'R4 Medication has no package (its batch was kept)');
  }
  for (const ingredient of records(medication.ingredient)) {
    rename(ingredient, 'amount', 'strength');
    if (isRecord(ingredient.item)) {
      ingredient.itemReference = ingredient.item;
      delete ingredient.item;
    }
  }
  return medication;
}

/** DSTU2 DocumentReference.docStatus (a CodeableConcept) -> R4 code. */
function convertDocumentReference(document: JsonRecord, at: ConversionSite): JsonRecord {
  if (isRecord(document.class)) document.category = [document.class];
  delete document.class;
  rename(document, 'indexed', 'date');
  drop(document, 'created', at, 'R4 keeps the creation time in content.attachment.creation');
  if (isRecord(document.docStatus)) {
    const [coding] = records(document.docStatus.coding);
    if (typeof coding?.code === 'string') document.docStatus = coding.code;
    else delete document.docStatus;
  }
  for (const content of records(document.content)) {
    if (Array.isArray(content.format)) content.format = content.format[0] as unknown;
  }
  if (isRecord(document.context)) {
    const context = document.context;
    toArray(context, 'encounter');
    if (Array.isArray(context.related)) {
      context.related = records(context.related).map((related) => related.ref ?? related);
    }
  }
  return document;
}
