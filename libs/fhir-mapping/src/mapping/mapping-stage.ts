import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

import type { JsonRecord } from '../json-value';
import type { MappingStepKind } from './mapping-profile.types';

/** What one normalise call shares with its stages. */
export interface StageRun {
  readonly sourceId: string;
  /** Issues found so far; stages push theirs (never with values from the resource in the text). */
  readonly issues: OperationOutcomeIssue[];
}

/** A compiled step: applies to one resource (a Bundle's entries are visited one by one). */
export interface CompiledStage {
  readonly kind: MappingStepKind;
  /**
   * Changes `resource` in place or returns a new one. `path` is the resource's FHIRPath in the
   * input (`Observation`, `Bundle.entry[2].resource`).
   */
  apply(resource: JsonRecord, path: string, run: StageRun): JsonRecord;
}
