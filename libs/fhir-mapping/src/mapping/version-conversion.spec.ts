import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Resource } from '@medplum/fhirtypes';

import {
  compileMappingProfile,
  normaliseResource,
  parseMappingProfile,
  type NormaliseResult,
  type SourceFhirVersion,
} from '@fhir-trail/fhir-mapping';

import { listJsonFixtures, readJsonFixture } from '../../../../test/fixtures/fixture-files';
import { detectFhirVersion } from './version-conversion';

/**
 * The shared corpus's real Epic and Cerner sandbox payloads have no licence, so they are not in this
 * repository: when the corpus is beside it (CI), they are read in place as `shared:legacy/…`;
 * `FHIR_CORPUS_DIR` points elsewhere. Our own synthetic `legacy/vendor-style/` files run always.
 */
const SHARED_CORPUS =
  process.env.FHIR_CORPUS_DIR ?? join(__dirname, '..', '..', '..', '..', '..', 'shared', 'fhir-corpus');
const SHARED_PREFIX = 'shared:';
const SHARED_VENDOR_FOLDERS = ['legacy/vendor-epic', 'legacy/vendor-cerner'];
const HAS_SHARED_VENDOR = SHARED_VENDOR_FOLDERS.every((folder) => existsSync(join(SHARED_CORPUS, folder)));

function sharedVendorFiles(folder: string): string[] {
  return readdirSync(join(SHARED_CORPUS, folder))
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => `${SHARED_PREFIX}${folder}/${name}`);
}

/** A payload by name: a shipped fixture, or (`shared:` prefix) a shared-corpus file read in place. */
function readPayload(file: string): unknown {
  if (!file.startsWith(SHARED_PREFIX)) return readJsonFixture(file);
  return JSON.parse(readFileSync(join(SHARED_CORPUS, file.slice(SHARED_PREFIX.length)), 'utf8')) as unknown;
}

/**
 * The version each legacy payload was served in: the spec folders by name; our vendor-style files
 * by the version in their name; the shared vendor payloads by the endpoint they came from (their
 * SOURCES.md). A source's configuration says this in production; detection is tested separately below.
 */
function servedVersion(file: string): SourceFhirVersion {
  if (file.startsWith('legacy/dstu2/')) return 'DSTU2';
  if (file.startsWith('legacy/stu3/')) return 'STU3';
  if (file.startsWith('legacy/vendor-style/')) {
    if (file.includes('-dstu2-')) return 'DSTU2';
    if (file.includes('-stu3-')) return 'STU3';
    return 'R4';
  }
  const stu3 = ['STU3BundleEmpty', 'STU3MedicationStatementBundle', 'ExampleFHIRAppointmentBundle'];
  const dstu2 = ['DSTU2BundleEmpty', 'ExampleMedicationStatementBundle.json'];
  if (file.startsWith(`${SHARED_PREFIX}legacy/vendor-epic/`) && stu3.some((name) => file.includes(name)))
    return 'STU3';
  if (file.startsWith(`${SHARED_PREFIX}legacy/vendor-cerner/`) && dstu2.some((name) => file.includes(name)))
    return 'DSTU2';
  return 'R4';
}

const DUPLICATE_INCLUDES = {
  reason:
    'Epic includes the same Practitioner and Location twice under one fullUrl (search.mode include); ' +
    'R4 bdl-7 forbids duplicate fullUrls in a searchset. Deduplicating includes is for the consumer, not a mapping.',
  errors: [/^Constraint bdl-7 not met/],
};

/**
 * Payloads that stay invalid R4 after conversion, with the reason. Asserted exactly: if one of
 * them starts to validate, or fails for another reason, this spec fails.
 */
const EXPECTED_FAILURES: Record<string, { reason: string; errors: RegExp[] }> = {
  'legacy/vendor-style/epic-r4-practitionerrole-include-duplicates.json': DUPLICATE_INCLUDES,
  [`${SHARED_PREFIX}legacy/vendor-epic/ExampleFindPractitionersResponseWithDuplicates.json`]:
    DUPLICATE_INCLUDES,
};

