import { Logger, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { AppConfig } from '@fhir-trail/config';
import { createAppLogger } from '@fhir-trail/runtime';
import { registerAdminKey } from './admin/admin-keys.service';
import { registerMappingProfiles } from './mappings/mapping-profiles.loader';
import { BridgeModule } from './bridge.module';
import { OperationOutcomeFilter } from './fhir/operation-outcome.filter';
import { serveHookFastPath } from './notifications/hook-route';
import { NotificationsService } from './notifications/notifications.service';
import { registerSources } from './notifications/sources.service';

/**
 * Builds the bridge (not yet listening). Bodies of every content type arrive as raw bytes, so the
 * intake can check the media type itself, verify signatures over the exact bytes, and store them
 * unchanged; Fastify enforces the size limit (413) before any byte is buffered past it, and Nest
 * hands its errors to the same OperationOutcome filter as everything else. `POST /hooks/{sourceId}`,
 * the intake's hot path, runs as a plain Fastify handler (see hook-route.ts); every other route,
 * and every error, goes through Nest.
 */
export async function createBridgeApp(
  config: AppConfig,
  logger?: LoggerService,
): Promise<NestFastifyApplication> {
  const sources = await registerSources(config);
  const mappingProfiles = await registerMappingProfiles(config);
  await registerAdminKey(config);
  const adapter = new FastifyAdapter({ bodyLimit: config.maxBodyBytes, logger: false, trustProxy: true });
  const fastify = adapter.getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  const app = await NestFactory.create<NestFastifyApplication>(BridgeModule.forRoot(config), adapter, {
    logger: logger ?? createAppLogger(config, 'bridge'),
    bodyParser: false,
    abortOnError: false,
  });
  app.useGlobalFilters(new OperationOutcomeFilter());
  // Before init: Nest registers its routes in init(), and the hot one gets the plain Fastify handler.
  serveHookFastPath(fastify, app.get(NotificationsService));
  new Logger('Bridge').log({
    msg: 'sources registered',
    count: sources,
    mappingProfileFiles: mappingProfiles,
  });
  app.enableShutdownHooks();

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('FHIR Trail bridge')
      .setDescription(
        'Receives FHIR subscription notifications, keeps them durably, and serves ledger proofs; ' +
          'sources are managed under /admin with the admin API key. Every error is a FHIR OperationOutcome.',
      )
      .setVersion('0.1.0')
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json' });
  return app;
}
