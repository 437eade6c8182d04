import type { CompiledStage } from './mapping-stage';
import type { SystemRewriteStep } from './mapping-profile.types';
import { visitObjects } from './resource-walk';

/**
 * Rewrites identifier and coding systems (exact match first, then the longest matching prefix
 * rule), optionally trimming identifier values. An object with `system` and `code` is a coding
 * (Coding, Quantity); one with `system` and `value` and no `code` is an identifier.
 */
export function compileSystemRewrite(step: SystemRewriteStep): CompiledStage {
  const exact = new Map<string, string>();
  const prefixes: [string, string][] = [];
  for (const [from, to] of Object.entries(step.systems)) {
    if (from.endsWith('*')) prefixes.push([from.slice(0, -1), to]);
    else exact.set(from, to);
  }
  prefixes.sort((a, b) => b[0].length - a[0].length);
  const applyTo = new Set(step.applyTo ?? ['identifier', 'coding']);
  const trim = step.trimIdentifierValues === true;
  const rewrite = (system: string): string | undefined =>
    exact.get(system) ?? prefixes.find(([prefix]) => system.startsWith(prefix))?.[1];

  return {
    kind: 'systemRewrite',
    apply(resource) {
      visitObjects(resource, (object) => {
        const isCoding = 'code' in object;
        const isIdentifier = !isCoding && 'value' in object && typeof object.value !== 'number';
        if (isIdentifier && trim && typeof object.value === 'string') {
          const trimmed = object.value.trim();
          if (trimmed !== object.value && trimmed !== '') object.value = trimmed;
        }
        if (typeof object.system !== 'string') return;
        if ((isCoding && applyTo.has('coding')) || (isIdentifier && applyTo.has('identifier'))) {
          const next = rewrite(object.system);
          if (next !== undefined) object.system = next;
        }
      });
      return resource;
    },
  };
}
