import type { INestApplicationContext, LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AppConfig } from '@fhir-trail/config';
import { createAppLogger } from '@fhir-trail/runtime';
import { WorkerModule } from './worker.module';

/** Builds and starts the worker (no HTTP listener): processors begin consuming on init. */
export async function createWorkerApp(
  config: AppConfig,
  logger?: LoggerService,
): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    logger: logger ?? createAppLogger(config, 'worker'),
    abortOnError: false,
  });
  app.enableShutdownHooks();
  await app.init();
  return app;
}
