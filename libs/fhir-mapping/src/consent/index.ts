/** Consent interpretation: FHIR R4 Consent -> {@link ConsentPolicy}, and consent decisions. */
export * from './consent-policy';
export * from './consent-decision';
export * from './consent.interpreter';
export * from './r4-resource-types';
export * from './registry-scope';
export * from './disclosure-audit-event.builder';
export * from './access-audit-event.builder';
