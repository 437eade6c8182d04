import { createHash, type JsonWebKey, timingSafeEqual } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { StoreDb } from './database';
import { unwrapKey, wrapKey } from './patient-keys.repository';
import type {
  FhirAuthSettings,
  SenderAuthKind,
  SenderProfile,
  SignatureKind,
  SourceOrganisation,
  SourcesTable,
} from './schema';

/** The profile of a source registered without one: an IG-conformant sender that never notifies deletes. */
export const DEFAULT_SENDER_PROFILE: SenderProfile = {
  counter: 'subscription',
  deleteStyle: 'none',
  // athenahealth's hard limit, the shortest any known sender gives.
  responseBudgetMs: 2_000,
};

/** A registered sender, as the bridge and the worker need it; never a secret in clear. */
export interface SourceRecord {
  readonly id: string;
  readonly name: string;
  readonly organisation: SourceOrganisation;
  readonly fhirBaseUrl?: string;
  /** Every check a notification must pass, in the order the bridge runs them. */
  readonly senderAuth: readonly SenderAuthKind[];
  /** SHA-256 of the bearer secret, when `bearer` is among `senderAuth`. */
  readonly tokenSha256?: Buffer;
  readonly fhirAuth: FhirAuthSettings;
  readonly senderProfile: SenderProfile;
  readonly mappingProfile?: string;
  /** Notifications per second the bridge accepts from this source; unset = no limit. */
  readonly rateLimitPerSecond?: number;
  /** False once deleted through the admin API: its hooks answer 404, its stored rows remain. */
  readonly enabled: boolean;
  readonly defaultSecret: boolean;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly disabledAt?: Date;
}

/** The bearer check: the secret in clear (hashed before it is stored) or its SHA-256 in hex. */
export interface BearerRegistration {
  readonly token?: string;
  readonly tokenSha256?: string;
}

/** The HMAC check; the secret is stored wrapped under the master key, since verifying needs it. */
export interface SignatureRegistration {
  readonly kind: SignatureKind;
  readonly secret?: string;
}

/** How the bridge calls the source back, secret parts included (they are stored wrapped). */
export type FhirAuthRegistration =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer'; readonly token?: string }
  | (Extract<FhirAuthSettings, { kind: 'smart-backend' }> & { readonly privateKey?: JsonWebKey });

/**
 * A source as registered (SOURCES_FILE, admin API). Secrets left out of a `replace` keep the stored
 * ones when the same kind is still configured; `upsert` and `create` need every secret.
 */
export interface SourceRegistration {
  readonly id: string;
  readonly name: string;
  readonly organisation: SourceOrganisation;
  readonly fhirBaseUrl?: string;
  readonly senderAuth?: { readonly bearer?: BearerRegistration; readonly signature?: SignatureRegistration };
  /** Shorthand for `senderAuth.bearer.token` (the original SOURCES_FILE format). */
  readonly token?: string;
  /** Shorthand for `senderAuth.bearer.tokenSha256`. */
  readonly tokenSha256?: string;
  readonly fhirAuth?: FhirAuthRegistration;
  readonly senderProfile?: Partial<SenderProfile>;
  readonly mappingProfile?: string;
  readonly rateLimitPerSecond?: number;
  readonly defaultSecret?: boolean;
}

/** What the intake checks a notification against; held in memory only. */
export interface SenderCredentials {
  readonly tokenSha256?: Buffer;
  /** SHA-256 of the bearer secrets of subscriptions the bridge created on this source. */
  readonly subscriptionTokenSha256s?: readonly Buffer[];
  readonly signature?: { readonly kind: SignatureKind; readonly secret: Buffer };
}

/** How to call a source's FHIR API, secrets unwrapped (for the fetch-back client only). */
export type FhirCredentials =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer'; readonly token: string }
  | (Extract<FhirAuthSettings, { kind: 'smart-backend' }> & { readonly privateKey: JsonWebKey });

/** `create` found the id taken (a disabled source keeps its id: its rows refer to it). */
export class SourceExistsError extends Error {
  readonly code = 'SOURCE_EXISTS';
  constructor(readonly sourceId: string) {
    super(`source ${sourceId} already exists`);
    this.name = 'SourceExistsError';
  }
}

/** A check or call-back method needs a secret that was neither given nor stored. */
export class SourceSecretRequiredError extends Error {
  readonly code = 'SOURCE_SECRET_REQUIRED';
  constructor(
    readonly sourceId: string,
    /** Where in the registration the secret goes, e.g. `senderAuth.signature.secret`. */
    readonly field: string,
  ) {
    super(`source ${sourceId}: ${field} is required (no stored secret to keep)`);
    this.name = 'SourceSecretRequiredError';
  }
}

/** SHA-256 of a bearer secret. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Constant-time check of a presented bearer secret against the stored hash. */
export function tokenMatches(presented: string, expectedSha256: Buffer): boolean {
  const actual = hashToken(presented);
  return actual.length === expectedSha256.length && timingSafeEqual(actual, expectedSha256);
}

