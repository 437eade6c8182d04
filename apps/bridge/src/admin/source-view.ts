import type { SchemaObject } from '@nestjs/swagger';
import type { SourceRecord } from '@fhir-trail/store';
import { z } from 'zod';

const hasSecret = z.literal(true).describe('a secret is stored (never shown)');

/** What the admin API answers about a source: every setting, and never a secret or its hash. */
export const sourceViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  organisation: z.object({
    display: z.string(),
    identifier: z.object({ system: z.string().optional(), value: z.string().optional() }).optional(),
    reference: z.string().optional(),
  }),
  fhirBaseUrl: z.string().optional(),
  hookPath: z.string().describe('where the source sends its notifications: /hooks/{id}'),
  senderAuth: z.object({
    bearer: z.object({ hasSecret }).optional(),
    signature: z.object({ kind: z.enum(['hub-signature', 'medplum-signature']), hasSecret }).optional(),
  }),
  fhirAuth: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('none') }),
    z.object({ kind: z.literal('bearer'), hasSecret }),
    z.object({
      kind: z.literal('smart-backend'),
      clientId: z.string(),
      scope: z.string(),
      tokenUrl: z.string().optional(),
      keyId: z.string(),
      algorithm: z.enum(['RS384', 'ES384']),
      hasSecret,
    }),
  ]),
  senderProfile: z.object({
    counter: z.enum(['subscription', 'per-bundle', 'none']),
    deleteStyle: z.enum(['none', 'hapi', 'medplum']),
    responseBudgetMs: z.number(),
  }),
  mappingProfile: z.string().optional(),
  rateLimitPerSecond: z.number().optional(),
  enabled: z.boolean().describe('false once deleted: its hooks answer 404; PUT enables it again'),
  defaultSecret: z.boolean().describe('true while the source uses a well-known development secret'),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  disabledAt: z.iso.datetime().optional(),
});

export type SourceView = z.infer<typeof sourceViewSchema>;

/** The admin view of a source, built field by field so nothing secret can slip through. */
export function toSourceView(source: SourceRecord): SourceView {
  const signatureKind = source.senderAuth.find((kind) => kind !== 'bearer');
  const auth = source.fhirAuth;
  return {
    id: source.id,
    name: source.name,
    organisation: source.organisation,
    fhirBaseUrl: source.fhirBaseUrl,
    hookPath: `/hooks/${source.id}`,
    senderAuth: {
      bearer: source.senderAuth.includes('bearer') ? { hasSecret: true } : undefined,
      signature: signatureKind ? { kind: signatureKind, hasSecret: true } : undefined,
    },
    fhirAuth:
      auth.kind === 'smart-backend'
        ? {
            kind: auth.kind,
            clientId: auth.clientId,
            scope: auth.scope,
            tokenUrl: auth.tokenUrl,
            keyId: auth.keyId,
            algorithm: auth.algorithm,
            hasSecret: true,
          }
        : auth.kind === 'bearer'
          ? { kind: 'bearer', hasSecret: true }
          : { kind: 'none' },
    senderProfile: source.senderProfile,
    mappingProfile: source.mappingProfile,
    rateLimitPerSecond: source.rateLimitPerSecond,
    enabled: source.enabled,
    defaultSecret: source.defaultSecret,
    createdAt: source.createdAt.toISOString(),
    updatedAt: source.updatedAt.toISOString(),
    disabledAt: source.disabledAt?.toISOString(),
  };
}

/** An OpenAPI 3.0 schema from a zod schema, so the documentation cannot drift from what is validated. */
export function openApiSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): SchemaObject {
  const json: Record<string, unknown> = {
    ...z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' }),
  };
  // `$schema` names a JSON Schema dialect; an OpenAPI 3.0 schema object has no such field.
  delete json.$schema;
  return json;
}
