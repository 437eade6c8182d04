import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

import { isRecord, type JsonRecord } from '../json-value';
import { outcomeIssue } from '../operation-outcome';

/** `scheme:` at the start: an absolute URI (http:, https:, urn:, ...). */
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** Entities XML (hence XHTML) defines; any other named entity (`&reg;`, `&nbsp;`) is an HTML-only one. */
const XML_ENTITIES = new Set(['amp', 'lt', 'gt', 'quot', 'apos']);

/** Link relations a Bundle may carry once only (http://hl7.org/fhir/R4/bundle.html#links). */
const SINGLE_LINKS = new Set(['self', 'first', 'previous', 'prev', 'next', 'last']);

/**
 * Rules of the R4 specification the reference validator enforces and @medplum/core does not, that
 * need no terminology server: coding and quantity systems are absolute URIs; Bundle fullUrls are
 * absolute and paging links occur once; an Attachment's `size` matches its base64 `data`;
 * narrative XHTML uses only XML entities. Issue texts name paths, never values.
 */
export function structuralRuleIssues(resource: JsonRecord): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const visit = (value: JsonRecord, path: string, key: string): void => {
    if (
      typeof value.system === 'string' &&
      ('code' in value || key === 'coding') &&
      !ABSOLUTE_URI.test(value.system)
    ) {
      issues.push(
        outcomeIssue({
          code: 'value',
          text: 'Coding.system must be an absolute URI, not a local reference',
          expression: `${path}.system`,
        }),
      );
    }
    if (typeof value.resourceType === 'string') resourceRules(value, path, issues);
    if (typeof value.data === 'string' && typeof value.size === 'number' && 'contentType' in value) {
      const actual = base64Length(value.data);
      if (actual !== undefined && actual !== value.size) {
        issues.push(
          outcomeIssue({
            code: 'value',
            text: 'Attachment.size does not match the size of the attached data',
            expression: `${path}.size`,
          }),
        );
      }
    }
    for (const childKey in value) {
      const child = value[childKey];
      if (Array.isArray(child)) {
        for (let index = 0; index < child.length; index++) {
          const item: unknown = child[index];
          if (isRecord(item)) visit(item, `${path}.${childKey}[${index}]`, childKey);
        }
      } else if (isRecord(child)) {
        visit(child, `${path}.${childKey}`, childKey);
      }
    }
  };
  visit(resource, String(resource.resourceType), '');
  return issues;
}

function resourceRules(resource: JsonRecord, path: string, issues: OperationOutcomeIssue[]): void {
  if (isRecord(resource.text) && typeof resource.text.div === 'string') {
    for (const match of resource.text.div.matchAll(/&([A-Za-z][A-Za-z0-9]*);/g)) {
      if (XML_ENTITIES.has(match[1] ?? '')) continue;
      issues.push(
        outcomeIssue({
          code: 'invalid',
          text: 'The narrative uses an HTML entity XHTML does not define (use the character or a numeric reference)',
          expression: `${path}.text.div`,
        }),
      );
      break;
    }
  }
  if (resource.resourceType !== 'Bundle') return;
  const seen = new Set<string>();
  for (const [index, link] of (Array.isArray(resource.link) ? (resource.link as unknown[]) : []).entries()) {
    if (!isRecord(link) || typeof link.relation !== 'string' || !SINGLE_LINKS.has(link.relation)) continue;
    if (seen.has(link.relation)) {
      issues.push(
        outcomeIssue({
          code: 'invalid',
          text: 'A paging link relation (self, first, next...) may occur only once',
          expression: `${path}.link[${index}]`,
        }),
      );
    }
    seen.add(link.relation);
  }
  for (const [index, entry] of (Array.isArray(resource.entry)
    ? (resource.entry as unknown[])
    : []
  ).entries()) {
    if (!isRecord(entry) || typeof entry.fullUrl !== 'string' || ABSOLUTE_URI.test(entry.fullUrl)) continue;
    issues.push(
      outcomeIssue({
        code: 'invalid',
        text: 'Bundle.entry.fullUrl must be an absolute URL',
        expression: `${path}.entry[${index}].fullUrl`,
      }),
    );
  }
}

/** Decoded byte length of base64 text, or undefined when it is not base64 (the base validator reports that). */
function base64Length(data: string): number | undefined {
  const compact = data.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) return undefined;
  const padding = compact.endsWith('==') ? 2 : compact.endsWith('=') ? 1 : 0;
  return (compact.length / 4) * 3 - padding;
}