/** Associated data binding a wrapped secret to its source and its use, so it cannot be moved. */
const signatureContext = (id: string) => `source-secret|${id}`;
const fhirAuthContext = (id: string) => `source-fhir-auth|${id}`;

type SourceRow = Selectable<SourcesTable>;
type SecretColumns = Pick<
  SourceRow,
  'token_sha256' | 'signature_kind' | 'signature_secret' | 'fhir_auth_secret' | 'default_secret'
> & { fhir_auth: string };

export class SourcesRepository {
  constructor(
    private readonly db: StoreDb,
    private readonly masterKey: Buffer,
  ) {}

  /**
   * Registers or updates a source from configuration (SOURCES_FILE, the demo source). Every secret
   * must be given. Whether the source is enabled is left as it is: only the admin API changes that.
   */
  async upsert(source: SourceRegistration): Promise<void> {
    const row = { ...this.settingsColumns(source), ...this.secretColumns(source) };
    await this.db
      .insertInto('sources')
      .values({ id: source.id, ...row })
      .onConflict((oc) => oc.column('id').doUpdateSet({ ...row, updated_at: new Date() }))
      .execute();
  }

  /** Registers a new source; throws SourceExistsError when the id is taken (even by a disabled one). */
  async create(source: SourceRegistration): Promise<SourceRecord> {
    const row = await this.db
      .insertInto('sources')
      .values({ id: source.id, ...this.settingsColumns(source), ...this.secretColumns(source) })
      .onConflict((oc) => oc.column('id').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new SourceExistsError(source.id);
    return toRecord(row);
  }

  /**
   * Replaces an existing source's registration and enables it again. A secret left out is kept when
   * its kind is still configured (SourceSecretRequiredError otherwise). Undefined if there is no such source.
   */
  async replace(source: SourceRegistration): Promise<SourceRecord | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const existing = await trx
        .selectFrom('sources')
        .selectAll()
        .where('id', '=', source.id)
        .forUpdate()
        .executeTakeFirst();
      if (!existing) return undefined;
      const row = await trx
        .updateTable('sources')
        .set({
          ...this.settingsColumns(source),
          ...this.secretColumns(source, existing),
          updated_at: new Date(),
          disabled_at: null,
        })
        .where('id', '=', source.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRecord(row);
    });
  }

  /** Soft delete: the source stops being accepted; what it sent stays. Undefined if unknown. */
  async disable(id: string): Promise<SourceRecord | undefined> {
    const row = await this.db
      .updateTable('sources')
      .set((eb) => ({
        disabled_at: eb.fn.coalesce('disabled_at', eb.val(new Date())),
        updated_at: new Date(),
      }))
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  /** Enabled and disabled sources alike (the worker still processes what a disabled one sent). */
  async findById(id: string): Promise<SourceRecord | undefined> {
    const row = await this.db.selectFrom('sources').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async list(): Promise<readonly SourceRecord[]> {
    const rows = await this.db.selectFrom('sources').selectAll().orderBy('id').execute();
    return rows.map(toRecord);
  }

  /** The source with what its notifications are checked against (the HMAC secret unwrapped). */
  async findForIntake(
    id: string,
  ): Promise<{ source: SourceRecord; credentials: SenderCredentials } | undefined> {
    const row = await this.db.selectFrom('sources').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    const subscriptionTokens = await this.db
      .selectFrom('subscription_tokens')
      .select('token_sha256')
      .where('source_id', '=', id)
      .execute();
    const credentials: SenderCredentials = {
      tokenSha256: row.token_sha256 ?? undefined,
      subscriptionTokenSha256s: subscriptionTokens.map((t) => t.token_sha256),
      signature:
        row.signature_kind && row.signature_secret
          ? {
              kind: row.signature_kind,
              secret: unwrapKey(this.masterKey, row.signature_secret, signatureContext(row.id)),
            }
          : undefined,
    };
    return { source: toRecord(row), credentials };
  }

  /** How to call the source's FHIR API, secrets unwrapped; undefined for an unknown source. */
  async fhirCredentials(id: string): Promise<FhirCredentials | undefined> {
    const row = await this.db
      .selectFrom('sources')
      .select(['id', 'fhir_auth', 'fhir_auth_secret'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    const settings = row.fhir_auth;
    if (settings.kind === 'none' || !row.fhir_auth_secret) return { kind: 'none' };
    const secret = JSON.parse(
      unwrapKey(this.masterKey, row.fhir_auth_secret, fhirAuthContext(row.id)).toString('utf8'),
    ) as { token?: string; privateKey?: JsonWebKey };
    if (settings.kind === 'bearer' && typeof secret.token === 'string') {
      return { kind: 'bearer', token: secret.token };
    }
    if (settings.kind === 'smart-backend' && secret.privateKey)
      return { ...settings, privateKey: secret.privateKey };
    throw new Error(`source ${row.id}: the stored call-back credentials do not match fhirAuth.kind`);
  }

  /** Ids of sources still holding a well-known development secret. */
  async withDefaultSecret(): Promise<readonly string[]> {
    const rows = await this.db
      .selectFrom('sources')
      .select('id')
      .where('default_secret', '=', true)
      .execute();
    return rows.map((r) => r.id);
  }

  private settingsColumns(source: SourceRegistration) {
    return {
      name: source.name,
      organisation: JSON.stringify(source.organisation),
      fhir_base_url: source.fhirBaseUrl ?? null,
      sender_profile: JSON.stringify({ ...DEFAULT_SENDER_PROFILE, ...source.senderProfile }),
      mapping_profile: source.mappingProfile ?? null,
      rate_limit_per_second: source.rateLimitPerSecond ?? null,
    };
  }

  /** The secret-bearing columns; a secret left out is taken from `existing` when its kind stays. */
  private secretColumns(source: SourceRegistration, existing?: SourceRow): SecretColumns {
    const bearer =
      source.senderAuth?.bearer ??
      (source.token !== undefined || source.tokenSha256 !== undefined
        ? { token: source.token, tokenSha256: source.tokenSha256 }
        : undefined);
    const signature = source.senderAuth?.signature;
    if (!bearer && !signature) {
      throw new SourceSecretRequiredError(source.id, 'senderAuth');
    }

    let tokenSha256: Buffer | null = null;
    let bearerKept = false;
    if (bearer) {
      if (bearer.token !== undefined) tokenSha256 = hashToken(bearer.token);
      else if (bearer.tokenSha256 !== undefined) tokenSha256 = Buffer.from(bearer.tokenSha256, 'hex');
      else if (existing?.token_sha256) {
        tokenSha256 = existing.token_sha256;
        bearerKept = true;
      }
      if (!tokenSha256 || tokenSha256.length !== 32) {
        throw new SourceSecretRequiredError(source.id, 'senderAuth.bearer.token');
      }
    }

    let signatureSecret: Buffer | null = null;
    if (signature) {
      if (signature.secret !== undefined) {
        signatureSecret = wrapKey(
          this.masterKey,
          Buffer.from(signature.secret, 'utf8'),
          signatureContext(source.id),
        );
      } else if (existing?.signature_secret) {
        // Same source id, same context: the wrapped bytes stay valid as they are.
        signatureSecret = existing.signature_secret;
      } else {
        throw new SourceSecretRequiredError(source.id, 'senderAuth.signature.secret');
      }
    }

    const { settings, secret } = this.fhirAuthColumns(source, existing);
    return {
      token_sha256: tokenSha256,
      signature_kind: signature?.kind ?? null,
      signature_secret: signatureSecret,
      fhir_auth: JSON.stringify(settings),
      fhir_auth_secret: secret,
      default_secret: source.defaultSecret ?? (bearerKept && existing?.default_secret === true),
    };
  }

  private fhirAuthColumns(
    source: SourceRegistration,
    existing?: SourceRow,
  ): { settings: FhirAuthSettings; secret: Buffer | null } {
    const auth = source.fhirAuth ?? { kind: 'none' };
    const context = fhirAuthContext(source.id);
    const keep = existing?.fhir_auth.kind === auth.kind ? existing.fhir_auth_secret : null;
    switch (auth.kind) {
      case 'none':
        return { settings: { kind: 'none' }, secret: null };
      case 'bearer': {
        if (auth.token === undefined && !keep) {
          throw new SourceSecretRequiredError(source.id, 'fhirAuth.token');
        }
        const secret =
          auth.token === undefined
            ? keep
            : wrapKey(this.masterKey, Buffer.from(JSON.stringify({ token: auth.token })), context);
        return { settings: { kind: 'bearer' }, secret };
      }
      case 'smart-backend': {
        const { privateKey, ...settings } = auth;
        if (privateKey === undefined && !keep) {
          throw new SourceSecretRequiredError(source.id, 'fhirAuth.privateKey');
        }
        const secret =
          privateKey === undefined
            ? keep
            : wrapKey(this.masterKey, Buffer.from(JSON.stringify({ privateKey })), context);
        return { settings, secret };
      }
    }
  }
}

function toRecord(row: SourceRow): SourceRecord {
  const senderAuth: SenderAuthKind[] = [];
  if (row.token_sha256) senderAuth.push('bearer');
  if (row.signature_kind) senderAuth.push(row.signature_kind);
  return {
    id: row.id,
    name: row.name,
    organisation: row.organisation,
    fhirBaseUrl: row.fhir_base_url ?? undefined,
    senderAuth,
    tokenSha256: row.token_sha256 ?? undefined,
    fhirAuth: row.fhir_auth,
    senderProfile: { ...DEFAULT_SENDER_PROFILE, ...row.sender_profile },
    mappingProfile: row.mapping_profile ?? undefined,
    rateLimitPerSecond: row.rate_limit_per_second ?? undefined,
    enabled: row.disabled_at === null,
    defaultSecret: row.default_secret,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    disabledAt: row.disabled_at ?? undefined,
  };
}
