import { createPrivateKey, type JsonWebKey } from 'node:crypto';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import type { FhirAuthRegistration, SourceRegistration } from '@fhir-trail/store';
import { z } from 'zod';

/** Source ids appear in URLs (`/hooks/{id}`) and in ledger records. */
export const SOURCE_ID = /^[A-Za-z0-9-]{1,64}$/;

const sourceId = z.string().regex(SOURCE_ID, 'letters, digits and - (at most 64)');
const secret = z.string().min(16, 'at least 16 characters').max(4096, 'at most 4096 characters');
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits');
const httpUrl = z.url({ protocol: /^https?$/, error: 'an http or https URL' });
/** Present in what the admin API answers; accepted (and ignored) so a GET body can be PUT back. */
const readOnly = z.unknown().optional().describe('read-only: ignored on input');

const organisation = z.strictObject({
  display: z.string().min(1, 'required'),
  identifier: z.strictObject({ system: z.string().optional(), value: z.string().optional() }).optional(),
  reference: z.string().optional(),
});

const senderAuth = z
  .strictObject({
    bearer: z
      .strictObject({
        token: secret.optional().describe('the secret the sender sends as Authorization: Bearer <token>'),
        tokenSha256: sha256Hex.optional().describe('or its SHA-256 in hex, so the secret need not be sent'),
        hasSecret: readOnly,
      })
      .optional(),
    signature: z
      .strictObject({
        kind: z.enum(['hub-signature', 'medplum-signature'], {
          error: 'hub-signature (X-Hub-Signature: sha256=<hex>) or medplum-signature (X-Signature: <hex>)',
        }),
        secret: secret.optional().describe('the HMAC-SHA256 secret the sender signs the raw body with'),
        hasSecret: readOnly,
      })
      .optional(),
  })
  .describe('every configured check must pass: a bearer token, an HMAC signature over the raw body, or both');

const privateJwk = z
  .looseObject({
    kty: z.enum(['RSA', 'EC'], { error: 'RSA (RS384) or EC (ES384)' }),
    d: z.string().min(1, 'the private part (d) is required'),
  })
  .describe('the private key as a JWK: RSA (2048 bits or more) for RS384, EC P-384 for ES384');

const fhirAuth = z
  .discriminatedUnion(
    'kind',
    [
      z.strictObject({ kind: z.literal('none') }),
      z.strictObject({
        kind: z.literal('bearer'),
        token: secret.optional().describe('sent as Authorization: Bearer <token> to the source'),
        hasSecret: readOnly,
      }),
      z.strictObject({
        kind: z.literal('smart-backend'),
        clientId: z.string().min(1, 'required').max(1024),
        scope: z
          .string()
          .min(1, 'required')
          .max(4096)
          .describe('e.g. system/Patient.rs system/Observation.rs'),
        tokenUrl: httpUrl
          .optional()
          .describe('unset: discovered from {fhirBaseUrl}/.well-known/smart-configuration'),
        keyId: z.string().min(1, 'required').max(1024).describe('kid of the registered public key'),
        algorithm: z.enum(['RS384', 'ES384'], { error: 'RS384 or ES384' }),
        privateKey: privateJwk.optional(),
        hasSecret: readOnly,
      }),
    ],
    { error: 'kind must be none, bearer or smart-backend' },
  )
  .describe('how the bridge authenticates when it calls the source back (fetch for id-only / empty)');

const senderProfile = z
  .strictObject({
    counter: z
      .enum(['subscription', 'per-bundle', 'none'], { error: 'subscription, per-bundle or none' })
      .optional()
      .describe('subscription: the IG gap-free counter (default); per-bundle: athenahealth; none'),
    deleteStyle: z
      .enum(['none', 'hapi', 'medplum'], { error: 'none, hapi or medplum' })
      .optional()
      .describe('how the sender notifies deletes (default none)'),
    responseBudgetMs: z
      .int('a whole number of milliseconds')
      .min(100, 'at least 100')
      .max(120_000, 'at most 120000')
      .optional()
      .describe('how long the sender waits for our answer (default 2000)'),
  })
  .describe('how the sender behaves');

