import { Controller, Get, HttpCode, Inject, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import {
  compileMappingProfile,
  type DryRun,
  dryRunMapping,
  FhirRequestError,
  operationOutcome,
  outcomeIssue,
  parseMappingProfile,
} from '@fhir-trail/fhir-mapping';
import { IDENTITY_PROFILE_ID, MappingProfileRegistry, STORE } from '@fhir-trail/runtime';
import {
  type MappingProfileSummary,
  type MappingProfileVersion,
  MappingProfileVersionConflictError,
  Store,
} from '@fhir-trail/store';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { parseJsonBody, single } from '../fhir/json-body';
import { AdminKeyGuard } from './admin-key.guard';

const OUTCOME_SCHEMA = { type: 'object', description: 'FHIR R4 OperationOutcome' };
const PROFILE_ID = /^[A-Za-z0-9\-.]{1,64}$/;

const PROFILE_DOCUMENT_SCHEMA = {
  type: 'object',
  description:
    'A mapping profile: `{ id, version?, name?, description?, steps: [...] }` (step kinds in the README). ' +
    '`version`, when given, must be the next version (409 otherwise); left out, the next one is taken.',
  required: ['id', 'steps'],
  properties: {
    id: { type: 'string', example: 'epic-lab-loinc' },
    version: { type: 'integer', minimum: 1 },
    name: { type: 'string' },
    description: { type: 'string' },
    steps: { type: 'array', items: { type: 'object', properties: { kind: { type: 'string' } } } },
  },
};
const VERSION_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    version: { type: 'integer' },
    active: { type: 'boolean' },
    origin: { type: 'string', description: '`admin-api`, or `file:<name>` (MAPPING_PROFILES_DIR)' },
    createdAt: { type: 'string', format: 'date-time' },
    document: PROFILE_DOCUMENT_SCHEMA,
  },
};
const PROFILE_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    activeVersion: { type: 'integer', description: 'absent: no version is active (its sources dead-letter)' },
    latestVersion: { type: 'integer' },
    versions: { type: 'integer' },
    activatedAt: { type: 'string', format: 'date-time' },
  },
};
const CHANGE_SCHEMA = {
  type: 'object',
  properties: {
    op: { type: 'string', enum: ['add', 'remove', 'replace'] },
    path: { type: 'string', example: 'Observation.code.coding[0].system' },
    before: {},
    after: {},
  },
};
const DRY_RUN_SCHEMA = {
  type: 'object',
  properties: {
    profile: {
      type: 'object',
      properties: { id: { type: 'string' }, version: { type: 'integer' }, active: { type: 'boolean' } },
    },
    summary: {
      type: 'object',
      properties: {
        resources: { type: 'integer' },
        transformed: { type: 'integer' },
        unchanged: { type: 'integer' },
        invalid: { type: 'integer' },
      },
    },
    results: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          location: { type: 'string', example: 'Bundle.entry[0].resource' },
          resourceType: { type: 'string' },
          id: { type: 'string' },
          status: { type: 'string', enum: ['transformed', 'unchanged', 'invalid'] },
          output: { type: 'object', description: 'the normalised R4 resource' },
          changes: { type: 'array', items: CHANGE_SCHEMA },
          diff: {
            type: 'array',
            items: { type: 'string' },
            example: ['~ Observation.code.coding[0].system: "urn:oid:1.2.840.114350" → "http://loinc.org"'],
          },
          outcome: { type: 'object', description: 'FHIR R4 OperationOutcome of mapping and validation' },
        },
      },
    },
  },
};

/** What the admin API answers about one version. */
export interface MappingVersionView {
  readonly id: string;
  readonly version: number;
  readonly active: boolean;
  readonly origin: string;
  readonly createdAt: string;
  readonly document?: Record<string, unknown>;
}

/**
 * Mapping profiles: versioned, one version active per profile (what the worker maps with), and a dry
 * run of any version on a resource or Bundle. Every route needs the admin API key.
 */
