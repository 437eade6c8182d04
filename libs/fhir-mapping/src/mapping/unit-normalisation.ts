import { isRecord, type JsonRecord } from '../json-value';
import { outcomeIssue } from '../operation-outcome';
import type { CompiledStage, StageRun } from './mapping-stage';
import type { UnitConversionRule, UnitNormalisationStep } from './mapping-profile.types';
import { convertUnit, roundLike, UCUM_DISPLAY, UCUM_SYSTEM, ucumCodeOf } from './ucum-units';

/**
 * Normalises Quantities (any object with a numeric `value` and a `unit` or `code`) to UCUM, then
 * converts values where a rule asks. A rule with `code` applies to Quantities under an element
 * whose `code` CodeableConcept has a coding with that code (Observation.code, component.code);
 * referenceRange bounds follow their Observation or component.
 */
export function compileUnitNormalisation(step: UnitNormalisationStep): CompiledStage {
  const extra = new Map(
    Object.entries(step.units ?? {}).map(([unit, code]) => [unit.trim().toLowerCase(), code]),
  );
  const rules = step.convert ?? [];
  return {
    kind: 'unitNormalisation',
    apply(resource, path, run) {
      visit(resource, path, [], { extra, rules, run });
      return resource;
    },
  };
}

interface UnitWalk {
  readonly extra: ReadonlyMap<string, string>;
  readonly rules: readonly UnitConversionRule[];
  readonly run: StageRun;
}

function visit(value: unknown, path: string, codes: readonly string[], walk: UnitWalk): void {
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++)
      visit(value[index] as unknown, `${path}[${index}]`, codes, walk);
    return;
  }
  if (!isRecord(value)) return;
  const own = codesOf(value.code);
  const context = own.length > 0 ? own : codes;
  if (typeof value.value === 'number' && (typeof value.unit === 'string' || typeof value.code === 'string')) {
    normaliseQuantity(value, path, context, walk);
    return;
  }
  for (const key in value) {
    const child = value[key];
    if (child !== null && typeof child === 'object') visit(child, `${path}.${key}`, context, walk);
  }
}

function codesOf(code: unknown): string[] {
  if (!isRecord(code) || !Array.isArray(code.coding)) return [];
  const codes: string[] = [];
  for (const coding of code.coding as unknown[]) {
    if (isRecord(coding) && typeof coding.code === 'string') codes.push(coding.code);
  }
  return codes;
}

function normaliseQuantity(
  quantity: JsonRecord,
  path: string,
  codes: readonly string[],
  walk: UnitWalk,
): void {
  let ucum: string | undefined;
  if (quantity.system === UCUM_SYSTEM && typeof quantity.code === 'string') {
    ucum = quantity.code;
  } else {
    const text = typeof quantity.unit === 'string' ? quantity.unit : (quantity.code as string | undefined);
    ucum = text === undefined ? undefined : ucumCodeOf(text, walk.extra);
    if (ucum === undefined && typeof quantity.code === 'string' && quantity.code !== text) {
      ucum = ucumCodeOf(quantity.code, walk.extra);
    }
    if (ucum === undefined) return;
    quantity.system = UCUM_SYSTEM;
    quantity.code = ucum;
  }
  const value = quantity.value as number;
  let unconvertible = false;
  for (const rule of walk.rules) {
    if (rule.code !== undefined && !codes.includes(rule.code)) continue;
    if (rule.to === ucum) return;
    const converted = convertUnit(value, ucum, rule.to, rule.molarMass);
    if (converted === undefined) {
      unconvertible ||= rule.code !== undefined;
      continue;
    }
    quantity.value = roundLike(converted, value);
    quantity.code = rule.to;
    quantity.unit = UCUM_DISPLAY[rule.to] ?? rule.to;
    return;
  }
  if (unconvertible) {
    walk.run.issues.push(
      outcomeIssue({
        severity: 'warning',
        code: 'processing',
        text: 'The quantity unit cannot be converted to the unit the profile asks for',
        expression: `${path}.code`,
      }),
    );
  }
}
