import { isRecord, type JsonRecord } from '../json-value';
import type { CompiledStage } from './mapping-stage';
import type { MetaStampStep } from './mapping-profile.types';

/** `{sourceId}` in a template becomes the run's source id. */
export function fillSourceId(template: string, sourceId: string): string {
  return template.replaceAll('{sourceId}', sourceId);
}

/** Stamps meta.source, adds meta.tag and meta.profile entries that are not there yet. */
export function compileMetaStamp(step: MetaStampStep): CompiledStage {
  const tags = step.tags ?? [];
  const profiles = step.profiles ?? {};
  return {
    kind: 'metaStamp',
    apply(resource, _path, run) {
      const meta: JsonRecord = isRecord(resource.meta) ? resource.meta : {};
      if (step.source !== undefined) meta.source = fillSourceId(step.source, run.sourceId);
      if (tags.length > 0) {
        const existing = Array.isArray(meta.tag) ? (meta.tag as unknown[]) : [];
        for (const tag of tags) {
          const present = existing.some(
            (item) => isRecord(item) && item.system === tag.system && item.code === tag.code,
          );
          if (!present) existing.push({ ...tag });
        }
        meta.tag = existing;
      }
      const wanted = [...(profiles['*'] ?? []), ...(profiles[String(resource.resourceType)] ?? [])];
      if (wanted.length > 0) {
        const existing = Array.isArray(meta.profile) ? (meta.profile as unknown[]) : [];
        for (const profile of wanted) if (!existing.includes(profile)) existing.push(profile);
        meta.profile = existing;
      }
      if (Object.keys(meta).length > 0) resource.meta = meta;
      return resource;
    },
  };
}
