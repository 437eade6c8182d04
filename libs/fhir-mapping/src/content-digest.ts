import { createHmac } from 'node:crypto';

import type { Resource } from '@medplum/fhirtypes';
import canonicalize from 'canonicalize';

import { isRecord } from './json-value';
import { isFhirId, parseResourceReference } from './resource-reference';

/**
 * Minimum key length for keyed digests: RFC 2104 advises keys no shorter than the hash output
 * (32 bytes for SHA-256); a shorter K_patient would weaken every pseudonym derived from it.
 */
export const MIN_DIGEST_KEY_BYTES = 32;

/** Elements that point at the patient a resource is about, in the order they are tried. */
const PATIENT_ELEMENTS = ['subject', 'patient', 'beneficiary', 'individual'] as const;

/** Lone UTF-16 surrogates cannot be encoded as UTF-8; RFC 8785 (via I-JSON) rejects them. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Serialises a JSON value per RFC 8785 (JSON Canonicalization Scheme): sorted keys, no
 * whitespace, ECMAScript number formatting. Equal JSON gives equal bytes, whatever the key order
 * or formatting it arrived in.
 *
 * @throws TypeError for anything that is not plain JSON (undefined, functions, bigint, symbols,
 * NaN/Infinity, class instances such as Date or Buffer, lone surrogates). The message names the
 * JSON path, never the value.
 */
export function canonicalJson(value: unknown): string {
  assertPlainJson(value, '$');
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('canonicalJson: value is not JSON');
  return text;
}

/**
 * `0x` + hex HMAC-SHA-256(key, UTF-8 of canonicalJson(value)): a digest only the key holder can
 * recompute, so it can be published without turning into a dictionary-attackable hash of clinical
 * data. With K_patient as the key, destroying the key makes every digest meaningless
 * (crypto-shredding).
 */
export function keyedDigest(key: Uint8Array, value: unknown): string {
  if (key.length < MIN_DIGEST_KEY_BYTES) {
    throw new RangeError(`keyedDigest: key must be at least ${MIN_DIGEST_KEY_BYTES} bytes`);
  }
  return `0x${createHmac('sha256', key).update(canonicalJson(value), 'utf8').digest('hex')}`;
}

/**
 * The pseudonym of a patient: {@link keyedDigest} over the reference `Patient/{id}` as a JSON
 * string, i.e. HMAC-SHA-256(key, `"Patient/{id}"` with the quotes). Absolute and version-specific
 * references are reduced to `Patient/{id}` first, so every form of one reference gives one pseudonym.
 *
 * @throws TypeError when the reference does not point at a Patient by id.
 */
export function patientPseudonym(key: Uint8Array, patientReference: string): string {
  const address = parseResourceReference(patientReference);
  if (address?.resourceType !== 'Patient') {
    throw new TypeError('patientPseudonym: not a Patient/{id} reference');
  }
  return keyedDigest(key, `Patient/${address.id}`);
}

/**
 * The patient a resource is about, as `Patient/{id}`:
 * - a Patient with an id gives its own reference;
 * - otherwise the first of `subject`, `patient`, `beneficiary`, `individual` whose literal
 *   reference points at a Patient (absolute and versioned references are reduced to `Patient/{id}`).
 *
 * Undefined when there is none, or when it is a Group, a contained (`#x`), `urn:uuid:`,
 * conditional or identifier-only reference.
 */
export function patientReferenceOf(resource: Resource): string | undefined {
  const record: unknown = resource;
  if (!isRecord(record)) return undefined;
  if (record.resourceType === 'Patient') {
    return isFhirId(record.id) ? `Patient/${record.id}` : undefined;
  }
  for (const element of PATIENT_ELEMENTS) {
    const value = record[element];
    if (!isRecord(value) || typeof value.reference !== 'string') continue;
    const address = parseResourceReference(value.reference);
    if (address?.resourceType === 'Patient') return `Patient/${address.id}`;
  }
  return undefined;
}

function assertPlainJson(value: unknown, path: string): void {
  switch (typeof value) {
    case 'string':
      if (LONE_SURROGATE.test(value))
        throw new TypeError(`canonicalJson: lone surrogate in string at ${path}`);
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: non-finite number at ${path}`);
      return;
    case 'object': {
      if (value === null) return;
      if (Array.isArray(value)) {
        for (const [index, item] of (value as readonly unknown[]).entries())
          assertPlainJson(item, `${path}[${index}]`);
        return;
      }
      // A plain object's prototype is null or an Object.prototype (of any realm: jest and vm
      // contexts have their own); Date, Buffer, Map and class instances have a longer chain.
      const prototype: unknown = Object.getPrototypeOf(value);
      if (prototype !== null && Object.getPrototypeOf(prototype) !== null) {
        throw new TypeError(`canonicalJson: not a plain object at ${path}`);
      }
      for (const [key, child] of Object.entries(value)) {
        // JSON.stringify semantics: properties whose value is undefined are omitted.
        if (child === undefined) continue;
        if (LONE_SURROGATE.test(key))
          throw new TypeError(`canonicalJson: lone surrogate in a key under ${path}`);
        assertPlainJson(child, `${path}.${key}`);
      }
      return;
    }
    default:
      throw new TypeError(`canonicalJson: ${typeof value} is not JSON at ${path}`);
  }
}
