import { isRecord } from '../json-value';
import type { CompiledStage } from './mapping-stage';
import type { ExtensionRulesStep } from './mapping-profile.types';
import { visitObjects } from './resource-walk';

const EXTENSION_KEYS = ['extension', 'modifierExtension'] as const;

/** Drops and renames extensions by url, at any depth (primitive `_element` extensions too). */
export function compileExtensionRules(step: ExtensionRulesStep): CompiledStage {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const url of step.drop ?? []) {
    if (url.endsWith('*')) prefixes.push(url.slice(0, -1));
    else exact.add(url);
  }
  const rename = new Map(Object.entries(step.rename ?? {}));
  const dropped = (url: unknown): boolean =>
    typeof url === 'string' && (exact.has(url) || prefixes.some((prefix) => url.startsWith(prefix)));

  return {
    kind: 'extensionRules',
    apply(resource) {
      visitObjects(resource, (object) => {
        for (const key of EXTENSION_KEYS) {
          const list = object[key];
          if (!Array.isArray(list)) continue;
          const kept = (list as unknown[]).filter(
            (extension) => !(isRecord(extension) && dropped(extension.url)),
          );
          for (const extension of kept) {
            if (!isRecord(extension) || typeof extension.url !== 'string') continue;
            const renamed = rename.get(extension.url);
            if (renamed !== undefined) extension.url = renamed;
          }
          if (kept.length === 0) delete object[key];
          else if (kept.length !== list.length) object[key] = kept;
        }
      });
      return resource;
    },
  };
}
