import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import fastify from 'fastify';
import { serveHookFastPath } from './hook-route';
import type { AcceptedNotification, HookRequest, NotificationsService } from './notifications.service';

describe('serveHookFastPath', () => {
  const accepted: AcceptedNotification = {
    inboxId: '42',
    shape: 'backport-history',
    notificationType: 'event-notification',
    eventCount: 2,
    warnings: [outcomeIssue({ severity: 'warning', code: 'structure', text: 'tolerated' })],
  };

  async function app(accept: (request: HookRequest) => Promise<AcceptedNotification>) {
    const instance = fastify();
    instance.removeAllContentTypeParsers();
    instance.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    serveHookFastPath(instance, { accept } as unknown as NotificationsService);
    // What Nest does in init(): register the controller's routes, with its own handlers.
    instance.post('/hooks/:sourceId', () => ({ nest: 'POST' }));
    instance.put('/hooks/:sourceId/:resourceType/:id', () => ({ nest: 'PUT' }));
    instance.setErrorHandler((error, _request, reply) => {
      const status = error instanceof FhirRequestError ? error.status : 500;
      void reply.status(status).send({ filtered: status });
    });
    await instance.ready();
    return instance;
  }

  it('answers POST /hooks/{sourceId} itself, as the controller would', async () => {
    const seen: HookRequest[] = [];
    const instance = await app((request) => {
      seen.push(request);
      return Promise.resolve(accepted);
    });
    const response = await instance.inject({
      method: 'POST',
      url: '/hooks/ehr?x=1',
      headers: { 'content-type': 'application/fhir+json', authorization: 'Bearer t' },
      payload: '{"resourceType":"Bundle"}',
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
    expect(response.json()).toEqual({
      resourceType: 'OperationOutcome',
      id: '42',
      issue: [
        {
          severity: 'information',
          code: 'informational',
          details: { text: 'accepted event-notification (backport-history, 2 events)' },
        },
        { severity: 'warning', code: 'structure', details: { text: 'tolerated' } },
      ],
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ sourceId: 'ehr', method: 'POST', path: '/hooks/ehr' });
    expect(seen[0].body.toString()).toBe('{"resourceType":"Bundle"}');
    // The other hook routes stay Nest's.
    const put = await instance.inject({ method: 'PUT', url: '/hooks/ehr/Patient/1', payload: '{}' });
    expect(put.json()).toEqual({ nest: 'PUT' });
    await instance.close();
  });

  it("leaves errors to the application's error handler (Nest's OperationOutcome filter)", async () => {
    const refused = new FhirRequestError(
      401,
      operationOutcome([outcomeIssue({ code: 'security', text: 'no' })]),
    );
    const instance = await app(() => Promise.reject(refused));
    const response = await instance.inject({ method: 'POST', url: '/hooks/ehr', payload: '{}' });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toEqual({ filtered: 401 });
    await instance.close();
  });
});
