import { createHash, timingSafeEqual } from 'node:crypto';
import type { StoreDb } from './database';
import type { SourceOrganisation } from './schema';

/** A registered sender, as the bridge needs it on every request. */
export interface SourceRecord {
  readonly id: string;
  readonly name: string;
  readonly organisation: SourceOrganisation;
  readonly fhirBaseUrl?: string;
  readonly tokenSha256: Buffer;
  readonly defaultSecret: boolean;
}

export interface SourceRegistration {
  readonly id: string;
  readonly name: string;
  readonly organisation: SourceOrganisation;
  readonly fhirBaseUrl?: string;
  /** The bearer secret in clear (hashed before it is stored) ... */
  readonly token?: string;
  /** ... or its SHA-256 in hex, so a config file need not hold the secret. */
  readonly tokenSha256?: string;
  readonly defaultSecret?: boolean;
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

export class SourcesRepository {
  constructor(private readonly db: StoreDb) {}

  /** Registers or updates a source (config file at start, admin API later). */
  async upsert(source: SourceRegistration): Promise<void> {
    const tokenSha256 = source.token
      ? hashToken(source.token)
      : source.tokenSha256
        ? Buffer.from(source.tokenSha256, 'hex')
        : undefined;
    if (!tokenSha256 || tokenSha256.length !== 32) {
      throw new Error(`source ${source.id}: a token or a 64-hex-digit tokenSha256 is required`);
    }
    const row = {
      id: source.id,
      name: source.name,
      organisation: JSON.stringify(source.organisation),
      fhir_base_url: source.fhirBaseUrl ?? null,
      token_sha256: tokenSha256,
      default_secret: source.defaultSecret ?? false,
    };
    await this.db
      .insertInto('sources')
      .values(row)
      .onConflict((oc) =>
        oc.column('id').doUpdateSet({
          name: row.name,
          organisation: row.organisation,
          fhir_base_url: row.fhir_base_url,
          token_sha256: row.token_sha256,
          default_secret: row.default_secret,
          updated_at: new Date(),
        }),
      )
      .execute();
  }

  async findById(id: string): Promise<SourceRecord | undefined> {
    const row = await this.db.selectFrom('sources').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    return {
      id: row.id,
      name: row.name,
      organisation: row.organisation,
      fhirBaseUrl: row.fhir_base_url ?? undefined,
      tokenSha256: row.token_sha256,
      defaultSecret: row.default_secret,
    };
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
}