/** A legacy-source profile: prefix ids per source (hashing Epic's 66-character ids) and stamp meta.source. */
const legacyProfile = compileMappingProfile(
  parseMappingProfile({
    id: 'legacy-sources',
    version: 1,
    steps: [{ kind: 'referenceRewrite' }, { kind: 'metaStamp', source: 'urn:fhir-trail:source:{sourceId}' }],
  }),
);
const emptyProfile = compileMappingProfile(parseMappingProfile({ id: 'none', version: 1, steps: [] }));

function normalise(file: string, version?: SourceFhirVersion, profile = legacyProfile): NormaliseResult {
  return normaliseResource(profile, readPayload(file) as Resource, {
    sourceId: 'legacy',
    fhirVersion: version,
  });
}

function errorTexts(result: NormaliseResult): string[] {
  return result.outcome.issue
    .filter((issue) => issue.severity === 'error' || issue.severity === 'fatal')
    .map((issue) => `${issue.details?.text ?? ''} @ ${(issue.expression ?? []).join(',')}`);
}

function resourcesOf(resource: Resource | undefined): Resource[] {
  if (resource?.resourceType !== 'Bundle') return resource ? [resource] : [];
  return (resource.entry ?? []).flatMap((entry) => (entry.resource ? [entry.resource] : []));
}

const R4_ONLY_ABSENT = ['MedicationOrder', 'DiagnosticOrder', 'ProcedureRequest', 'ReferralRequest'];