const registrationFields = {
  id: sourceId,
  name: z.string().min(1, 'required').max(200, 'at most 200 characters'),
  organisation,
  fhirBaseUrl: httpUrl.optional(),
  senderAuth: senderAuth.optional(),
  fhirAuth: fhirAuth.optional(),
  senderProfile: senderProfile.optional(),
  mappingProfile: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, ., _ and - (at most 64)')
    .optional(),
  rateLimitPerSecond: z
    .number('a number')
    .positive('greater than 0')
    .max(100_000, 'at most 100000')
    .optional()
    .describe('notifications per second accepted from this source (429 above); unset = no limit'),
};

/** The fields the cross-field checks (secrets present, one bearer, token URL known) look at. */
interface CrossFieldInput {
  readonly fhirBaseUrl?: string;
  readonly senderAuth?: z.infer<typeof senderAuth>;
  readonly fhirAuth?: z.infer<typeof fhirAuth>;
  readonly token?: string;
  readonly tokenSha256?: string;
}

function crossFieldChecks(secretsRequired: boolean) {
  return (value: CrossFieldInput, ctx: z.RefinementCtx): void => {
    const problem = (path: readonly (string | number)[], message: string) =>
      ctx.addIssue({ code: 'custom', path: [...path], message });
    const bearer = value.senderAuth?.bearer;
    const shorthand = value.token !== undefined || value.tokenSha256 !== undefined;
    if (value.token !== undefined && value.tokenSha256 !== undefined) {
      problem([], 'give exactly one of token or tokenSha256');
    }
    if (shorthand && bearer) {
      problem(['token'], 'give the bearer secret once: token / tokenSha256 or senderAuth.bearer');
    }
    if (bearer?.token !== undefined && bearer.tokenSha256 !== undefined) {
      problem(['senderAuth', 'bearer'], 'give exactly one of token or tokenSha256');
    }
    if (secretsRequired && bearer && bearer.token === undefined && bearer.tokenSha256 === undefined) {
      problem(
        ['senderAuth', 'bearer', 'token'],
        'required: the bearer secret (token) or its SHA-256 (tokenSha256)',
      );
    }
    if (!bearer && !shorthand && !value.senderAuth?.signature) {
      problem(['senderAuth'], 'required: senderAuth.bearer, senderAuth.signature, or both');
    }
    const signature = value.senderAuth?.signature;
    if (secretsRequired && signature && signature.secret === undefined) {
      problem(['senderAuth', 'signature', 'secret'], 'required: the HMAC secret the sender signs with');
    }
    const auth = value.fhirAuth;
    if (auth?.kind === 'bearer' && secretsRequired && auth.token === undefined) {
      problem(['fhirAuth', 'token'], 'required: the bearer token to call the source with');
    }
    if (auth?.kind === 'smart-backend') {
      if (auth.privateKey === undefined) {
        if (secretsRequired)
          problem(['fhirAuth', 'privateKey'], 'required: the private JWK to sign client assertions');
      } else {
        const keyProblem = privateKeyProblem(auth.privateKey, auth.algorithm);
        if (keyProblem) problem(['fhirAuth', 'privateKey'], keyProblem);
      }
      if (auth.tokenUrl === undefined && value.fhirBaseUrl === undefined) {
        problem(
          ['fhirAuth', 'tokenUrl'],
          'required when fhirBaseUrl is not given (the token URL is discovered from it)',
        );
      }
    }
  };
}

/** Why a JWK cannot sign with `algorithm`, or undefined when it can. Never quotes the key. */
function privateKeyProblem(jwk: JsonWebKey, algorithm: 'RS384' | 'ES384'): string | undefined {
  let key;
  try {
    key = createPrivateKey({ key: jwk, format: 'jwk' });
  } catch {
    return 'not a usable private key in JWK form';
  }
  if (algorithm === 'RS384') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (key.asymmetricKeyType !== 'rsa') return 'RS384 needs an RSA key (kty RSA)';
    if (bits < 2048) return 'RS384 needs an RSA key of at least 2048 bits';
    return undefined;
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    return 'ES384 needs an EC key on curve P-384 (kty EC, crv P-384)';
  }
  return undefined;
}

