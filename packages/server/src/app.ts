import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyReply } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  AuthRateLimitedError,
  ConfigInvalidError,
  ForbiddenError,
  QueueConfigInvalidError,
  LIFTOFF_VERSION,
  LiftoffError,
  Whoami,
  formatPath,
} from '@liftoff/core';
import { authenticateLimited } from './authRateLimit.js';
import { compressAnswers } from './compression.js';
import {
  clientErrorHandler,
  dropRestOfBody,
  refuseNulCharacters,
  securityHeaders,
  socketTimeouts,
} from './hardening.js';
import type { App, AppContext } from './context.js';
import { agentRoutes } from './routes/agents.js';
import { archiveRoutes } from './routes/archives.js';
import { accountRoutes } from './routes/accounts.js';
import { entityRoutes } from './routes/entities.js';
import { metricsRoutes } from './routes/metrics.js';
import { countAnswers } from './metrics.js';
import { bodyTooLarge, limitJsonDepth } from './bodyLimits.js';
import { itemRoutes } from './routes/items.js';
import { queueRoutes } from './routes/queues.js';
import { runRoutes } from './routes/runs.js';
import { logViewRoutes } from './routes/logViews.js';
import { outputRoutes } from './routes/outputs.js';
import { secretRoutes } from './routes/secrets.js';
import { jobRoutes } from './routes/jobs.js';
import { sweepRoutes } from './routes/sweeps.js';
import { staticRoutes } from './routes/static.js';

const MAX_ISSUES = 10;

/** PEM text of the server's certificate (chain) and private key. */
export interface TlsFiles {
  cert: string;
  key: string;
}

/**
 * Builds the HTTP API: every route under /api needs a key, validates with the shared zod schemas. With `webDir`, the
 * web UI's build is served at `/` too.
 */
export async function buildApp(
  ctx: AppContext,
  logger: FastifyBaseLogger,
  opts: { webDir?: string; tls?: TlsFiles } = {},
): Promise<App> {
  const app = Fastify({
    // With TLS the server is an https.Server; the routes see the same request and reply objects either way.
    ...((opts.tls ? { https: { cert: opts.tls.cert, key: opts.tls.key } } : {}) as object),
    loggerInstance: logger,
    bodyLimit: 8 * 1024 * 1024,
    // Long-polls are held for up to pollTimeoutMs; keep sockets open a bit longer than that.
    keepAliveTimeout: ctx.settings.pollTimeoutMs + 5_000,
    requestTimeout: ctx.settings.requestTimeoutMs,
    http: socketTimeouts(ctx.settings),
    forceCloseConnections: true,
    // Every log line of a request carries its id (pino JSON, field reqId): the caller's X-Request-Id when it sends
    // one, else a UUID, unique across replicas unlike fastify's per-process counter. It is echoed back.
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Errors fastify finds before routing (a malformed URL, a bad content-type header) get the API's error shape
    // too, not fastify's own.
    frameworkErrors: (err, _req, reply) =>
      void (reply as FastifyReply)
        .code(err.statusCode ?? 400)
        .send({ error: { code: 'BAD_REQUEST', message: err.message } }),
    clientErrorHandler,
  }).withTypeProvider<ZodTypeProvider>();
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  securityHeaders(app);
  refuseNulCharacters(app);
  countAnswers(app, ctx.metrics);
  limitJsonDepth(app, ctx.settings);
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

  // Before any route: it decides per route, as routes are added, whether answers are compressed.
  await compressAnswers(app);

  app.decorateRequest('principal');
  app.addHook('onRequest', async (req) => {
    if (!req.url.startsWith('/api/')) return;
    // Only failures count towards the rate limit; a valid key is never held back by them (authRateLimit.ts).
    req.principal = await authenticateLimited(ctx, req);
    // Agent keys run the agent protocol and read their entity; everything else needs a user key.
    const tags = (req.routeOptions.schema as { tags?: string[] } | undefined)?.tags ?? [];
    if (req.principal.role === 'agent' && req.method !== 'GET' && !tags.includes('agent protocol'))
      throw new ForbiddenError('An agent key may only run the agent protocol and read; use a user or admin key.');
  });

  app.setErrorHandler((err, req, reply) => {
    if (dropRestOfBody(req.raw)) reply.removeHeader('connection');
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issues = err.validation as ReadonlyArray<{ instancePath: string; message?: string }>;
      const lines = issues.map((v) => {
        const path = v.instancePath.replace(/^\//, '').split('/').filter(Boolean);
        const field = [err.validationContext ?? '', ...path].filter((p) => p !== '');
        return `${formatPath(field)}: ${v.message ?? 'invalid'}`;
      });
      // A hostile body can break a rule per element: the answer names the first few, not a megabyte of them.
      const shown = lines.slice(0, MAX_ISSUES).join('; ');
      const more = lines.length > MAX_ISSUES ? `; and ${lines.length - MAX_ISSUES} more` : '';
      return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: `Invalid request: ${shown}${more}` } });
    }
    if (err instanceof AuthRateLimitedError) void reply.header('retry-after', String(err.retryAfterSeconds));
    const tooLarge = bodyTooLarge(err, req);
    if (tooLarge instanceof LiftoffError)
      return reply.code(tooLarge.httpStatus).send({ error: { code: tooLarge.code, message: tooLarge.message } });
    if (err instanceof LiftoffError) {
      // A config with several problems lists them one per entry too, for clients that show each by its field.
      const problems =
        err instanceof ConfigInvalidError || err instanceof QueueConfigInvalidError ? { problems: err.problems } : {};
      return reply.code(err.httpStatus).send({ error: { code: err.code, message: err.message, ...problems } });
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
    entity:
      req.principal.entityIds === null
        ? '*'
        : (await Promise.all(req.principal.entityIds.map(async (id) => (await ctx.store.entities.byId(id)).name))).join(
            ',',
          ),
  }));
  app.get('/healthz', { schema: { hide: true, response: { 200: z.object({ ok: z.boolean() }) } } }, async () => ({
    ok: true,
  }));

  entityRoutes(app, ctx);
  accountRoutes(app, ctx);
  metricsRoutes(app, ctx);
  queueRoutes(app, ctx);
  itemRoutes(app, ctx);
  runRoutes(app, ctx);
  logViewRoutes(app, ctx);
  agentRoutes(app, ctx);
  archiveRoutes(app, ctx);
  secretRoutes(app, ctx);
  outputRoutes(app, ctx);
  jobRoutes(app, ctx);
  sweepRoutes(app, ctx);
  if (opts.webDir) await staticRoutes(app, opts.webDir);
  return app;
}