@ApiTags('admin')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'missing or wrong admin API key', schema: OUTCOME_SCHEMA })
@ApiResponse({ status: 503, description: 'database unavailable', schema: OUTCOME_SCHEMA })
@UseGuards(AdminKeyGuard)
@Controller('admin/mappings')
export class AdminMappingsController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly registry: MappingProfileRegistry,
  ) {}

  @Post()
  @HttpCode(201)
  @ApiOperation({
    summary: 'Create a new version of a mapping profile (a new profile at version 1)',
    description:
      'The profile is parsed and compiled first (400 with one issue per problem). Not active until ' +
      'activated, unless `activate=true`.',
  })
  @ApiQuery({ name: 'activate', required: false, type: Boolean, description: 'activate the new version' })
  @ApiBody({ schema: PROFILE_DOCUMENT_SCHEMA })
  @ApiResponse({ status: 201, description: 'the stored version; Location names it', schema: VERSION_SCHEMA })
  @ApiResponse({ status: 400, description: 'not a valid profile', schema: OUTCOME_SCHEMA })
  @ApiResponse({ status: 409, description: '`version` is not the next version', schema: OUTCOME_SCHEMA })
  @ApiResponse({ status: 415, description: 'not application/json', schema: OUTCOME_SCHEMA })
  async create(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Query('activate') activate?: string,
  ): Promise<MappingVersionView> {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const json = parseJsonBody(raw, single(request.headers['content-type']));
    const given = isObject(json) ? json.version : undefined;
    // The number is the store's to give; validate the rest with a placeholder when none is given.
    const document = parseMappingProfile(
      isObject(json) && given === undefined ? { ...json, version: 1 } : json,
    );
    if (document.id === IDENTITY_PROFILE_ID) {
      throw FhirRequestError.badRequest(
        outcomeIssue({
          code: 'value',
          text: `the id ${IDENTITY_PROFILE_ID} is reserved for sources without a profile`,
          expression: 'id',
        }),
      );
    }
    compileOrThrow(document);
    try {
      const stored = await unavailableAs503(() =>
        this.store.mappingProfiles.createVersion(
          document.id,
          document as unknown as Record<string, unknown>,
          {
            origin: 'admin-api',
            expectedVersion: given === undefined ? undefined : document.version,
            activate: activate === 'true',
          },
        ),
      );
      void reply.header('location', `/admin/mappings/${stored.profileId}/versions/${stored.version}`);
      void reply.header('cache-control', 'no-store');
      return versionView(stored);
    } catch (error) {
      if (error instanceof MappingProfileVersionConflictError) {
        throw new FhirRequestError(
          409,
          operationOutcome([
            outcomeIssue({
              code: 'conflict',
              text: `the next version of this profile is ${error.next}`,
              expression: 'version',
            }),
          ]),
          { cause: error },
        );
      }
      throw error;
    }
  }

  @Get()
  @ApiOperation({ summary: 'List mapping profiles with their active and latest versions' })
  @ApiResponse({
    status: 200,
    description: '{ profiles: Profile[] }',
    schema: { type: 'object', properties: { profiles: { type: 'array', items: PROFILE_SCHEMA } } },
  })
  async list(): Promise<{ profiles: ReturnType<typeof profileView>[] }> {
    const profiles = await unavailableAs503(() => this.store.mappingProfiles.list());
    return { profiles: profiles.map(profileView) };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One profile: its versions (newest first) and the active document' })
  @ApiParam({ name: 'id', example: 'epic-lab-loinc' })
  @ApiResponse({
    status: 200,
    description:
      'Profile, `versions` (without documents) and `active` (the active version with its document)',
    schema: {
      type: 'object',
      properties: {
        ...PROFILE_SCHEMA.properties,
        versions: { type: 'array', items: VERSION_SCHEMA },
        active: VERSION_SCHEMA,
      },
    },
  })
  @ApiResponse({ status: 404, description: 'no such profile', schema: OUTCOME_SCHEMA })
  async get(@Param('id') id: string): Promise<Record<string, unknown>> {
    const versions = PROFILE_ID.test(id)
      ? await unavailableAs503(() => this.store.mappingProfiles.versions(id))
      : [];
    if (versions.length === 0) notFound('no mapping profile with this id');
    const activeVersion = versions.find((v) => v.active)?.version;
    const active =
      activeVersion === undefined ? undefined : await this.store.mappingProfiles.find(id, activeVersion);
    return {
      id,
      activeVersion,
      latestVersion: versions[0].version,
      versions: versions.map(versionView),
      ...(active ? { active: versionView(active) } : {}),
    };
  }

  @Get(':id/versions/:version')
  @ApiOperation({ summary: 'One version of a profile, with its document' })
  @ApiParam({ name: 'id', example: 'epic-lab-loinc' })
  @ApiParam({ name: 'version', example: 1 })
  @ApiResponse({ status: 200, description: 'the version', schema: VERSION_SCHEMA })
  @ApiResponse({ status: 404, description: 'no such profile or version', schema: OUTCOME_SCHEMA })
  async version(@Param('id') id: string, @Param('version') version: string): Promise<MappingVersionView> {
    const number = versionNumber(version, 'path');
    const found = PROFILE_ID.test(id)
      ? await unavailableAs503(() => this.store.mappingProfiles.find(id, number))
      : undefined;
    return versionView(found ?? notFound('no such mapping profile version'));
  }

  @Post(':id/$activate')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Activate a version',
    description:
      'Sources naming this profile map with it from their next notification (and replay) on; every ' +
      'stored Provenance names the version in `policy`.',
  })
  @ApiParam({ name: 'id', example: 'epic-lab-loinc' })
  @ApiBody({
    schema: { type: 'object', required: ['version'], properties: { version: { type: 'integer' } } },
  })
  @ApiResponse({ status: 200, description: 'the version, now active', schema: VERSION_SCHEMA })
  @ApiResponse({ status: 400, description: 'no version number in the body', schema: OUTCOME_SCHEMA })
  @ApiResponse({ status: 404, description: 'no such profile or version', schema: OUTCOME_SCHEMA })
  async activate(@Param('id') id: string, @Req() request: FastifyRequest): Promise<MappingVersionView> {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const body = parseJsonBody(raw, single(request.headers['content-type']));
    const number = versionNumber(isObject(body) ? body.version : undefined, 'body');
    const done = PROFILE_ID.test(id)
      ? await unavailableAs503(() => this.store.mappingProfiles.activate(id, number))
      : false;
    if (!done) notFound('no such mapping profile version');
    const found = await this.store.mappingProfiles.find(id, number);
    return versionView(found ?? notFound('no such mapping profile version'));
  }

  @Post(':id/$transform')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Dry run: what a profile version makes of a resource or of every resource in a Bundle',
    description:
      'Nothing is stored. Each resource gets its output, the changes (a readable `diff`, and `changes` ' +
      'with before/after values) and the OperationOutcome of mapping and validation. Status ' +
      '`transformed`, `unchanged` or `invalid` (an error issue).',
  })
  @ApiParam({ name: 'id', example: 'epic-lab-loinc' })
  @ApiQuery({ name: 'version', required: false, description: 'default: the active version, else the latest' })
  @ApiQuery({
    name: 'source',
    required: false,
    description: 'source id the profile sees (reference prefixes, meta.source); default `dry-run`',
  })
  @ApiBody({ schema: { type: 'object', description: 'a FHIR resource, or a Bundle of them' } })
  @ApiResponse({ status: 200, description: 'the dry run', schema: DRY_RUN_SCHEMA })
  @ApiResponse({ status: 400, description: 'not JSON, or not a resource or Bundle', schema: OUTCOME_SCHEMA })
  @ApiResponse({ status: 404, description: 'no such profile or version', schema: OUTCOME_SCHEMA })
  @ApiResponse({
    status: 415,
    description: 'not application/fhir+json or application/json',
    schema: OUTCOME_SCHEMA,
  })
  async transform(
    @Param('id') id: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Query('version') version?: string,
    @Query('source') source?: string,
  ): Promise<DryRun & { profile: { id: string; version: number; active: boolean } }> {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const input = parseJsonBody(raw, single(request.headers['content-type']));
    const requested = version === undefined ? undefined : versionNumber(version, 'query');
    if (!PROFILE_ID.test(id)) notFound('no mapping profile with this id');
    const activeVersion =
      requested ?? (await unavailableAs503(() => this.store.mappingProfiles.activeVersion(id)));
    const found = await unavailableAs503(() => this.registry.find(id, activeVersion));
    if (!found) notFound('no such mapping profile version');
    const sourceId = typeof source === 'string' && /^[A-Za-z0-9-]{1,64}$/.test(source) ? source : 'dry-run';
    const run = dryRunMapping(found.profile, input, { sourceId });
    void reply.header('cache-control', 'no-store');
    return {
      profile: { id: found.record.profileId, version: found.record.version, active: found.record.active },
      ...run,
    };
  }
}

