import { isFhirId, isResourceTypeName, parseResourceReference } from '@fhir-trail/fhir-mapping';
import { SourceFhirError } from './source-fhir-error';

/** A resource named by type and id (and version, for a version-specific reference). */
export interface SourceResourceAddress {
  resourceType: string;
  id: string;
  versionId?: string;
}

const ABSOLUTE_URL = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * The service base URL of one source, and the SSRF guard around it: every URL the client requests
 * (resources, search pages, operations) is built from it or checked to lie under it, so a
 * notification naming `https://elsewhere/...` or a `next` link pointing at an internal address
 * can never make the client send a request (with the source's token) anywhere else.
 */
export class SourceBaseUrl {
  private constructor(
    /** Normalised: lower-case scheme and host, no default port, no trailing slash, no query. */
    readonly href: string,
    private readonly url: URL,
  ) {}

  /** Normalises a base URL; `INVALID_ARGUMENT` unless it is plain http(s) without credentials or query. */
  static parse(baseUrl: string): SourceBaseUrl {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch (error) {
      throw new SourceFhirError('INVALID_ARGUMENT', 'baseUrl is not a URL', { cause: error });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new SourceFhirError('INVALID_ARGUMENT', 'baseUrl must be an http or https URL');
    }
    if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
      throw new SourceFhirError(
        'INVALID_ARGUMENT',
        'baseUrl must not carry credentials, a query or a fragment',
      );
    }
    const path = url.pathname.replace(/\/+$/, '');
    const normalised = new URL(`${url.origin}${path}`);
    return new SourceBaseUrl(`${url.origin}${path}`, normalised);
  }

  /** True for `http:` bases (development and tests); production sources are https. */
  get isPlainHttp(): boolean {
    return this.url.protocol === 'http:';
  }

  /** `{base}/{type}`, after checking the type name. */
  typeUrl(resourceType: string): string {
    return `${this.href}/${checkResourceType(resourceType)}`;
  }

  /** `{base}/{type}/{id}[/_history/{versionId}]`, after checking each part. */
  resourceUrl(resourceType: string, id: string, versionId?: string): string {
    const url = `${this.typeUrl(resourceType)}/${checkId(id, 'id')}`;
    return versionId === undefined ? url : `${url}/_history/${checkId(versionId, 'versionId')}`;
  }

  /** `{base}/{path}` for fixed paths such as `.well-known/smart-configuration`. */
  join(path: string): string {
    return `${this.href}/${path}`;
  }

  /** True when `candidate` is an absolute URL on this base (same scheme, host, port, and path prefix). */
  contains(candidate: string): boolean {
    let url: URL;
    try {
      url = new URL(candidate);
    } catch {
      return false;
    }
    if (url.origin !== this.url.origin || url.username !== '' || url.password !== '') return false;
    const basePath = this.url.pathname === '/' ? '' : this.url.pathname;
    return url.pathname === basePath || url.pathname.startsWith(`${basePath}/`);
  }

  /**
   * Checks a URL the source sent back (a search `next` link, a `Location` header) before it is
   * followed: relative URLs resolve against the base, absolute ones must lie under it.
   */
  checkLink(link: string, what: string): string {
    let url: URL | undefined;
    try {
      // RFC 3986 resolution against the base as a directory: `Patient?page=2` stays under it,
      // `//host/...` and `/other` do not.
      url = new URL(link, `${this.href}/`);
    } catch {
      url = undefined;
    }
    if (!url || !this.contains(url.href)) {
      throw new SourceFhirError(
        'REFERENCE_REFUSED',
        `${what} points outside the source's base URL; not followed`,
      );
    }
    return url.href;
  }

  /**
   * Resolves a literal reference (`Patient/123`, `Patient/123/_history/2`, or an absolute URL on
   * this base) to type, id and version. An absolute URL on another base is refused with
   * `REFERENCE_REFUSED`; contained (`#x`), `urn:` and conditional references with `INVALID_ARGUMENT`.
   */
  resolveReference(reference: string): SourceResourceAddress {
    let relative = reference;
    if (ABSOLUTE_URL.test(reference) && !reference.startsWith('urn:')) {
      if (!this.contains(reference)) {
        throw new SourceFhirError(
          'REFERENCE_REFUSED',
          "The reference is an absolute URL outside the source's base URL; only the source's own resources are fetched",
        );
      }
      const url = new URL(reference);
      if (url.search !== '' || url.hash !== '') {
        throw new SourceFhirError(
          'INVALID_ARGUMENT',
          'The reference must name one resource (no query or fragment)',
        );
      }
      relative = url.pathname.slice(this.url.pathname === '/' ? 1 : this.url.pathname.length + 1);
    }
    const address = parseResourceReference(relative);
    if (!address || address.baseUrl !== undefined) {
      throw new SourceFhirError(
        'INVALID_ARGUMENT',
        'The reference must be {Type}/{id}[/_history/{version}], relative or on the source base URL',
      );
    }
    const result: SourceResourceAddress = {
      resourceType: checkResourceType(address.resourceType),
      id: checkId(address.id, 'id'),
    };
    if (address.versionId !== undefined) result.versionId = checkId(address.versionId, 'versionId');
    return result;
  }
}

/** A resource type name (shape only). */
export function checkResourceType(resourceType: string): string {
  if (!isResourceTypeName(resourceType)) {
    throw new SourceFhirError('INVALID_ARGUMENT', 'resourceType is not a resource type name');
  }
  return resourceType;
}

/**
 * A FHIR id that is also safe as a path segment: the id datatype allows `.`, so `.` and `..` are
 * refused here (they would climb out of the resource path).
 */
export function checkId(id: string, what: string): string {
  if (!isFhirId(id) || /^\.+$/.test(id)) {
    throw new SourceFhirError('INVALID_ARGUMENT', `${what} is not a valid FHIR id`);
  }
  return id;
}
