import type { Coding, Identifier, Organization, Provenance, Reference } from '@medplum/fhirtypes';

import { isFhirId, isResourceTypeName } from './resource-reference';

/** http://terminology.hl7.org/CodeSystem/v3-DataOperation */
export const DATA_OPERATION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-DataOperation';
/** http://terminology.hl7.org/CodeSystem/provenance-participant-type */
export const PARTICIPANT_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type';

/** What the bridge did to the target, as a Provenance activity. */
export type ProvenanceActivity = 'create' | 'update' | 'delete';

/** Codes and displays exactly as in the v3-DataOperation code system (UPDATE's display is "revise"). */
const ACTIVITY_CODINGS: Readonly<Record<ProvenanceActivity, Coding>> = {
  create: { system: DATA_OPERATION_SYSTEM, code: 'CREATE', display: 'create' },
  update: { system: DATA_OPERATION_SYSTEM, code: 'UPDATE', display: 'revise' },
  delete: { system: DATA_OPERATION_SYSTEM, code: 'DELETE', display: 'delete' },
};

const CUSTODIAN: Coding = { system: PARTICIPANT_TYPE_SYSTEM, code: 'custodian', display: 'Custodian' };
const ASSEMBLER: Coding = { system: PARTICIPANT_TYPE_SYSTEM, code: 'assembler', display: 'Assembler' };

/** FHIR `instant`: a full date-time with seconds and a time zone. */
const INSTANT =
  /^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$/;

/** Input of {@link buildProvenance}. */
export interface ProvenanceInput {
  /** Id of the Provenance itself. */
  id: string;
  /** When the bridge recorded the change (FHIR instant, or a Date). */
  recorded: string | Date;
  /** The resource version this Provenance is about. */
  target: { resourceType: string; id: string; versionId: string };
  activity: ProvenanceActivity;
  /** The organisation that sent the data (the custodian at the source). At least one field. */
  sourceOrganisation: { reference?: string; identifier?: Identifier; display?: string };
  /**
   * The resource's address at the source, e.g. `https://ehr.example/fhir/Patient/1/_history/3`,
   * or the notification Bundle entry's `fullUrl`; or, for a source whose FHIR base is unknown, a
   * logical reference (an identifier naming the source's `{Type}/{id}`), never a relative
   * reference that would point into this server.
   */
  sourceEntity: string | Reference;
  /** The bridge instance that assembled the normalised version. */
  bridge: { identifier: Identifier; display: string };
  /**
   * `Provenance.policy`: URIs of the rules the resource was produced under — here the mapping
   * profile version, `urn:fhir-trail:mapping-profile:{id}|{version}`.
   */
  policy?: readonly string[];
}

/**
 * Builds the R4 Provenance for one normalised resource version:
 * - `target`: `{Type}/{id}/_history/{versionId}`;
 * - `activity`: v3-DataOperation CREATE / UPDATE / DELETE;
 * - `agent[0]`: the source organisation, type `custodian`;
 * - `agent[1]`: the bridge (a Device), type `assembler`;
 * - `entity[0]`: role `source`, `what` = the address at the source;
 * - `policy`: as given (the mapping profile version), omitted when empty.
 *
 * @throws TypeError for malformed input (bad ids, a `recorded` that is not an instant, an empty
 * source organisation). Messages name the field, not its value.
 */
export function buildProvenance(input: ProvenanceInput): Provenance {
  const { target } = input;
  if (!isFhirId(input.id)) throw new TypeError('buildProvenance: id is not a valid FHIR id');
  if (!isResourceTypeName(target.resourceType)) {
    throw new TypeError('buildProvenance: target.resourceType is not a resource type name');
  }
  if (!isFhirId(target.id)) throw new TypeError('buildProvenance: target.id is not a valid FHIR id');
  if (!isFhirId(target.versionId))
    throw new TypeError('buildProvenance: target.versionId is not a valid FHIR id');
  if (!Object.hasOwn(ACTIVITY_CODINGS, input.activity)) {
    throw new TypeError('buildProvenance: activity must be create, update or delete');
  }
  const what: Reference =
    typeof input.sourceEntity === 'string' ? { reference: input.sourceEntity } : { ...input.sourceEntity };
  if (!what.reference && !what.identifier?.value)
    throw new TypeError('buildProvenance: sourceEntity is empty');

  return {
    resourceType: 'Provenance',
    id: input.id,
    target: [{ reference: `${target.resourceType}/${target.id}/_history/${target.versionId}` }],
    recorded: toInstant(input.recorded),
    activity: { coding: [{ ...ACTIVITY_CODINGS[input.activity] }] },
    agent: [
      { type: { coding: [{ ...CUSTODIAN }] }, who: organisationReference(input.sourceOrganisation) },
      {
        type: { coding: [{ ...ASSEMBLER }] },
        who: { type: 'Device', identifier: { ...input.bridge.identifier }, display: input.bridge.display },
      },
    ],
    entity: [{ role: 'source', what }],
    ...(input.policy && input.policy.length > 0 ? { policy: [...input.policy] } : {}),
  };
}

function toInstant(recorded: string | Date): string {
  if (recorded instanceof Date) {
    if (Number.isNaN(recorded.getTime())) throw new TypeError('buildProvenance: recorded is an invalid Date');
    return recorded.toISOString();
  }
  if (!INSTANT.test(recorded)) {
    throw new TypeError(
      'buildProvenance: recorded must be a FHIR instant (date, time with seconds, and zone)',
    );
  }
  return recorded;
}

function organisationReference(source: ProvenanceInput['sourceOrganisation']): Reference<Organization> {
  const who: Reference<Organization> = { type: 'Organization' };
  if (source.reference !== undefined && source.reference !== '') who.reference = source.reference;
  if (source.identifier !== undefined) who.identifier = { ...source.identifier };
  if (source.display !== undefined && source.display !== '') who.display = source.display;
  if (who.reference === undefined && who.identifier === undefined && who.display === undefined) {
    throw new TypeError('buildProvenance: sourceOrganisation needs a reference, an identifier or a display');
  }
  return who;
}
