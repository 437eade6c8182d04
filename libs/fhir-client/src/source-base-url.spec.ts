import { SourceBaseUrl } from './source-base-url';
import { SourceFhirError } from './source-fhir-error';

function codeOf(action: () => unknown): string | undefined {
  try {
    action();
    return undefined;
  } catch (error) {
    if (error instanceof SourceFhirError) return error.code;
    throw error;
  }
}

describe('SourceBaseUrl', () => {
  it.each([
    ['https://EHR.example:443/fhir/r4/', 'https://ehr.example/fhir/r4'],
    ['http://127.0.0.1:8080/fhir', 'http://127.0.0.1:8080/fhir'],
    ['https://ehr.example', 'https://ehr.example'],
  ])('normalises %s', (input, href) => {
    expect(SourceBaseUrl.parse(input).href).toBe(href);
  });

  it.each([
    'ftp://ehr.example/fhir',
    'https://user:pw@ehr.example/fhir',
    'https://ehr.example/fhir?x=1',
    'fhir',
  ])('refuses the base URL %s', (input) => {
    expect(codeOf(() => SourceBaseUrl.parse(input))).toBe('INVALID_ARGUMENT');
  });

  const base = SourceBaseUrl.parse('https://ehr.example/fhir/r4');

  it.each([
    ['Patient/123', { resourceType: 'Patient', id: '123' }],
    ['Patient/123/_history/4', { resourceType: 'Patient', id: '123', versionId: '4' }],
    ['https://ehr.example/fhir/r4/Encounter/e-1', { resourceType: 'Encounter', id: 'e-1' }],
    [
      'https://EHR.example:443/fhir/r4/Encounter/e-1/_history/2',
      { resourceType: 'Encounter', id: 'e-1', versionId: '2' },
    ],
  ])('resolves %s', (reference, address) => {
    expect(base.resolveReference(reference)).toEqual(address);
  });

  it.each([
    ['https://other.example/fhir/r4/Patient/1', 'REFERENCE_REFUSED'],
    ['http://ehr.example/fhir/r4/Patient/1', 'REFERENCE_REFUSED'], // scheme downgrade
    ['https://ehr.example:8443/fhir/r4/Patient/1', 'REFERENCE_REFUSED'],
    ['https://ehr.example/fhir/Patient/1', 'REFERENCE_REFUSED'], // outside the base path
    ['https://ehr.example/fhir/r4-admin/Patient/1', 'REFERENCE_REFUSED'], // shares a prefix only
    ['https://ehr.example/fhir/r4/../admin/Patient/1', 'REFERENCE_REFUSED'],
    ['https://ehr.example/fhir/r4/%2e%2e/admin/Patient/1', 'REFERENCE_REFUSED'],
    ['https://ehr.example.evil.test/fhir/r4/Patient/1', 'REFERENCE_REFUSED'],
    ['https://ehr.example@evil.test/fhir/r4/Patient/1', 'REFERENCE_REFUSED'],
    ['https://ehr.example/fhir/r4/Patient/1?x=y', 'INVALID_ARGUMENT'],
    ['Patient/..', 'INVALID_ARGUMENT'],
    ['Patient/1/_history/..', 'INVALID_ARGUMENT'],
    ['patient/1', 'INVALID_ARGUMENT'],
    ['#contained', 'INVALID_ARGUMENT'],
    ['urn:uuid:0b5ef2c2-1d0a-4b0e-9a7f-3f0c4c1e2d3a', 'INVALID_ARGUMENT'],
    ['other/Patient/1', 'INVALID_ARGUMENT'],
  ])('refuses %s with %s', (reference, code) => {
    expect(codeOf(() => base.resolveReference(reference))).toBe(code);
  });

  it('checks links: relative ones resolve under the base, absolute ones must lie under it', () => {
    expect(base.checkLink('Patient?_page=2', 'next link')).toBe(
      'https://ehr.example/fhir/r4/Patient?_page=2',
    );
    expect(base.checkLink('https://ehr.example/fhir/r4/Patient?_page=2', 'next link')).toBe(
      'https://ehr.example/fhir/r4/Patient?_page=2',
    );
    expect(codeOf(() => base.checkLink('https://ehr.example/admin?x', 'next link'))).toBe(
      'REFERENCE_REFUSED',
    );
    expect(codeOf(() => base.checkLink('//evil.test/fhir/r4/Patient', 'next link'))).toBe(
      'REFERENCE_REFUSED',
    );
  });

  it('a base at the server root contains every path of its origin only', () => {
    const root = SourceBaseUrl.parse('https://ehr.example/');
    expect(root.resolveReference('https://ehr.example/Patient/1')).toEqual({
      resourceType: 'Patient',
      id: '1',
    });
    expect(codeOf(() => root.resolveReference('https://ehr.example.evil.test/Patient/1'))).toBe(
      'REFERENCE_REFUSED',
    );
    expect(root.resourceUrl('Patient', '1', '2')).toBe('https://ehr.example/Patient/1/_history/2');
  });
});
