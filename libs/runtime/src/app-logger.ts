import { ConsoleLogger, type LogLevel } from '@nestjs/common';
import type { AppConfig } from '@fhir-trail/config';

const ORDER: readonly LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/**
 * Structured JSON logs (one object per line) at the configured level. Callers log ids, counts and
 * codes only — never a resource body or an element value (PHI).
 */
export function createAppLogger(config: AppConfig, context: string): ConsoleLogger {
  const upTo = ORDER.indexOf(config.logLevel);
  return new ConsoleLogger(context, { json: true, logLevels: ORDER.slice(0, upTo + 1), colors: false });
}
