import type { ConceptMap, OperationOutcomeIssue } from '@medplum/fhirtypes';

import { FhirRequestError, outcomeIssue } from '../operation-outcome';
import { shippedConceptMap } from './concept-map-translator';
import { compileConceptMapStep } from './concept-map.stage';
import { compileExtensionRules } from './extension-rules';
import type { CompiledStage } from './mapping-stage';
import { orderedSteps } from './mapping-profile.parser';
import type {
  CompiledMappingProfile,
  MappingProfileDocument,
  MappingStep,
  ValidationStep,
} from './mapping-profile.types';
import { compileMetaStamp } from './meta-stamp';
import { compileReferenceRewrite } from './reference-rewrite';
import { compileStructureMapStep } from './structure-map.stage';
import { compileSystemRewrite } from './system-rewrite';
import { compileUnitNormalisation } from './unit-normalisation';
import { ProfileRegistry } from './profile-registry';

/** Validation settings of a compiled profile. */
export interface CompiledValidation {
  readonly requiredBindings: boolean;
  readonly metaProfiles: boolean;
  /** Resource type (or `*`) -> profile canonicals to validate against. */
  readonly profiles: ReadonlyMap<string, readonly string[]>;
  readonly registry: ProfileRegistry;
}

/** The compiled profile: what {@link normaliseResource} runs. */
export class CompiledProfile implements CompiledMappingProfile {
  constructor(
    readonly document: MappingProfileDocument,
    readonly stages: readonly CompiledStage[],
    readonly validation: CompiledValidation,
  ) {}
}

/**
 * Compiles a parsed profile once: FML parsed, ConceptMaps resolved and indexed (inline ones, those
 * listed by structureMap steps, and the FHIR spec's shipped maps), profile StructureDefinitions
 * loaded. Compile a profile when it is activated and reuse the result for every resource.
 *
 * @throws FhirRequestError 400 with one issue per failing step (`steps[i]...`).
 */
export function compileMappingProfile(doc: MappingProfileDocument): CompiledMappingProfile {
  const issues: OperationOutcomeIssue[] = [];
  const profileMaps = new Map<string, ConceptMap>();
  for (const step of doc.steps) {
    if (step.kind === 'structureMap')
      for (const map of step.conceptMaps ?? []) if (map.url) profileMaps.set(map.url, map);
    if (step.kind === 'conceptMap' && step.conceptMap?.url)
      profileMaps.set(step.conceptMap.url, step.conceptMap);
  }
  const lookup = (url: string): ConceptMap | undefined => profileMaps.get(url) ?? shippedConceptMap(url);
  const allMaps = [...profileMaps.values()];

  const stages: CompiledStage[] = [];
  const validationSteps: ValidationStep[] = [];
  const indexOf = new Map<MappingStep, number>(doc.steps.map((step, index) => [step, index]));
  for (const step of orderedSteps(doc.steps)) {
    const where = `steps[${indexOf.get(step) ?? 0}]`;
    try {
      switch (step.kind) {
        case 'structureMap':
          stages.push(compileStructureMapStep(step, allMaps, lookup));
          break;
        case 'conceptMap':
          stages.push(compileConceptMapStep(step, lookup));
          break;
        case 'systemRewrite':
          stages.push(compileSystemRewrite(step));
          break;
        case 'referenceRewrite':
          stages.push(compileReferenceRewrite(step));
          break;
        case 'unitNormalisation':
          stages.push(compileUnitNormalisation(step));
          break;
        case 'extensionRules':
          stages.push(compileExtensionRules(step));
          break;
        case 'metaStamp':
          stages.push(compileMetaStamp(step));
          break;
        case 'validation':
          validationSteps.push(step);
          break;
      }
    } catch (error) {
      issues.push(
        outcomeIssue({
          code: 'invalid',
          text: `The ${step.kind} step does not compile: ${error instanceof Error ? error.message : 'unknown error'}`,
          expression: where,
        }),
      );
    }
  }

  const registry = new ProfileRegistry();
  const profiles = new Map<string, string[]>();
  for (const [index, step] of doc.steps.entries()) {
    if (step.kind !== 'validation') continue;
    for (const [sdIndex, sd] of (step.structureDefinitions ?? []).entries()) {
      const problem = registry.add(sd);
      if (problem) {
        issues.push(
          outcomeIssue({
            code: 'invalid',
            text: problem,
            expression: `steps[${index}].structureDefinitions[${sdIndex}]`,
          }),
        );
      }
    }
    for (const [type, canonicals] of Object.entries(step.profiles ?? {})) {
      for (const canonical of canonicals) {
        if (!registry.resolve(canonical)) {
          issues.push(
            outcomeIssue({
              code: 'not-found',
              text: 'No StructureDefinition with this canonical is loaded or shipped',
              expression: `steps[${index}].profiles['${type}']`,
            }),
          );
        }
      }
      profiles.set(type, [...(profiles.get(type) ?? []), ...canonicals]);
    }
  }
  if (issues.length > 0) throw FhirRequestError.badRequest(issues);

  return new CompiledProfile(doc, stages, {
    requiredBindings: validationSteps.every((step) => step.requiredBindings !== false),
    metaProfiles: validationSteps.every((step) => step.metaProfiles !== false),
    profiles,
    registry,
  });
}
