import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BadRequestError, CodeArchive, PayloadTooLargeError } from '@liftoff/core';
import { checkArchiveInWorker } from '../archiveCheck.js';
import { assertAccess, canAccess, entityFor, type App, type AppContext } from '../context.js';

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

export function archiveRoutes(app: App, ctx: AppContext): void {
  // The binary body parser lives in this scope only: every other route answers 415 to a binary body at once, without
  // reading it (a gzip body validated against a JSON schema once produced an error per byte).
  void app.register(async (scope) => {
    scope.addContentTypeParser(['application/gzip', 'application/octet-stream'], (_req, payload, done) =>
      done(null, payload),
    );
    uploadRoute(scope.withTypeProvider<ZodTypeProvider>(), ctx);
  });

  app.get(
    '/api/code-archives/:id',
    { schema: { tags: ['code archives'], params: z.object({ id: z.string() }) } },
    async (req, reply) => {
      const archive = await ctx.store.archives.get(req.params.id);
      assertAccess(req, archive.entity_id, `Code archive "${req.params.id}"`);
      reply.header('content-type', 'application/gzip').header('content-length', String(archive.size));
      if (ctx.store.dialect === 'postgres') return reply.send(await ctx.store.archives.getBlob(archive.sha256));
      return reply.send(createReadStream(join(ctx.archiveDir, `${archive.sha256}.tar.gz`)));
    },
  );
}

/**
 * Stores a .tar.gz code directory (content-addressed per entity). The body streams to a temporary file (hashed and
 * counted on the way, cut off past the size cap), is checked in a worker thread (escaping entries, entry count,
 * unpacked size), then kept: renamed into the archive dir (SQLite) or written to the database (PostgreSQL).
 */
function uploadRoute(app: App, ctx: AppContext): void {
  app.post(
    '/api/code-archives',
    {
      schema: {
        tags: ['code archives'],
        querystring: z.object({ entity: z.string().optional() }),
        response: { 201: CodeArchive },
      },
    },
    async (req, reply) => {
      if (!(req.body instanceof Readable))
        throw new BadRequestError('Send the archive as the request body with content-type application/gzip.');
      // The archive belongs to the entity it is pushed to (`?entity=`), else the key's only entity, else "default".
      const ids = req.principal.entityIds;
      const entityId = req.query.entity
        ? (await entityFor(ctx, req, req.query.entity)).id
        : ids?.length === 1
          ? ids[0]
          : (await ctx.store.entities.find('default'))?.id;
      if (!entityId || !canAccess(req, entityId))
        throw new BadRequestError('Say which entity the archive is for with ?entity=NAME.');

      // Private to the server's user: an agent sharing the data dir makes it enterable for its job users.
      await mkdir(ctx.archiveDir, { recursive: true, mode: 0o700 });
      const tmp = join(
        ctx.archiveDir,
        `upload.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`,
      );
      try {
        // Past the cap the rest of the body is left to the error handler (see dropRestOfBody).
        const { sha256, size } = await receive(req.body, tmp, ctx.settings.archiveLimits.compressedBytes);
        await checkArchiveInWorker({ path: tmp, limits: ctx.settings.archiveLimits });
        if (ctx.store.dialect === 'postgres') {
          // Replicas share the database, not a data dir.
          if (!(await ctx.store.archives.hasBlob(sha256)))
            await ctx.store.archives.putBlob(sha256, await readFile(tmp));
        } else {
          const path = join(ctx.archiveDir, `${sha256}.tar.gz`);
          if (!(await exists(path))) await rename(tmp, path);
        }
        const archive = await ctx.store.archives.upsert(entityId, sha256, size, ctx.now());
        return await reply.code(201).send(archive);
      } finally {
        // Whatever happened (refused, too large, a full disk), no half-written or refused upload stays behind.
        await rm(tmp, { force: true });
      }
    },
  );
}

/**
 * Streams the body to `path` (0600), hashing and counting it; past `maxBytes` the upload is cut off and refused. The
 * body is read through an iterator that leaves it open when the pipeline fails (a pipeline destroys its source, and
 * destroying a request mid-body resets its connection): the caller decides what happens to the rest.
 */
async function receive(body: Readable, path: string, maxBytes: number): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > maxBytes) {
        const limit =
          maxBytes >= 1024 * 1024 ? `${Math.round(maxBytes / 1024 / 1024)} MiB` : `${Math.round(maxBytes / 1024)} KiB`;
        return done(
          new PayloadTooLargeError(
            `The code archive is larger than the server's limit of ${limit}; keep data sets and checkpoints out of the code directory (fetch them in the job) and launch again.`,
          ),
        );
      }
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(body.iterator({ destroyOnReturn: false }), count, createWriteStream(path, { mode: 0o600 }));
  return { sha256: hash.digest('hex'), size };
}

/** At start-up: temporary files of uploads a previous process did not finish (it crashed, or the disk was full). */
export async function removeStaleUploads(archiveDir: string): Promise<void> {
  const names = await readdir(archiveDir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.endsWith('.tmp')).map((n) => rm(join(archiveDir, n), { force: true })));
}
