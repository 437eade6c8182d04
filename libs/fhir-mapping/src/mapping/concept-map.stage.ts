import type { ConceptMap, OperationOutcomeIssue } from '@medplum/fhirtypes';

import { isRecord, type JsonRecord } from '../json-value';
import { outcomeIssue } from '../operation-outcome';
import { ConceptMapTranslator, type TranslationMatch } from './concept-map-translator';
import type { CompiledStage } from './mapping-stage';
import type { ConceptMapStep, UnmappedHandling } from './mapping-profile.types';

/** Finds a ConceptMap by url among the profile's maps and the shipped FHIR maps. */
export type ConceptMapLookup = (url: string) => ConceptMap | undefined;

/** A step's map plus the fallback chain for `other-map`. */
interface TranslationPlan {
  readonly translator: ConceptMapTranslator;
  readonly unmapped: UnmappedHandling | undefined;
  readonly fallback: ConceptMapTranslator | undefined;
  readonly accepted: ReadonlySet<string> | undefined;
}

/** Where one coded value sits, so it can be replaced. */
interface CodedSlot {
  readonly holder: JsonRecord;
  readonly key: string;
  readonly index: number | undefined;
  readonly path: string;
}

/**
 * Compiles a conceptMap step: resolves and indexes the map once.
 *
 * @throws Error with a PHI-free message when a url does not resolve (the compiler turns it into an issue).
 */
export function compileConceptMapStep(step: ConceptMapStep, lookup: ConceptMapLookup): CompiledStage {
  const map = step.conceptMap ?? (step.url === undefined ? undefined : lookup(step.url));
  if (!map) throw new Error('ConceptMap not found');
  const reverse = step.reverse === true;
  let fallback: ConceptMapTranslator | undefined;
  if (step.unmapped?.mode === 'other-map') {
    const other = lookup(step.unmapped.url);
    if (!other) throw new Error('The other-map ConceptMap was not found');
    fallback = new ConceptMapTranslator(other, reverse);
  }
  const plan: TranslationPlan = {
    translator: new ConceptMapTranslator(map, reverse),
    unmapped: step.unmapped,
    fallback,
    accepted: step.equivalences ? new Set(step.equivalences) : undefined,
  };
  const append = step.mode === 'append';
  const paths = step.elements.map((element) => element.split('.'));

  return {
    kind: 'conceptMap',
    apply(resource, path, run) {
      for (const [type, ...segments] of paths) {
        if (type !== resource.resourceType) continue;
        for (const slot of findSlots(resource, segments, path)) translateSlot(slot, plan, append, run.issues);
      }
      return resource;
    },
  };
}

function findSlots(resource: JsonRecord, segments: readonly string[], rootPath: string): CodedSlot[] {
  let holders: { holder: JsonRecord; path: string }[] = [{ holder: resource, path: rootPath }];
  const slots: CodedSlot[] = [];
  for (const [depth, segment] of segments.entries()) {
    const last = depth === segments.length - 1;
    const next: { holder: JsonRecord; path: string }[] = [];
    for (const { holder, path } of holders) {
      for (const key of keysFor(holder, segment)) {
        const value = holder[key];
        const items = Array.isArray(value) ? (value as unknown[]) : [value];
        for (const [index, item] of items.entries()) {
          const itemPath = Array.isArray(value) ? `${path}.${key}[${index}]` : `${path}.${key}`;
          if (last)
            slots.push({ holder, key, index: Array.isArray(value) ? index : undefined, path: itemPath });
          else if (isRecord(item)) next.push({ holder: item, path: itemPath });
        }
      }
    }
    holders = next;
  }
  return slots;
}

/** The keys a path segment names: itself, or for a choice (`value[x]`) whichever `valueX` is present. */
function keysFor(holder: JsonRecord, segment: string): string[] {
  if (!segment.endsWith('[x]')) return holder[segment] === undefined ? [] : [segment];
  const name = segment.slice(0, -3);
  return Object.keys(holder).filter((key) => key.startsWith(name) && /^[A-Z]/.test(key.slice(name.length)));
}

function slotValue(slot: CodedSlot): unknown {
  const value = slot.holder[slot.key];
  return slot.index === undefined ? value : (value as unknown[])[slot.index];
}

