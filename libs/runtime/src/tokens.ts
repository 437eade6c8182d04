/** Injection tokens of the infrastructure both apps share. */
export const APP_CONFIG = Symbol('APP_CONFIG');
export const STORE = Symbol('STORE');
export const LEDGER = Symbol('LEDGER');
