import { isRecord, type JsonRecord } from '../json-value';

/**
 * A deep copy of parsed JSON (objects, arrays, primitives). About twice as fast as a `for...in`
 * copy and four times faster than structuredClone or a JSON round trip on FHIR resources.
 */
export function cloneJson<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const length = value.length;
    const copy: unknown[] = new Array<unknown>(length);
    for (let index = 0; index < length; index++) copy[index] = cloneJson(value[index] as unknown);
    return copy as T;
  }
  const source = value as JsonRecord;
  const copy: JsonRecord = {};
  const keys = Object.keys(source);
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index];
    copy[key] = cloneJson(source[key]);
  }
  return copy as T;
}

/**
 * Calls `visit` for every JSON object under `value` (itself included), depth first, parents before
 * children, with its FHIRPath-like path. `visit` may change the object's own fields; return
 * `false` to skip its children.
 */
export function forEachObject(
  value: unknown,
  path: string,
  visit: (object: JsonRecord, path: string, key: string) => boolean | void,
  key = '',
): void {
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      forEachObject(value[index] as unknown, `${path}[${index}]`, visit, key);
    }
    return;
  }
  if (!isRecord(value)) return;
  if (visit(value, path, key) === false) return;
  for (const childKey in value) {
    const child = value[childKey];
    if (child !== null && typeof child === 'object')
      forEachObject(child, `${path}.${childKey}`, visit, childKey);
  }
}

/**
 * Calls `visit` for every JSON object under `value` (itself included), parents before children,
 * without building paths (for stages that never report one).
 */
export function visitObjects(value: unknown, visit: (object: JsonRecord) => void): void {
  if (typeof value !== 'object' || value === null) return;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) visitObjects(value[index] as unknown, visit);
    return;
  }
  const object = value as JsonRecord;
  visit(object);
  const keys = Object.keys(object);
  for (let index = 0; index < keys.length; index++) {
    const child = object[keys[index]];
    if (typeof child === 'object' && child !== null) visitObjects(child, visit);
  }
}

/**
 * Runs `apply` on the resources a stage works on: each entry resource of a Bundle (recursively,
 * each with its own path), or the resource itself; contained resources are part of their
 * container. `apply` returns the resource to keep (the same object, changed in place, or a new one).
 */
export function mapTargetResources(
  root: JsonRecord,
  rootPath: string,
  apply: (resource: JsonRecord, path: string) => JsonRecord,
): JsonRecord {
  if (root.resourceType === 'Bundle' && Array.isArray(root.entry)) {
    for (const [index, entry] of (root.entry as unknown[]).entries()) {
      if (isRecord(entry) && isRecord(entry.resource)) {
        entry.resource = mapTargetResources(entry.resource, `${rootPath}.entry[${index}].resource`, apply);
      }
    }
    return root;
  }
  return apply(root, rootPath);
}
