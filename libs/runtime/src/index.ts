export * from './app-logger';
export * from './file-lock';
export * from './ledger-connection';
export * from './redis-connection';
export * from './runtime.module';
export * from './tokens';
export * from './run-main';
export * from './source-clients';