function translateSlot(
  slot: CodedSlot,
  plan: TranslationPlan,
  append: boolean,
  issues: OperationOutcomeIssue[],
): void {
  const value = slotValue(slot);
  if (typeof value === 'string') {
    const result = translateCode(plan, undefined, value, slot.path, issues);
    if (result !== undefined && result !== 'keep') setSlot(slot, result.code);
    return;
  }
  if (!isRecord(value)) return;
  if (Array.isArray(value.coding)) {
    const codings = value.coding as unknown[];
    const out: unknown[] = [];
    for (const [index, coding] of codings.entries()) {
      out.push(coding);
      if (!isRecord(coding) || typeof coding.code !== 'string') continue;
      const system = typeof coding.system === 'string' ? coding.system : undefined;
      if (!plan.translator.hasSourceSystem(system)) continue;
      const result = translateCode(plan, system, coding.code, `${slot.path}.coding[${index}]`, issues);
      if (result === undefined || result === 'keep') continue;
      const translated = codingOf(result);
      if (append) out.push(translated);
      else out[out.length - 1] = translated;
    }
    value.coding = out;
    return;
  }
  if (typeof value.code === 'string') {
    const system = typeof value.system === 'string' ? value.system : undefined;
    if (!plan.translator.hasSourceSystem(system)) return;
    const result = translateCode(plan, system, value.code, slot.path, issues);
    if (result === undefined || result === 'keep') return;
    setSlot(slot, { ...value, ...codingOf(result) });
  }
}

function setSlot(slot: CodedSlot, next: unknown): void {
  if (slot.index === undefined) slot.holder[slot.key] = next;
  else (slot.holder[slot.key] as unknown[])[slot.index] = next;
}

function codingOf(match: TranslationMatch): JsonRecord {
  const coding: JsonRecord = {};
  if (match.system !== undefined) coding.system = match.system;
  coding.code = match.code;
  if (match.display !== undefined) coding.display = match.display;
  return coding;
}

/**
 * `$translate` one code: the closest accepted match, else the unmapped handling (the step's, else
 * the map's own group.unmapped, else keep the code). `undefined` means a failure was recorded.
 */
function translateCode(
  plan: TranslationPlan,
  system: string | undefined,
  code: string,
  path: string,
  issues: OperationOutcomeIssue[],
): TranslationMatch | 'keep' | undefined {
  const match = firstAccepted(plan, plan.translator.translate(system, code));
  if (match) return match;
  const handling = plan.unmapped;
  if (handling === undefined) return mapUnmapped(plan.translator, system);
  switch (handling.mode) {
    case 'provided':
      return 'keep';
    case 'fixed':
      return {
        system: handling.system,
        code: handling.code,
        display: handling.display,
        equivalence: 'equivalent',
      };
    case 'other-map': {
      const other = plan.fallback ? firstAccepted(plan, plan.fallback.translate(system, code)) : undefined;
      if (other) return other;
      issues.push(unmappedIssue(path, 'Neither the ConceptMap nor its other-map maps this code'));
      return undefined;
    }
    case 'fail':
      issues.push(unmappedIssue(path, 'The ConceptMap has no mapping for this code'));
      return undefined;
  }
}

function firstAccepted(
  plan: TranslationPlan,
  matches: readonly TranslationMatch[],
): TranslationMatch | undefined {
  return plan.accepted ? matches.find((match) => plan.accepted?.has(match.equivalence)) : matches[0];
}

/**
 * The map's own group.unmapped when the step says nothing: `fixed` gives its code in the group's
 * target system; `provided`, `other-map` (maps are not fetched at run time) and none keep the code.
 */
function mapUnmapped(
  translator: ConceptMapTranslator,
  system: string | undefined,
): TranslationMatch | 'keep' {
  const own = translator.unmappedFor(system);
  if (own?.mode !== 'fixed' || own.code === undefined) return 'keep';
  return { system: own.system, code: own.code, display: own.display, equivalence: 'equivalent' };
}

function unmappedIssue(path: string, text: string): OperationOutcomeIssue {
  return outcomeIssue({ code: 'code-invalid', text, expression: path });
}