describe('legacy corpus -> R4 (every file)', () => {
  const shipped = listJsonFixtures('legacy');
  const shared = HAS_SHARED_VENDOR ? SHARED_VENDOR_FOLDERS.flatMap(sharedVendorFiles) : [];
  const files = [...shipped, ...shared];

  it('has the 34 spec examples and the 11 synthetic vendor-style payloads (no real vendor payload shipped)', () => {
    expect(shipped.filter((file) => /^legacy\/(dstu2|stu3)\//.test(file))).toHaveLength(34);
    expect(shipped.filter((file) => file.startsWith('legacy/vendor-style/'))).toHaveLength(11);
    expect(shipped).toHaveLength(45);
  });

  if (HAS_SHARED_VENDOR) {
    it('reads the 20 Epic and Cerner sandbox payloads of the shared corpus in place', () => {
      expect(shared).toHaveLength(20);
      expect(shared).toContain(
        `${SHARED_PREFIX}legacy/vendor-epic/ExampleFindPractitionersResponseWithDuplicates.json`,
      );
    });
  }

  it.each(files.filter((file) => !(file in EXPECTED_FAILURES)))('%s converts to valid R4', (file) => {
    const result = normalise(file, servedVersion(file));
    expect(errorTexts(result)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(result.sourceVersion).toBe(servedVersion(file));
    for (const resource of resourcesOf(result.output)) {
      expect(R4_ONLY_ABSENT).not.toContain(resource.resourceType);
      expect(JSON.stringify(resource)).not.toContain('fhir_comments');
      expect(JSON.stringify(resource)).not.toMatch(/"http:\/\/hl7\.org\/fhir\/v[23]\//);
    }
  });

  it.each(Object.entries(EXPECTED_FAILURES).filter(([file]) => files.includes(file)))(
    '%s stays invalid, for the known reason only',
    (file, expected) => {
      expect(expected.reason).not.toBe('');
      const result = normalise(file, servedVersion(file));
      const errors = errorTexts(result);
      expect(result.valid).toBe(false);
      expect(errors).toHaveLength(expected.errors.length);
      for (const pattern of expected.errors) expect(errors.some((text) => pattern.test(text))).toBe(true);
    },
  );

  it('hashes ids that the source prefix would push past 64 characters, consistently with fullUrl-free references', () => {
    const result = normalise('legacy/vendor-style/epic-r4-observation-searchset.json', 'R4');
    const ids = resourcesOf(result.output).map((resource) => resource.id ?? '');
    expect(ids.every((id) => id.startsWith('legacy-') && id.length <= 64)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const again = normalise('legacy/vendor-style/epic-r4-observation-searchset.json', 'R4');
    expect(resourcesOf(again.output).map((resource) => resource.id)).toEqual(ids);
  });
});

describe('version detection', () => {
  it.each<[string, SourceFhirVersion]>([
    ['legacy/dstu2/medicationorderexample1.json', 'DSTU2'],
    ['legacy/dstu2/diagnosticorder-example.json', 'DSTU2'],
    ['legacy/dstu2/patient-example.json', 'DSTU2'],
    ['legacy/dstu2/condition-example-f201-fever.json', 'DSTU2'],
    ['legacy/dstu2/allergyintolerance-example.json', 'DSTU2'],
    ['legacy/dstu2/bundle-transaction.json', 'DSTU2'],
    ['legacy/vendor-style/cerner-dstu2-medicationstatement-searchset.json', 'DSTU2'],
    ['legacy/stu3/condition-example.json', 'STU3'],
    ['legacy/stu3/allergyintolerance-example.json', 'STU3'],
    ['legacy/stu3/medicationrequestexample1.json', 'STU3'],
    ['legacy/stu3/procedurerequest-example.json', 'STU3'],
    ['legacy/vendor-style/epic-stu3-medicationstatement-searchset.json', 'STU3'],
    ['legacy/vendor-style/cerner-r4-condition-searchset.json', 'R4'],
    ['legacy/vendor-style/cerner-r4-patient-searchset.json', 'R4'],
    ['legacy/vendor-style/epic-r4-medicationrequest.json', 'R4'],
    ['legacy/vendor-style/epic-r4-patient-searchset-with-outcome.json', 'R4'],
    ...(HAS_SHARED_VENDOR
      ? ([
          [`${SHARED_PREFIX}legacy/vendor-cerner/ExampleMedicationStatementBundle.json`, 'DSTU2'],
          [`${SHARED_PREFIX}legacy/vendor-epic/STU3MedicationStatementBundle.json`, 'STU3'],
          [`${SHARED_PREFIX}legacy/vendor-epic/ExampleConditionBundle.json`, 'R4'],
          [`${SHARED_PREFIX}legacy/vendor-cerner/ExamplePatientBundle.json`, 'R4'],
          [`${SHARED_PREFIX}legacy/vendor-epic/ExampleMedicationRequestById.json`, 'R4'],
        ] satisfies [string, SourceFhirVersion][])
      : []),
  ])('%s reads as %s', (file, version) => {
    expect(detectFhirVersion(readPayload(file) as Record<string, unknown>)).toBe(version);
    expect(normalise(file, undefined, emptyProfile).sourceVersion).toBe(version);
  });

  it('converts a DSTU2 payload without being told its version', () => {
    const result = normalise('legacy/dstu2/medicationorderexample1.json', undefined, emptyProfile);
    expect(result.valid).toBe(true);
    expect(result.output?.resourceType).toBe('MedicationRequest');
  });
});

describe('what the conversion does, element by element', () => {
  it('MedicationOrder -> MedicationRequest', () => {
    const { output, changes } = normalise('legacy/dstu2/medicationorderexample1.json', 'DSTU2', emptyProfile);
    expect(output).toMatchObject({
      resourceType: 'MedicationRequest',
      intent: 'order',
      status: 'active',
      authoredOn: '2015-01-15',
      subject: { reference: 'Patient/f001' },
      requester: { reference: 'Practitioner/f007' },
      reasonCode: [{ coding: [{ system: 'http://snomed.info/sct', code: '65363002' }] }],
      dosageInstruction: [
        {
          timing: { repeat: { frequency: 3, period: 1, periodUnit: 'd' } },
          site: { coding: [{ code: '181220002' }] },
          additionalInstruction: [{ coding: [{ code: '311504000' }] }],
          doseAndRate: [{ doseQuantity: { value: 5, code: 'mL' } }],
        },
      ],
      substitution: { allowedCodeableConcept: { coding: [{ code: 'G' }] } },
    });
    expect(output).not.toHaveProperty('dateWritten');
    expect(output).not.toHaveProperty('prescriber');
    expect(changes).toContainEqual({
      op: 'replace',
      path: 'MedicationOrder.resourceType',
      before: 'MedicationOrder',
      after: 'MedicationRequest',
    });
  });

  it('DiagnosticOrder -> ServiceRequest (status, requester, code, authoredOn from the requested event)', () => {
    const { output, outcome } = normalise('legacy/dstu2/diagnosticorder-example.json', 'DSTU2', emptyProfile);
    expect(output).toMatchObject({
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      requester: { reference: 'Practitioner/example' },
      code: { text: 'Lipid Panel' },
      specimen: [{ reference: 'Specimen/101' }],
      authoredOn: '2013-05-02T16:16:00-07:00',
      supportingInfo: [{ reference: '#fasting' }],
      identifier: [
        { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PLAC' }] } },
      ],
    });
    expect(outcome.issue).toContainEqual(
      expect.objectContaining({ severity: 'information', expression: ['DiagnosticOrder.event'] }),
    );
  });

  it('DSTU2 AllergyIntolerance: status split into clinical and verification status, substance -> code', () => {
    const { output } = normalise('legacy/dstu2/allergyintolerance-example.json', 'DSTU2', emptyProfile);
    expect(output).toMatchObject({
      code: { coding: [{ code: '227493005' }] },
      clinicalStatus: { coding: [{ code: 'active' }] },
      verificationStatus: { coding: [{ code: 'confirmed' }] },
      criticality: 'high',
      category: ['food'],
      lastOccurrence: '2012-06',
    });
  });

  it('DSTU2 Condition: patient -> subject, code statuses -> CodeableConcepts', () => {
    const { output } = normalise('legacy/dstu2/condition-example-f201-fever.json', 'DSTU2', emptyProfile);
    expect(output).toMatchObject({
      subject: { reference: 'Patient/f201' },
      recordedDate: '2013-04-04',
      clinicalStatus: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
      },
      verificationStatus: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }],
      },
    });
    expect(Array.isArray((output as { category?: unknown }).category)).toBe(true);
  });

  it('DSTU2 Patient: family name parts joined, comments dropped, birthTime extension kept', () => {
    const { output } = normalise('legacy/dstu2/patient-example.json', 'DSTU2', emptyProfile);
    expect(output).toMatchObject({
      name: [{ family: 'Chalmers', given: ['Peter', 'James'] }, { given: ['Jim'] }],
      _birthDate: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime' }] },
    });
    expect(output).not.toHaveProperty('_gender');
  });

  it('DSTU2 Immunization: date, wasNotGiven, reported, performer/requester, vaccinationProtocol', () => {
    const given = normalise('legacy/dstu2/immunization-example.json', 'DSTU2', emptyProfile).output;
    expect(given).toMatchObject({
      status: 'completed',
      occurrenceDateTime: '2013-01-10',
      primarySource: true,
      performer: [
        { function: { coding: [{ code: 'AP' }] }, actor: { reference: 'Practitioner/example' } },
        { function: { coding: [{ code: 'OP' }] } },
      ],
      protocolApplied: [{ doseNumberPositiveInt: 1, seriesDosesPositiveInt: 2 }],
    });
    const refused = normalise('legacy/dstu2/immunization-example-refused.json', 'DSTU2', emptyProfile).output;
    expect(refused).toMatchObject({ status: 'not-done', statusReason: { coding: [{ code: 'MEDPREC' }] } });
  });

  it('STU3 MedicationRequest: requester.agent -> requester, context -> encounter, dose -> doseAndRate', () => {
    const { output } = normalise('legacy/stu3/medicationrequestexample1.json', 'STU3', emptyProfile);
    expect(output).toMatchObject({
      requester: { reference: 'Practitioner/f007' },
      encounter: { reference: 'Encounter/f001' },
      dosageInstruction: [{ doseAndRate: [{}] }],
    });
    expect(output).not.toHaveProperty('context');
  });

  it('STU3 ReferralRequest -> ServiceRequest', () => {
    const { output } = normalise('legacy/stu3/referralrequest-example.json', 'STU3', emptyProfile);
    expect(output).toMatchObject({
      resourceType: 'ServiceRequest',
      code: { coding: [{ code: '103696004' }] },
      performer: [{ display: 'Dr Dave' }],
      requisition: { value: '1234' },
      performerType: { coding: [{ code: 'ent' }] },
    });
  });

  it('DSTU2 Encounter: class code -> ActCode Coding, patient -> subject, reason -> reasonCode', () => {
    const { output } = normalise('legacy/dstu2/encounter-example-f001-heart.json', 'DSTU2', emptyProfile);
    expect(output).toMatchObject({
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: 'Patient/f001' },
      reasonCode: [{ coding: [{ code: '34068001' }] }],
    });
  });

  it('Cerner DSTU2 MedicationStatement: patient -> subject, wasNotTaken dropped, Cerner extensions kept', () => {
    const { output } = normalise(
      'legacy/vendor-style/cerner-dstu2-medicationstatement-searchset.json',
      'DSTU2',
      emptyProfile,
    );
    const [statement] = resourcesOf(output);
    expect(statement).toMatchObject({
      resourceType: 'MedicationStatement',
      status: 'active',
      subject: { reference: 'Patient/90000001' },
      extension: [
        { url: 'https://fhir-ehr.cerner.com/dstu2/StructureDefinition/medication-statement-category' },
      ],
      dosage: [
        {
          _text: {
            extension: [
              { url: 'https://fhir-ehr.cerner.com/dstu2/StructureDefinition/patient-friendly-display' },
            ],
          },
          doseAndRate: [{ doseQuantity: { value: 1, unit: 'tablet' } }],
        },
      ],
    });
    expect(statement).not.toHaveProperty('patient');
    expect(statement).not.toHaveProperty('wasNotTaken');
  });

  it("Epic STU3 MedicationStatement: taken 'n' -> status not-taken, reasonNotTaken -> statusReason", () => {
    const { output } = normalise(
      'legacy/vendor-style/epic-stu3-medicationstatement-searchset.json',
      'STU3',
      emptyProfile,
    );
    const [notTaken, taken] = resourcesOf(output);
    expect(notTaken).toMatchObject({ status: 'not-taken', statusReason: [{ text: 'Synthetic reason' }] });
    expect(taken).toMatchObject({ status: 'active' });
    for (const statement of [notTaken, taken]) {
      expect(statement).not.toHaveProperty('taken');
      expect(statement).not.toHaveProperty('reasonNotTaken');
    }
  });

  it('Epic searchset: the OperationOutcome entry (search.mode outcome) and padded identifier values stay as sent', () => {
    const { output, valid } = normalise(
      'legacy/vendor-style/epic-r4-patient-searchset-with-outcome.json',
      'R4',
      emptyProfile,
    );
    expect(valid).toBe(true);
    expect(output).toMatchObject({
      entry: [
        { resource: { resourceType: 'Patient' }, search: { mode: 'match' } },
        { resource: { resourceType: 'OperationOutcome' }, search: { mode: 'outcome' } },
      ],
    });
    const [patient] = resourcesOf(output);
    expect(patient?.resourceType === 'Patient' ? patient.identifier : undefined).toContainEqual({
      use: 'usual',
      type: { text: 'MRN' },
      system: 'urn:oid:1.2.840.114350.1.13.99999.1.7.5.999999.1',
      value: '     F0001',
    });
  });

  it('does not change the input', () => {
    const input = readJsonFixture('legacy/dstu2/medicationorderexample1.json') as Resource;
    const before = JSON.stringify(input);
    normaliseResource(legacyProfile, input, { sourceId: 'legacy', fhirVersion: 'DSTU2' });
    expect(JSON.stringify(input)).toBe(before);
  });
});
