import type { AuditEvent, AuditEventEntity } from '@medplum/fhirtypes';
import { PURPOSE_OF_USE_SYSTEM, type PurposeOfUse } from './consent-policy';

/** How a read by a recipient ended: the resource was returned, or consent refused it. */
export type AccessOutcome = 'delivered' | 'denied';

export interface AccessAuditInput {
  readonly id: string;
  /** ISO 8601 instant. */
  readonly recorded: string;
  readonly outcome: AccessOutcome;
  /** `read` (GET by id) or `search-type` (search by patient). */
  readonly interaction: 'read' | 'search-type';
  /** Plain-English reason without PHI, e.g. `permitted-by-consent`. */
  readonly reason: string;
  readonly purpose: PurposeOfUse;
  /** `Type/id/_history/version` of what was (or would have been) returned. */
  readonly resource: string;
  /** `Patient/<id>` the data is about, when known. */
  readonly patient?: string;
  /** `Consent/<id>` that decided, when one did. */
  readonly consent?: string;
  /** The search query (`Type?patient=…`) for a search. */
  readonly query?: string;
  readonly bridge: { readonly system: string; readonly value: string };
  /** The reading organisation (`Organization/<id>`) and the credential it used (`destination:<id>`, `jwt:<sub>`). */
  readonly recipient: { readonly organisation: string; readonly credential: string };
}

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';

/**
 * An R4 AuditEvent for one resource a recipient read (or was refused), shaped after the IHE Basic
 * Audit Log Patterns (BALP) RESTful "Read" and "Query" patterns: type `rest`, subtype the FHIR
 * interaction (`read`, action R; `search-type`, action E), the recipient organisation as client
 * agent (DCM 110153, requestor) and the bridge as server agent (DCM 110152) and observer, the
 * patient as entity (role 1), the resource as domain entity (role 4), the query (role 24) for a
 * search, the consent, and the purpose of use. A denial is outcome 4 (minor failure).
 */
export function buildAccessAuditEvent(input: AccessAuditInput): AuditEvent {
  const entity: AuditEventEntity[] = [];
  if (input.patient) {
    entity.push({
      what: { reference: input.patient },
      type: { system: ENTITY_TYPE, code: '1' },
      role: { system: OBJECT_ROLE, code: '1' },
    });
  }
  entity.push({
    what: { reference: input.resource },
    type: { system: ENTITY_TYPE, code: '2' },
    role: { system: OBJECT_ROLE, code: '4' },
  });
  if (input.query) {
    entity.push({
      type: { system: ENTITY_TYPE, code: '2' },
      role: { system: OBJECT_ROLE, code: '24' },
      query: Buffer.from(input.query, 'utf8').toString('base64'),
    });
  }
  if (input.consent) {
    entity.push({
      what: { reference: input.consent },
      type: { system: 'http://hl7.org/fhir/resource-types', code: 'Consent' },
    });
  }
  return {
    resourceType: 'AuditEvent',
    id: input.id,
    type: {
      system: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
      code: 'rest',
      display: 'Restful Operation',
    },
    subtype: [
      {
        system: 'http://hl7.org/fhir/restful-interaction',
        code: input.interaction,
        display: input.interaction,
      },
    ],
    action: input.interaction === 'read' ? 'R' : 'E',
    recorded: input.recorded,
    outcome: input.outcome === 'delivered' ? '0' : '4',
    outcomeDesc: `${input.outcome}: ${input.reason}`,
    purposeOfEvent: [{ coding: [{ system: PURPOSE_OF_USE_SYSTEM, code: input.purpose }] }],
    agent: [
      {
        type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
        who: { reference: input.recipient.organisation },
        altId: input.recipient.credential,
        requestor: true,
      },
      {
        type: { coding: [{ system: DCM, code: '110152', display: 'Destination Role ID' }] },
        who: { identifier: input.bridge },
        requestor: false,
      },
    ],
    source: {
      observer: { identifier: input.bridge },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4' }],
    },
    entity,
  };
}
