import { timingSafeEqual } from 'node:crypto';
import type { StoreDb } from './database';
import { hashToken } from './sources.repository';

/**
 * Checks a presented key against every stored hash in constant time: all hashes are compared, with
 * no early exit, so neither which key matched nor how many there are shows in the timing.
 */
export function keyMatchesAny(presented: string, hashes: readonly Buffer[]): boolean {
  const actual = hashToken(presented);
  let matched = false;
  for (const expected of hashes) {
    const equal = expected.length === actual.length && timingSafeEqual(actual, expected);
    matched = equal || matched;
  }
  return matched;
}

/** Keys of the admin API, stored only as SHA-256 hashes. */
export class AdminKeysRepository {
  constructor(private readonly db: StoreDb) {}

  /** Registers (or replaces) the key known as `id`. */
  async register(id: string, key: string, defaultSecret: boolean): Promise<void> {
    const row = { key_sha256: hashToken(key), default_secret: defaultSecret };
    await this.db
      .insertInto('admin_api_keys')
      .values({ id, ...row })
      .onConflict((oc) => oc.column('id').doUpdateSet({ ...row, updated_at: new Date() }))
      .execute();
  }

  async remove(id: string): Promise<void> {
    await this.db.deleteFrom('admin_api_keys').where('id', '=', id).execute();
  }

  async hashes(): Promise<readonly Buffer[]> {
    const rows = await this.db.selectFrom('admin_api_keys').select('key_sha256').execute();
    return rows.map((r) => r.key_sha256);
  }

  /** Ids of keys that are a well-known development default. */
  async withDefaultSecret(): Promise<readonly string[]> {
    const rows = await this.db
      .selectFrom('admin_api_keys')
      .select('id')
      .where('default_secret', '=', true)
      .execute();
    return rows.map((r) => r.id);
  }
}
