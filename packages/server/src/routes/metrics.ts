import { z } from 'zod';
import { authenticateLimited } from '../authRateLimit.js';
import { assertServerAdmin, type App, type AppContext } from '../context.js';

/**
 * GET /metrics for Prometheus. Outside /api so scrapers find it where they expect, but it still needs a
 * server-wide admin key (Prometheus `authorization: {credentials: ...}`): it names every entity's queues.
 */
export function metricsRoutes(app: App, ctx: AppContext): void {
  app.get('/metrics', { schema: { hide: true, response: { 200: z.string() } } }, async (req, reply) => {
    req.principal = await authenticateLimited(ctx, req);
    assertServerAdmin(req, '/metrics');
    const text = await ctx.metrics.render(ctx.store.db);
    return reply.header('content-type', ctx.metrics.contentType).send(text);
  });
}
