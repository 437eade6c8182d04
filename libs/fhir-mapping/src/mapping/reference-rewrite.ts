import { createHash } from 'node:crypto';

import { outcomeIssue } from '../operation-outcome';
import { isFhirId, parseResourceReference } from '../resource-reference';
import type { CompiledStage } from './mapping-stage';
import { fillSourceId } from './meta-stamp';
import type { ReferenceRewriteStep } from './mapping-profile.types';
import { forEachObject } from './resource-walk';

/** FHIR ids are at most 64 characters. */
const MAX_ID_LENGTH = 64;
/** Shorter hashes would make collisions between one source's ids plausible. */
const MIN_HASH_CHARS = 24;

/**
 * Prefixes the resource's id and every literal reference's id with the source's prefix, so ids
 * from different sources never collide and references between one source's resources still
 * resolve. Contained resources keep their ids, and `#x` references to them are left alone, as are
 * `urn:` references and (unless `absolute`) absolute URLs. An id that would get longer than 64
 * characters (Epic sends 66-character ids) becomes the prefix plus the start of the SHA-256 hex
 * of the source id, the same for the resource and every reference to it, unless `hashLongIds` is
 * false (then it is an error issue).
 */
export function compileReferenceRewrite(step: ReferenceRewriteStep): CompiledStage {
  const template = step.prefix ?? '{sourceId}-';
  const absolute = step.absolute === true;
  const hashLongIds = step.hashLongIds !== false;
  return {
    kind: 'referenceRewrite',
    apply(resource, path, run) {
      const prefix = fillSourceId(template, run.sourceId);
      const prefixed = (id: string, where: string): string => {
        let next = `${prefix}${id}`;
        if (next.length > MAX_ID_LENGTH && hashLongIds && MAX_ID_LENGTH - prefix.length >= MIN_HASH_CHARS) {
          next = `${prefix}${createHash('sha256')
            .update(id)
            .digest('hex')
            .slice(0, MAX_ID_LENGTH - prefix.length)}`;
        }
        if (!isFhirId(next)) {
          run.issues.push(
            outcomeIssue({
              code: 'value',
              text: 'The id with the source prefix is not a valid FHIR id (1-64 of A-Z, a-z, 0-9, - and .)',
              expression: where,
            }),
          );
        }
        return next;
      };
      if (typeof resource.id === 'string') resource.id = prefixed(resource.id, `${path}.id`);
      forEachObject(resource, path, (object, objectPath) => {
        const reference = object.reference;
        if (typeof reference !== 'string') return true;
        const address = parseResourceReference(reference);
        if (!address) return true;
        if (address.baseUrl !== undefined && !absolute) return true;
        const version = address.versionId === undefined ? '' : `/_history/${address.versionId}`;
        object.reference = `${address.resourceType}/${prefixed(address.id, `${objectPath}.reference`)}${version}`;
        return true;
      });
      return resource;
    },
  };
}
