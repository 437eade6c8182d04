/** Narrowing helpers for already-parsed JSON of unknown shape. Internal to this library. */

export type JsonRecord = Record<string, unknown>;

export function isRecord(value: unknown): value is JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function stringField(record: JsonRecord, key: string): string | undefined {
  const value = record[key];
  return typeof value === 'string' ? value : undefined;
}

export function recordField(record: JsonRecord, key: string): JsonRecord | undefined {
  const value = record[key];
  return isRecord(value) ? value : undefined;
}

/** The array at `key`, or undefined when absent; `null` and non-arrays come back as `'invalid'`. */
export function arrayField(record: JsonRecord, key: string): readonly unknown[] | undefined | 'invalid' {
  const value = record[key];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? (value as readonly unknown[]) : 'invalid';
}
