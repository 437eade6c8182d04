import { resolve } from 'node:path';
import { z } from 'zod';

/** A key that is fine on a laptop and forbidden in production (the bridge refuses to start with it). */
export const DEV_MASTER_KEY_HEX = 'f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f';

/** The admin API key outside production when ADMIN_API_KEY is unset; public, so never in production. */
export const DEV_ADMIN_API_KEY = 'dev-admin-key';

const port = z.coerce.number().int().min(1).max(65_535);
const positiveInt = z.coerce.number().int().positive();
const url = (protocols: readonly string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL with scheme ${protocols.map((p) => p.replace(':', '')).join(' or ')}` },
  );
const hex32 = z
  .string()
  .regex(/^(0x)?[0-9a-fA-F]{64}$/, 'must be 32 bytes of hex (64 hex digits, optional 0x prefix)');
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/**
 * Every setting of both apps, from the environment. Defaults are the embedded ones, so a bare
 * `npm start` works on a developer machine; each entry's description feeds `--help` and the README.
 */
export const configSchema = z.object({
  NODE_ENV: z
    .enum(['development', 'test', 'production'])
    .default('development')
    .describe('development seeds the `demo` source; production refuses default secrets'),
  HOST: z
    .string()
    .min(1)
    .default('127.0.0.1')
    .describe('interface the bridge listens on (0.0.0.0 in containers)'),
  PORT: port.default(8080).describe('HTTP port of the bridge'),
  DATABASE_URL: url(['postgres:', 'postgresql:'])
    .default('postgres://postgres:postgres@127.0.0.1:5432/fhirtrail')
    .describe('PostgreSQL system of record; the database is created if missing, migrations run on start'),
  REDIS_URL: url(['redis:', 'rediss:'])
    .default('redis://127.0.0.1:6379')
    .describe('Redis for the BullMQ queues'),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only')
    .default('fhir-trail')
    .describe('prefix of every BullMQ key in Redis'),
  DATA_DIR: z
    .string()
    .min(1)
    .default('.data')
    .describe('local state: embedded chain, contract deployment record'),
  SOURCES_FILE: optionalString.describe('JSON file of sources to register at start (see README)'),
  MAPPING_PROFILES_DIR: optionalString.describe(
    'folder of mapping profiles (*.json) loaded at start: each new content becomes a version, active if none is',
  ),
  MAX_BODY_BYTES: positiveInt
    .default(5 * 1024 * 1024)
    .describe('largest notification body accepted (413 above)'),
  LOG_LEVEL: z
    .enum(['error', 'warn', 'log', 'debug', 'verbose'])
    .default('log')
    .describe('lowest log level written'),
  LEDGER_RPC_URL: optionalString
    .pipe(url(['http:', 'https:']).optional())
    .describe('EVM JSON-RPC endpoint; unset = start the embedded dev chain (anvil) under DATA_DIR'),
  LEDGER_PRIVATE_KEY: optionalString
    .pipe(hex32.optional())
    .describe('anchorer signing key (required with LEDGER_RPC_URL; embedded chain uses its dev account)'),
  LEDGER_CONTRACT_ADDRESS: optionalString
    .pipe(
      z
        .string()
        .regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte address')
        .optional(),
    )
    .describe('deployed FhirTrailAnchor; unset = deploy once and remember it under DATA_DIR'),
  LEDGER_CONSENT_PRIVATE_KEY: optionalString
    .pipe(hex32.optional())
    .describe(
      'consent registry registrar key (unset: dev account #1 on the embedded chain; with LEDGER_RPC_URL, no registry mirroring)',
    ),
  LEDGER_CONSENT_REGISTRY_ADDRESS: optionalString
    .pipe(
      z
        .string()
        .regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte address')
        .optional(),
    )
    .describe('deployed FhirTrailConsentRegistry; unset = deploy once and remember it under DATA_DIR'),
  LEDGER_EMBEDDED_PORT: port.default(8545).describe('port of the embedded dev chain'),
  LEDGER_BATCH_SIZE: positiveInt.default(100).describe('a batch closes at this many ledger leaves...'),
  LEDGER_BATCH_INTERVAL_MS: positiveInt.default(2000).describe('...or after this many ms, whichever first'),
  LEDGER_FINALITY_DEPTH: z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .describe(
      'blocks on top of an anchor before its checkpoint is recorded: 0 for QBFT and the dev chain, e.g. 12 on a public chain',
    ),
  LEDGER_RECEIPT_TIMEOUT_MS: positiveInt
    .default(120_000)
    .describe('an anchor run stops waiting for a receipt after this long (the tx stays in the outbox)'),
  LEDGER_RESEND_AFTER_MS: positiveInt
    .default(15_000)
    .describe('re-send the signed anchor tx unchanged when it has no receipt after this long'),
  LEDGER_REPLACE_AFTER_MS: positiveInt
    .default(60_000)
    .describe('replace a stuck anchor tx with a fee-bumped one (same nonce) after this long'),
  LEDGER_MASTER_KEY: optionalString
    .pipe(hex32.optional())
    .describe(
      'wraps the per-patient keys used for pseudonyms and digests (dev default refused in production)',
    ),
  INBOX_RELAY_INTERVAL_MS: positiveInt
    .default(5000)
    .describe(
      'how often the worker re-enqueues accepted notifications and pending share fan-outs that have no live job',
    ),
  BRIDGE_ID: z
    .string()
    .min(1)
    .default('fhir-trail-bridge')
    .describe('identifier of this bridge in Provenance'),
  GAP_GRACE_MS: positiveInt
    .default(10_000)
    .describe("how long a gap in a subscription's event numbers may fill by itself before $events is called"),
  RECOVERY_SWEEP_INTERVAL_MS: positiveInt
    .default(30_000)
    .describe('how often the worker re-checks open gaps and subscriptions silent past their heartbeat'),
  CONSENT_API_KEY: optionalString
    .pipe(z.string().min(16, 'at least 16 characters').optional())
    .describe(
      'key a patient app presents (Authorization: Bearer) to POST /fhir/R4/Consent; the admin key also works',
    ),
  RECIPIENT_JWT_SECRET: optionalString
    .pipe(z.string().min(32, 'at least 32 characters').optional())
    .describe(
      'shared secret verifying HS256 bearer JWTs of recipients reading /fhir/R4 (sub = destination id); unset = no HS256',
    ),
  RECIPIENT_JWT_KEY_FILE: optionalString.describe(
    'PEM public key or JWKS (JSON) file verifying RS256/ES256 bearer JWTs of recipients reading /fhir/R4',
  ),
  RECIPIENT_JWT_ISSUER: optionalString.describe(
    'the iss recipient JWTs must carry (required when a JWT key or secret is set)',
  ),
  RECIPIENT_JWT_AUDIENCE: optionalString.describe(
    'the aud recipient JWTs must carry (required when a JWT key or secret is set)',
  ),
  ADMIN_API_KEY: optionalString
    .pipe(z.string().min(16, 'at least 16 characters').optional())
    .describe(
      'key of the /admin API (Authorization: Bearer), stored hashed; unset = dev-admin-key outside production, no admin access in production',
    ),
});

export type RawConfig = z.infer<typeof configSchema>;

/** Validated, resolved configuration shared by the bridge and the worker. */
export interface AppConfig {
  readonly env: RawConfig['NODE_ENV'];
  readonly host: string;
  readonly port: number;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly queuePrefix: string;
  readonly dataDir: string;
  readonly sourcesFile?: string;
  readonly mappingProfilesDir?: string;
  readonly maxBodyBytes: number;
  readonly logLevel: RawConfig['LOG_LEVEL'];
  readonly bridgeId: string;
  readonly inboxRelayIntervalMs: number;
  readonly gapGraceMs: number;
  readonly recoverySweepIntervalMs: number;
  /** Key a patient app presents to post Consent resources (the admin key is accepted too). */
  readonly consentApiKey?: string;
  /** How recipients' OAuth2 bearer JWTs are verified (reads); undefined = JWTs not accepted. */
  readonly recipientJwt?: {
    readonly hs256Secret?: string;
    /** Absolute path of a PEM public key or a JWKS file (RS256 / ES256). */
    readonly keyFile?: string;
    readonly issuer: string;
    readonly audience: string;
  };
  readonly admin: {
    /** The key the /admin API accepts; undefined in production without ADMIN_API_KEY (admin API closed). */
    readonly apiKey?: string;
    /** True when `apiKey` is the public development default. */
    readonly apiKeyIsDefault: boolean;
  };
  readonly ledger: {
    readonly rpcUrl?: string;
    readonly privateKey?: string;
    readonly contractAddress?: string;
    readonly embeddedPort: number;
    readonly batchSize: number;
    readonly batchIntervalMs: number;
    readonly finalityDepth: number;
    readonly receiptTimeoutMs: number;
    readonly resendAfterMs: number;
    readonly replaceAfterMs: number;
    readonly masterKey: Buffer;
    readonly masterKeyIsDefault: boolean;
    /** Registrar key of the consent registry; undefined = no registry mirroring (external chain without a key). */
    readonly consentPrivateKey?: string;
    readonly consentRegistryAddress?: string;
  };
}

/** Thrown when the environment does not describe a runnable app; `problems` names every one. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Validates the environment and returns the resolved configuration, or throws a ConfigError
 * listing every problem at once (not just the first).
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): AppConfig {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
    );
  }
  const raw = parsed.data;
  const problems: string[] = [];
  if (raw.LEDGER_RPC_URL && !raw.LEDGER_PRIVATE_KEY) {
    problems.push(
      'LEDGER_PRIVATE_KEY: required when LEDGER_RPC_URL is set (the anchorer signs batches with it)',
    );
  }
  const masterKeyIsDefault = !raw.LEDGER_MASTER_KEY;
  if (raw.NODE_ENV === 'production' && masterKeyIsDefault) {
    problems.push('LEDGER_MASTER_KEY: required in production (the development default is public)');
  }
  if (raw.RECIPIENT_JWT_SECRET || raw.RECIPIENT_JWT_KEY_FILE) {
    for (const name of ['RECIPIENT_JWT_ISSUER', 'RECIPIENT_JWT_AUDIENCE'] as const) {
      if (!raw[name]) problems.push(`${name}: required when recipient JWTs are accepted`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const adminKeyIsDefault = !raw.ADMIN_API_KEY && raw.NODE_ENV !== 'production';
  return {
    env: raw.NODE_ENV,
    host: raw.HOST,
    port: raw.PORT,
    databaseUrl: raw.DATABASE_URL,
    redisUrl: raw.REDIS_URL,
    queuePrefix: raw.QUEUE_PREFIX,
    dataDir: resolve(raw.DATA_DIR),
    sourcesFile: raw.SOURCES_FILE ? resolve(raw.SOURCES_FILE) : undefined,
    mappingProfilesDir: raw.MAPPING_PROFILES_DIR ? resolve(raw.MAPPING_PROFILES_DIR) : undefined,
    maxBodyBytes: raw.MAX_BODY_BYTES,
    logLevel: raw.LOG_LEVEL,
    bridgeId: raw.BRIDGE_ID,
    inboxRelayIntervalMs: raw.INBOX_RELAY_INTERVAL_MS,
    gapGraceMs: raw.GAP_GRACE_MS,
    recoverySweepIntervalMs: raw.RECOVERY_SWEEP_INTERVAL_MS,
    consentApiKey: raw.CONSENT_API_KEY,
    recipientJwt:
      (raw.RECIPIENT_JWT_SECRET || raw.RECIPIENT_JWT_KEY_FILE) &&
      raw.RECIPIENT_JWT_ISSUER &&
      raw.RECIPIENT_JWT_AUDIENCE
        ? {
            hs256Secret: raw.RECIPIENT_JWT_SECRET,
            keyFile: raw.RECIPIENT_JWT_KEY_FILE ? resolve(raw.RECIPIENT_JWT_KEY_FILE) : undefined,
            issuer: raw.RECIPIENT_JWT_ISSUER,
            audience: raw.RECIPIENT_JWT_AUDIENCE,
          }
        : undefined,
    admin: {
      apiKey: raw.ADMIN_API_KEY ?? (adminKeyIsDefault ? DEV_ADMIN_API_KEY : undefined),
      apiKeyIsDefault: adminKeyIsDefault,
    },
    ledger: {
      rpcUrl: raw.LEDGER_RPC_URL,
      privateKey: raw.LEDGER_PRIVATE_KEY ? normaliseHex(raw.LEDGER_PRIVATE_KEY) : undefined,
      contractAddress: raw.LEDGER_CONTRACT_ADDRESS,
      embeddedPort: raw.LEDGER_EMBEDDED_PORT,
      batchSize: raw.LEDGER_BATCH_SIZE,
      batchIntervalMs: raw.LEDGER_BATCH_INTERVAL_MS,
      finalityDepth: raw.LEDGER_FINALITY_DEPTH,
      receiptTimeoutMs: raw.LEDGER_RECEIPT_TIMEOUT_MS,
      resendAfterMs: raw.LEDGER_RESEND_AFTER_MS,
      replaceAfterMs: raw.LEDGER_REPLACE_AFTER_MS,
      masterKey: Buffer.from((raw.LEDGER_MASTER_KEY ?? DEV_MASTER_KEY_HEX).replace(/^0x/, ''), 'hex'),
      masterKeyIsDefault,
      consentPrivateKey: raw.LEDGER_CONSENT_PRIVATE_KEY
        ? normaliseHex(raw.LEDGER_CONSENT_PRIVATE_KEY)
        : raw.LEDGER_RPC_URL
          ? undefined
          : DEV_CONSENT_REGISTRAR_KEY,
      consentRegistryAddress: raw.LEDGER_CONSENT_REGISTRY_ADDRESS,
    },
  };
}

/** anvil dev account #1 (public "test … junk" mnemonic): the embedded chain's consent registrar. */
const DEV_CONSENT_REGISTRAR_KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';

function normaliseHex(value: string): string {
  return value.startsWith('0x') ? value : `0x${value}`;
}

/** `--help` text generated from the schema, so it cannot drift from what is validated. */
export function configHelp(appName: string, summary: string): string {
  const lines = [`${appName} — ${summary}`, '', 'Configuration (environment variables):'];
  for (const [name, schema] of Object.entries(configSchema.shape)) {
    const description = schema.description ?? '';
    const fallback = defaultOf(schema);
    lines.push(
      `  ${name.padEnd(26)} ${description}${fallback === undefined ? '' : ` [default: ${fallback}]`}`,
    );
  }
  return lines.join('\n');
}

function defaultOf(schema: z.ZodType): string | undefined {
  const result = schema.safeParse(undefined);
  if (!result.success || result.data === undefined) return undefined;
  return typeof result.data === 'string' ? result.data : JSON.stringify(result.data);
}
