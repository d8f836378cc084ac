import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { create as contentDisposition } from 'content-disposition';
import { z } from 'zod';
import { RunOutputList } from '@liftoff/core';
import { canAccess, type App, type AppContext } from '../context.js';
import { runNotFound } from '../store/runs.js';
import { outputUploadRoutes } from './outputUploads.js';

/**
 * Run outputs (docs/outputs.md): the agent's uploads (outputUploads.ts), and for members of the run's entity the
 * list and the download of each file. A foreign run is answered exactly like an unknown one, as on every run route.
 */
export function outputRoutes(app: App, ctx: AppContext): void {
  outputUploadRoutes(app, ctx);

  const runFor = async (req: Parameters<typeof canAccess>[0], id: string) => {
    const run = await ctx.store.runs.get(id);
    if (!canAccess(req, run.entity_id)) throw runNotFound(id);
    return run;
  };

  app.get(
    '/api/runs/:id/outputs',
    { schema: { tags: ['runs'], params: z.object({ id: z.string() }), response: { 200: RunOutputList } } },
    async (req) => {
      const run = await runFor(req, req.params.id);
      const outputs = await ctx.store.outputs.list(run.id);
      return { outputs, total_bytes: outputs.reduce((n, o) => n + o.size, 0) };
    },
  );

  app.get(
    '/api/runs/:id/outputs/file',
    {
      schema: {
        tags: ['runs'],
        params: z.object({ id: z.string() }),
        querystring: z.object({ path: z.string().max(4096) }),
      },
    },
    async (req, reply) => {
      const run = await runFor(req, req.params.id);
      const row = await ctx.store.outputs.find(run.id, req.query.path);
      const chunks = await ctx.store.outputs.chunks(row.id);
      // The first chunk is opened before the headers go out, so a store that cannot serve it is an error answer.
      const first = chunks[0] ? await ctx.artifacts.get(chunks[0].key) : undefined;
      void reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(row.size))
        .header('content-disposition', contentDisposition(posix.basename(row.path)))
        .header('x-content-sha256', row.sha256);
      return reply.send(Readable.from(chunksOf(ctx, chunks, first)));
    },
  );
}

/** The file's chunks one after the other, each streamed from the store (one open at a time). */
async function* chunksOf(
  ctx: AppContext,
  chunks: ReadonlyArray<{ key: string }>,
  first: Readable | undefined,
): AsyncGenerator<Buffer> {
  for (const [i, c] of chunks.entries()) {
    const stream = i === 0 && first ? first : await ctx.artifacts.get(c.key);
    for await (const piece of stream) yield piece as Buffer;
  }
}
