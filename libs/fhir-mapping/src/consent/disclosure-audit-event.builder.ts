import type { AuditEvent } from '@medplum/fhirtypes';
import { PURPOSE_OF_USE_SYSTEM, type PurposeOfUse } from './consent-policy';

/** How a disclosure ended. */
export type DisclosureOutcome = 'delivered' | 'denied' | 'failed';

export interface DisclosureAuditInput {
  readonly id: string;
  /** ISO 8601 instant. */
  readonly recorded: string;
  readonly outcome: DisclosureOutcome;
  /** Plain-English reason without PHI, e.g. `permitted-by-consent`. */
  readonly reason: string;
  readonly purpose: PurposeOfUse;
  /** `Type/id/_history/version` of what was (or would have been) disclosed. */
  readonly resource: string;
  /** `Patient/<id>` the data is about, when known. */
  readonly patient?: string;
  /** `Consent/<id>` that decided, when one did. */
  readonly consent?: string;
  readonly bridge: { readonly system: string; readonly value: string };
  /** The receiving organisation (`Organization/<id>`) and the endpoint it was sent to. */
  readonly recipient: { readonly organisation: string; readonly endpoint: string };
}

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const OUTCOME_CODE: Record<DisclosureOutcome, AuditEvent['outcome']> = {
  delivered: '0',
  denied: '4',
  failed: '8',
};

/**
 * An R4 AuditEvent for one disclosure decision, shaped after the IHE Basic Audit Log Patterns
 * (BALP) "Export" pattern: type DCM 110106 Export, subtype the RESTful interaction, the bridge as
 * source agent (DCM 110153) and the recipient organisation as destination agent (DCM 110152), the
 * patient as entity (role 1) and the disclosed resource as domain entity (role 4), the consent as a
 * further entity, and the purpose of use. A denial is outcome 4 (minor failure), a delivery that
 * failed after its retries 8.
 */
export function buildDisclosureAuditEvent(input: DisclosureAuditInput): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id: input.id,
    type: { system: DCM, code: '110106', display: 'Export' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'update', display: 'update' }],
    action: 'U',
    recorded: input.recorded,
    outcome: OUTCOME_CODE[input.outcome],
    outcomeDesc: `${input.outcome}: ${input.reason}`,
    purposeOfEvent: [{ coding: [{ system: PURPOSE_OF_USE_SYSTEM, code: input.purpose }] }],
    agent: [
      {
        type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
        who: { identifier: input.bridge },
        requestor: true,
      },
      {
        type: { coding: [{ system: DCM, code: '110152', display: 'Destination Role ID' }] },
        who: { reference: input.recipient.organisation },
        requestor: false,
        network: { address: input.recipient.endpoint, type: '5' },
      },
    ],
    source: {
      observer: { identifier: input.bridge },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4' }],
    },
    entity: [
      ...(input.patient
        ? [
            {
              what: { reference: input.patient },
              type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1' },
              role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' },
            },
          ]
        : []),
      {
        what: { reference: input.resource },
        type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2' },
        role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '4' },
      },
      ...(input.consent
        ? [
            {
              what: { reference: input.consent },
              type: { system: 'http://hl7.org/fhir/resource-types', code: 'Consent' },
            },
          ]
        : []),
    ],
  };
}
