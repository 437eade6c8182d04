import { performance } from 'node:perf_hooks';

import { loadFhirDefinitions } from '../fhir-validator';
import { shippedProfileUrls } from './profile-registry';
import { loadTerminology } from './terminology';

/**
 * Loads, once per process, everything the mapping engine otherwise reads on first use: the R4
 * definitions ({@link loadFhirDefinitions}, about 1 s), the shipped terminology for required
 * bindings and version conversion (about 0.1 s) and the shipped constraint profiles (US Core 5.0.1
 * subset, R4 vital signs...: about 0.5 s). Call it at boot so the first resource does not pay.
 * Returns how long this call took (0 when all was loaded already).
 */
export function loadMappingDefinitions(): { durationMs: number } {
  const started = performance.now();
  loadFhirDefinitions();
  loadTerminology();
  shippedProfileUrls();
  return { durationMs: performance.now() - started };
}
