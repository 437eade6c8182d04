import { ConfigError, configHelp, DEV_ADMIN_API_KEY, DEV_MASTER_KEY_HEX, loadConfig } from './app-config';

describe('loadConfig', () => {
  it('gives the embedded defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.env).toBe('development');
    expect(config.ledger.rpcUrl).toBeUndefined();
    expect(config.ledger.masterKey.toString('hex')).toBe(DEV_MASTER_KEY_HEX);
    expect(config.ledger.masterKeyIsDefault).toBe(true);
    expect(config.databaseUrl).toMatch(/^postgres:\/\//);
  });

  it('names every problem at once', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'eighty',
        REDIS_URL: 'http://nope',
        LEDGER_BATCH_SIZE: '0',
        LEDGER_CONTRACT_ADDRESS: '0x1234',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/PORT/);
    expect(problems).toMatch(/REDIS_URL: must be a URL with scheme redis or rediss/);
    expect(problems).toMatch(/LEDGER_BATCH_SIZE/);
    expect(problems).toMatch(/LEDGER_CONTRACT_ADDRESS/);
    expect((error as ConfigError).problems).toHaveLength(4);
  });

  it('requires a signing key with an external chain and a master key in production', () => {
    expect(() => loadConfig({ LEDGER_RPC_URL: 'http://127.0.0.1:9999', NODE_ENV: 'production' })).toThrow(
      /LEDGER_PRIVATE_KEY: required when LEDGER_RPC_URL is set[\s\S]*LEDGER_MASTER_KEY: required in production/,
    );
  });

  it('gives the development admin key outside production only, flagged as the default', () => {
    expect(loadConfig({}).admin).toEqual({ apiKey: DEV_ADMIN_API_KEY, apiKeyIsDefault: true });
    expect(loadConfig({ ADMIN_API_KEY: 'an-admin-key-of-16+' }).admin).toEqual({
      apiKey: 'an-admin-key-of-16+',
      apiKeyIsDefault: false,
    });
    const production = { NODE_ENV: 'production', LEDGER_MASTER_KEY: '11'.repeat(32) };
    expect(loadConfig(production).admin).toEqual({ apiKey: undefined, apiKeyIsDefault: false });
    expect(() => loadConfig({ ...production, ADMIN_API_KEY: DEV_ADMIN_API_KEY })).toThrow(
      /ADMIN_API_KEY: at least 16 characters/,
    );
  });

  it('accepts recipient JWTs only with an issuer and an audience', () => {
    expect(loadConfig({}).recipientJwt).toBeUndefined();
    expect(() => loadConfig({ RECIPIENT_JWT_SECRET: 's'.repeat(32) })).toThrow(
      /RECIPIENT_JWT_ISSUER: required[\s\S]*RECIPIENT_JWT_AUDIENCE: required/,
    );
    expect(() => loadConfig({ RECIPIENT_JWT_SECRET: 'short' })).toThrow(/RECIPIENT_JWT_SECRET: at least 32/);
    expect(
      loadConfig({
        RECIPIENT_JWT_KEY_FILE: 'keys/jwks.json',
        RECIPIENT_JWT_ISSUER: 'https://auth.example',
        RECIPIENT_JWT_AUDIENCE: 'https://bridge.example',
      }).recipientJwt,
    ).toEqual({
      hs256Secret: undefined,
      keyFile: expect.stringMatching(/^\/.*keys\/jwks\.json$/) as unknown,
      issuer: 'https://auth.example',
      audience: 'https://bridge.example',
    });
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ LEDGER_RPC_URL: '', SOURCES_FILE: ' ' }).ledger.rpcUrl).toBeUndefined();
  });

  it('documents every variable with its default in --help', () => {
    const help = configHelp('bridge', 'test');
    expect(help).toMatch(/PORT\s+HTTP port of the bridge \[default: 8080\]/);
    expect(help).toMatch(/LEDGER_RPC_URL\s+EVM JSON-RPC endpoint/);
  });
});