function compileOrThrow(document: Parameters<typeof compileMappingProfile>[0]): void {
  try {
    compileMappingProfile(document);
  } catch (error) {
    if (error instanceof FhirRequestError) throw error;
    throw FhirRequestError.badRequest(
      outcomeIssue({
        code: 'invalid',
        text: `the profile does not compile: ${error instanceof Error ? error.message : 'unknown error'}`,
        expression: 'steps',
      }),
      { cause: error },
    );
  }
}

function versionNumber(value: unknown, where: 'path' | 'query' | 'body'): number {
  const number = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  if (Number.isInteger(number) && number >= 1 && number <= 2_147_483_647) return number;
  throw FhirRequestError.badRequest(
    outcomeIssue({
      code: where === 'body' && value === undefined ? 'required' : 'value',
      text: 'a version number (a positive integer) is required',
      expression: 'version',
    }),
  );
}

function versionView(
  version: Omit<MappingProfileVersion, 'document'> & { document?: Record<string, unknown> },
) {
  return {
    id: version.profileId,
    version: version.version,
    active: version.active,
    origin: version.origin,
    createdAt: version.createdAt.toISOString(),
    ...(version.document ? { document: version.document } : {}),
  };
}

function profileView(profile: MappingProfileSummary) {
  return {
    id: profile.profileId,
    ...(profile.name ? { name: profile.name } : {}),
    ...(profile.activeVersion === undefined ? {} : { activeVersion: profile.activeVersion }),
    latestVersion: profile.latestVersion,
    versions: profile.versions,
    ...(profile.activatedAt ? { activatedAt: profile.activatedAt.toISOString() } : {}),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function notFound(text: string): never {
  throw new FhirRequestError(404, operationOutcome([outcomeIssue({ code: 'not-found', text })]));
}
