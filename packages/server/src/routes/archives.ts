import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { BadRequestError, CodeArchive, assertSafeArchive } from '@liftoff/core';
import { assertAccess, canAccess, entityFor, type App, type AppContext } from '../context.js';

export const MAX_ARCHIVE_BYTES = 512 * 1024 * 1024;

export function archiveRoutes(app: App, ctx: AppContext): void {
  app.addContentTypeParser(
    ['application/gzip', 'application/octet-stream'],
    { parseAs: 'buffer', bodyLimit: MAX_ARCHIVE_BYTES },
    (_req, body, done) => done(null, body),
  );

  /** Stores a .tar.gz code directory (content-addressed per entity); refused if any entry escapes its directory. */
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
      if (!Buffer.isBuffer(req.body))
        throw new BadRequestError('Send the archive as the request body with content-type application/gzip.');
      await assertSafeArchive(req.body);
      // The archive belongs to the entity it is pushed to (`?entity=`), else the key's only entity, else "default".
      const ids = req.principal.entityIds;
      const entityId = req.query.entity
        ? (await entityFor(ctx, req, req.query.entity)).id
        : ids?.length === 1
          ? ids[0]
          : (await ctx.store.entities.find('default'))?.id;
      if (!entityId || !canAccess(req, entityId))
        throw new BadRequestError('Say which entity the archive is for with ?entity=NAME.');
      const sha256 = createHash('sha256').update(req.body).digest('hex');
      const path = join(ctx.archiveDir, `${sha256}.tar.gz`);
      // On PostgreSQL the bytes go to the database: replicas share it, not a data dir.
      if (ctx.store.dialect === 'postgres') {
        if (!(await ctx.store.archives.hasBlob(sha256))) await ctx.store.archives.putBlob(sha256, req.body);
      } else if (
        !(await stat(path).then(
          () => true,
          () => false,
        ))
      ) {
        // Private to the server's user: an agent sharing the data dir makes it enterable for its job users.
        await mkdir(ctx.archiveDir, { recursive: true, mode: 0o700 });
        const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
        try {
          await writeFile(tmp, req.body, { mode: 0o600 });
          await rename(tmp, path);
        } catch (e) {
          // A full disk must not leave half an archive behind.
          await rm(tmp, { force: true });
          throw e;
        }
      }
      const archive = await ctx.store.archives.upsert(entityId, sha256, req.body.length, ctx.now());
      return reply.code(201).send(archive);
    },
  );

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

/** At start-up: temporary files of uploads a previous process did not finish (it crashed, or the disk was full). */
export async function removeStaleUploads(archiveDir: string): Promise<void> {
  const names = await readdir(archiveDir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.endsWith('.tmp')).map((n) => rm(join(archiveDir, n), { force: true })));
}
