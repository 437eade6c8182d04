/** FHIR `id` datatype: 1-64 of `A-Z a-z 0-9 - .` (http://hl7.org/fhir/R4/datatypes.html#id). */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** A resource type name as it appears in a reference (shape only; not checked against the definitions). */
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{0,63}$/;

/** `[base/]Type/id[/_history/version]`, where base is anything (a URL or nothing). */
const REFERENCE =
  /^(?:(.+)\/)?([A-Z][A-Za-z]{0,63})\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/;

/** The parts of a literal reference to a resource. */
export interface ResourceAddress {
  resourceType: string;
  id: string;
  /** Set when the reference is version-specific (`/_history/{versionId}`). */
  versionId?: string;
  /** The service base for absolute references, e.g. `https://ehr.example/fhir`. */
  baseUrl?: string;
}

/** True when `value` is a valid FHIR resource id. */
export function isFhirId(value: unknown): value is string {
  return typeof value === 'string' && FHIR_ID.test(value);
}

/** True when `value` has the shape of a resource type name (`Patient`, `Observation`, ...). */
export function isResourceTypeName(value: unknown): value is string {
  return typeof value === 'string' && RESOURCE_TYPE.test(value);
}

/**
 * Splits a literal reference (`Patient/1`, `Patient/1/_history/2`,
 * `https://ehr.example/fhir/Patient/1`) into type, id, version and base.
 *
 * Returns undefined for anything that does not name one resource by type and id: contained
 * references (`#x`), `urn:uuid:` / `urn:oid:` fullUrls, conditional references (`Patient?...`),
 * operation URLs (`Subscription/1/$status`).
 */
export function parseResourceReference(reference: string): ResourceAddress | undefined {
  if (reference.startsWith('#') || reference.startsWith('urn:') || reference.includes('?')) return undefined;
  const match = REFERENCE.exec(reference);
  if (!match) return undefined;
  const [, baseUrl, resourceType, id, versionId] = match;
  if (resourceType === undefined || id === undefined) return undefined;
  const address: ResourceAddress = { resourceType, id };
  if (versionId !== undefined) address.versionId = versionId;
  if (baseUrl !== undefined) address.baseUrl = baseUrl;
  return address;
}