/** One entry of SOURCES_FILE: the admin API's registration, plus the original `token` / `tokenSha256` shorthand. */
export const sourcesFileSchema = z.array(
  z
    .strictObject({
      ...registrationFields,
      token: secret.optional().describe('shorthand for senderAuth.bearer.token'),
      tokenSha256: sha256Hex.optional().describe('shorthand for senderAuth.bearer.tokenSha256'),
    })
    .superRefine(crossFieldChecks(true)),
);

/** `POST /admin/sources`: every secret its checks and call-back method need. */
export const createSourceSchema = z.strictObject(registrationFields).superRefine(crossFieldChecks(true));

/**
 * `PUT /admin/sources/{id}`: the whole registration again; a secret left out keeps the stored one
 * (when its kind is unchanged). The read-only fields of a GET answer are accepted and ignored.
 */
export const replaceSourceSchema = z
  .strictObject({
    ...registrationFields,
    id: sourceId.optional().describe('if given, must equal the id in the path'),
    hookPath: readOnly,
    enabled: readOnly,
    defaultSecret: readOnly,
    createdAt: readOnly,
    updatedAt: readOnly,
    disabledAt: readOnly,
  })
  .superRefine(crossFieldChecks(false));

type RegistrationInput = Omit<z.infer<typeof createSourceSchema>, 'id'> & {
  readonly token?: string;
  readonly tokenSha256?: string;
};

/** The store's registration from a validated body; `defaultSecret` is never settable from outside. */
export function toSourceRegistration(id: string, input: RegistrationInput): SourceRegistration {
  const bearer = input.senderAuth?.bearer;
  const signature = input.senderAuth?.signature;
  return {
    id,
    name: input.name,
    organisation: input.organisation,
    fhirBaseUrl: input.fhirBaseUrl,
    senderAuth: {
      bearer:
        bearer || input.token !== undefined || input.tokenSha256 !== undefined
          ? {
              token: bearer?.token ?? input.token,
              tokenSha256: bearer?.tokenSha256 ?? input.tokenSha256,
            }
          : undefined,
      signature: signature ? { kind: signature.kind, secret: signature.secret } : undefined,
    },
    fhirAuth: toFhirAuth(input.fhirAuth),
    senderProfile: input.senderProfile,
    mappingProfile: input.mappingProfile,
    rateLimitPerSecond: input.rateLimitPerSecond,
    defaultSecret: false,
  };
}

function toFhirAuth(auth: z.infer<typeof fhirAuth> | undefined): FhirAuthRegistration | undefined {
  switch (auth?.kind) {
    case undefined:
      return undefined;
    case 'none':
      return { kind: 'none' };
    case 'bearer':
      return { kind: 'bearer', token: auth.token };
    case 'smart-backend':
      return {
        kind: 'smart-backend',
        clientId: auth.clientId,
        scope: auth.scope,
        tokenUrl: auth.tokenUrl,
        keyId: auth.keyId,
        algorithm: auth.algorithm,
        privateKey: auth.privateKey as JsonWebKey | undefined,
      };
  }
}

/** `a.b[0].c` from a zod issue path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((segment, index) =>
      typeof segment === 'number' ? `[${segment}]` : `${index === 0 ? '' : '.'}${String(segment)}`,
    )
    .join('');
}

/**
 * A 400 OperationOutcome with one issue per bad field, `expression` naming it. Zod's messages
 * and ours never quote the value, so a secret sent in the wrong place is not echoed.
 */
export function validationError(error: z.ZodError): FhirRequestError {
  const issues: OperationOutcomeIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        issues.push(
          outcomeIssue({
            code: 'structure',
            text: 'unknown field',
            expression: fieldPath([...issue.path, key]),
          }),
        );
      }
      continue;
    }
    const missing =
      (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) ||
      issue.message.startsWith('required');
    issues.push(
      outcomeIssue({
        code: missing ? 'required' : issue.code === 'invalid_type' ? 'structure' : 'value',
        text: missing ? 'required' : issue.message,
        expression: issue.path.length > 0 ? fieldPath(issue.path) : undefined,
      }),
    );
  }
  return new FhirRequestError(400, operationOutcome(issues), { cause: error });
}
