import { stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { App } from '../context.js';

const isFile = (path: string) =>
  stat(path).then(
    (s) => s.isFile(),
    () => false,
  );

/**
 * Serves the web UI's build (`packages/web/dist`) at `/`: files as they are (hashed assets cached for a year; brotli or
 * gzip made at build time when the client accepts it), any
 * other non-API GET answers index.html so client-side routes survive a reload. `/api/...` is never touched. When the
 * directory has not been built, `/` says so and the API keeps working.
 */
export async function staticRoutes(app: App, webDir: string): Promise<void> {
  const root = resolve(webDir);
  // The build writes .br and .gz beside each file (packages/web/vite.config.js): sent as they are when the client
  // accepts them, with Vary: Accept-Encoding, so no request compresses the UI's files again.
  await app.register(fastifyStatic, { root, serve: false, suppressWarning: true, preCompressed: true });

  app.get('/*', { schema: { hide: true } }, async (req, reply) => {
    let path: string;
    try {
      path = decodeURIComponent(req.url.split('?')[0] ?? '/');
    } catch {
      return reply.callNotFound();
    }
    if (path.startsWith('/api/') || path === '/api') return reply.callNotFound();
    const file = resolve(root, `.${path}`);
    if (file.startsWith(root + sep) && path !== '/' && (await isFile(file))) {
      const immutable = path.startsWith('/assets/');
      return reply.sendFile(file.slice(root.length + 1), {
        maxAge: immutable ? '365d' : 0,
        immutable,
      });
    }
    if (!(await isFile(resolve(root, 'index.html')))) {
      return reply
        .code(404)
        .type('text/plain; charset=utf-8')
        .send(`The Liftoff web UI is not built (no ${root}/index.html). Run "npm run build"; the API is under /api.`);
    }
    return reply.header('cache-control', 'no-cache').sendFile('index.html', { maxAge: 0 });
  });
}
