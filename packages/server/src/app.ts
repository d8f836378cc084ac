import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { LIFTOFF_VERSION, LiftoffError, Whoami, formatPath } from '@liftoff/core';
import { authenticate } from './auth.js';
import type { App, AppContext } from './context.js';
import { agentRoutes } from './routes/agents.js';
import { archiveRoutes } from './routes/archives.js';
import { itemRoutes } from './routes/items.js';
import { queueRoutes } from './routes/queues.js';
import { runRoutes } from './routes/runs.js';

/** Builds the HTTP API: every route under /api needs a key, validates with the shared zod schemas. */
export async function buildApp(ctx: AppContext, logger: FastifyBaseLogger): Promise<App> {
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: 8 * 1024 * 1024,
    // Long-polls are held for up to pollTimeoutMs; keep sockets open a bit longer than that.
    keepAliveTimeout: ctx.settings.pollTimeoutMs + 5_000,
    requestTimeout: 0,
    forceCloseConnections: true,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Liftoff API',
        version: LIFTOFF_VERSION,
        description: 'Queues, items, runs, logs and launch agents.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  app.decorateRequest('principal');
  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith('/api/')) req.principal = await authenticate(ctx.store, req);
  });

  app.setErrorHandler((err, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issues = err.validation as ReadonlyArray<{ instancePath: string; message?: string }>;
      const lines = issues.map((v) => {
        const path = v.instancePath.replace(/^\//, '').split('/').filter(Boolean);
        const field = [err.validationContext ?? '', ...path].filter((p) => p !== '');
        return `${formatPath(field)}: ${v.message ?? 'invalid'}`;
      });
      return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: `Invalid request: ${lines.join('; ')}` } });
    }
    if (err instanceof LiftoffError) {
      return reply.code(err.httpStatus).send({ error: { code: err.code, message: err.message } });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status < 500) {
      return reply.code(status).send({ error: { code: 'BAD_REQUEST', message: (err as Error).message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: { code: 'INTERNAL', message: 'Internal server error; see the server log.' } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `No route ${req.method} ${req.url}.` } }),
  );

  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/api/whoami', { schema: { tags: ['auth'], response: { 200: Whoami } } }, async (req) => ({
    key_name: req.principal.keyName,
    role: req.principal.role,
    entity: req.principal.entityId ? (await ctx.store.entityById(req.principal.entityId)).name : '*',
  }));
  app.get('/healthz', { schema: { hide: true, response: { 200: z.object({ ok: z.boolean() }) } } }, async () => ({
    ok: true,
  }));

  queueRoutes(app, ctx);
  itemRoutes(app, ctx);
  runRoutes(app, ctx);
  agentRoutes(app, ctx);
  archiveRoutes(app, ctx);
  return app;
}
