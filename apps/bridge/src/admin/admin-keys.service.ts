import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';
import { keyMatchesAny, Store } from '@fhir-trail/store';
import { STORE } from '@fhir-trail/runtime';

/** The row ADMIN_API_KEY (or the development default) is registered under. */
export const CONFIGURED_ADMIN_KEY_ID = 'ADMIN_API_KEY';

/** How long the stored key hashes are reused; a rotated key takes effect on every replica within it. */
const CACHE_MS = 5_000;

/**
 * Registers the admin API key from the configuration, hashed: ADMIN_API_KEY, or the public
 * `dev-admin-key` outside production. Refuses to start in production while the development default
 * is registered (a database first used in development) — like sources, before anything else starts.
 * In production without ADMIN_API_KEY a previously configured key is removed: the admin API is closed.
 */
export async function registerAdminKey(config: AppConfig): Promise<void> {
  const store = await Store.open({
    databaseUrl: config.databaseUrl,
    masterKey: config.ledger.masterKey,
    migrate: true,
    max: 1,
  });
  try {
    const { apiKey, apiKeyIsDefault } = config.admin;
    if (apiKey !== undefined)
      await store.adminKeys.register(CONFIGURED_ADMIN_KEY_ID, apiKey, apiKeyIsDefault);
    const insecure = await store.adminKeys.withDefaultSecret();
    if (config.env === 'production' && insecure.length > 0) {
      throw new Error(
        `refusing to start in production: the admin API key (${insecure.join(', ')}) is still the ` +
          'development default; set ADMIN_API_KEY',
      );
    }
    if (apiKey === undefined) await store.adminKeys.remove(CONFIGURED_ADMIN_KEY_ID);
  } finally {
    await store.close();
  }
}

/** Checks admin API keys against the stored hashes. */
@Injectable()
export class AdminKeysService {
  private cached?: { at: number; hashes: readonly Buffer[] };

  constructor(@Inject(STORE) private readonly store: Store) {}

  /** Constant-time over every stored hash; false when no key is registered (admin API closed). */
  async matches(presented: string): Promise<boolean> {
    if (!this.cached || Date.now() - this.cached.at >= CACHE_MS) {
      this.cached = { at: Date.now(), hashes: await this.store.adminKeys.hashes() };
    }
    return keyMatchesAny(presented, this.cached.hashes);
  }
}
