import { isRecord } from '../json-value';
import type { ResourceChange } from './mapping-profile.types';

/**
 * A readable diff between two JSON values: one change per added, removed or replaced leaf or
 * subtree, each with a FHIRPath-like path (`Observation.code.coding[0].system`). Arrays are
 * compared index by index; an element present on one side only is an `add` or `remove` of the
 * whole element.
 */
export function diffResources(before: unknown, after: unknown, rootPath: string): ResourceChange[] {
  const changes: ResourceChange[] = [];
  diffValue(before, after, rootPath, changes);
  return changes;
}

function diffValue(before: unknown, after: unknown, path: string, changes: ResourceChange[]): void {
  if (before === after) return;
  if (Array.isArray(before) && Array.isArray(after)) {
    const length = Math.max(before.length, after.length);
    for (let index = 0; index < length; index++) {
      const itemPath = `${path}[${index}]`;
      if (index >= after.length)
        changes.push({ op: 'remove', path: itemPath, before: before[index] as unknown });
      else if (index >= before.length)
        changes.push({ op: 'add', path: itemPath, after: after[index] as unknown });
      else diffValue(before[index], after[index], itemPath, changes);
    }
    return;
  }
  if (isRecord(before) && isRecord(after)) {
    for (const key of Object.keys(before)) {
      const childPath = `${path}.${key}`;
      if (!(key in after)) changes.push({ op: 'remove', path: childPath, before: before[key] });
      else diffValue(before[key], after[key], childPath, changes);
    }
    for (const key of Object.keys(after)) {
      if (!(key in before)) changes.push({ op: 'add', path: `${path}.${key}`, after: after[key] });
    }
    return;
  }
  changes.push({ op: 'replace', path, before, after });
}
