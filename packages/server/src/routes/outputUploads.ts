import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  BadRequestError,
  ByteOffset,
  CommitOutputsBody,
  OutputUpload,
  OutputUploadConflictError,
  RunLostError,
  RunOutputList,
  StartOutputUploadBody,
  UploadTokenRefusedError,
  checkOutputPath,
  isTerminal,
} from '@liftoff/core';
import { canAccess, type App, type AppContext } from '../context.js';
import { chunkKey, type OutputRow } from '../store/outputs.js';
import { runNotFound } from '../store/runs.js';
import { boundAgent } from './agentAuth.js';
import { uploadTokenRoutes } from './uploadTokens.js';

/** Uploads whose digest so far this process keeps, so a file sent in several requests is not read back each time. */
const HASHES_KEPT = 256;
const EMPTY_SHA256 = createHash('sha256').digest('hex');

/**
 * The agent side of run outputs (docs/outputs.md): start an upload (or find it again: the answer's offset is where
 * to resume), send bytes from that offset, then one commit that lists the run's files at once. Only the agent that
 * holds the run may do any of it, and never for a lost run; or, with the run's upload token instead of the agent's
 * key (a pod uploading its own outputs: uploadTokens.ts), the job of that run while it is live.
 */
export function outputUploadRoutes(app: App, ctx: AppContext): void {
  // A digest over the chunks recorded so far, per upload: continued by the next request when it starts where this
  // one stopped. Per process (another replica, or a restart, reads the stored chunks back instead).
  const hashes = new Map<string, { hash: Hash; at: number }>();

  const heldRun = async (req: FastifyRequest, runId: string, agentId: string | undefined) => {
    const token = req.principal.uploadToken;
    if (token) {
      // Another run's uploads are outside the token's scope: answered as an unknown run, as elsewhere.
      if (runId !== token.runId) throw runNotFound(runId);
      const run = await ctx.store.runs.get(runId);
      if (run.agent_id !== token.agentId) throw runNotFound(runId);
      if (run.status === 'lost') throw new RunLostError(runId);
      // Its tokens were dropped when the run ended; a stale read (a token found just before) is refused here.
      if (isTerminal(run.status)) throw new UploadTokenRefusedError(`run ${runId} has ended`);
      return run;
    }
    if (agentId === undefined)
      throw new BadRequestError("Name the agent holding the run (agent_id), or present the run's upload token.");
    await boundAgent(ctx, req, agentId);
    const run = await ctx.store.runs.get(runId);
    if (!canAccess(req, run.entity_id) || run.agent_id !== agentId) throw runNotFound(runId);
    if (run.status === 'lost') throw new RunLostError(runId);
    return run;
  };

  uploadTokenRoutes(app, ctx, heldRun);

  app.post(
    '/api/runs/:id/outputs/uploads',
    {
      config: { uploadToken: true },
      schema: {
        tags: ['agent protocol'],
        params: z.object({ id: z.string() }),
        body: StartOutputUploadBody,
        response: { 200: OutputUpload },
      },
    },
    async (req) => {
      const run = await heldRun(req, req.params.id, req.body.agent_id);
      const path = checkOutputPath(req.body.path);
      // An empty file is never sent, so its digest is checked here.
      if (req.body.size === 0 && req.body.sha256 !== EMPTY_SHA256)
        throw new BadRequestError(`An empty file's sha256 is ${EMPTY_SHA256}.`);
      const { row, staleKeys } = await ctx.store.outputs.start(
        run,
        { path, size: req.body.size, sha256: req.body.sha256 },
        ctx.settings.outputLimits,
        ctx.now(),
      );
      if (staleKeys.length) await ctx.artifacts.delete(staleKeys);
      return answer(row);
    },
  );

  app.post(
    '/api/runs/:id/outputs/commit',
    {
      config: { uploadToken: true },
      schema: {
        tags: ['agent protocol'],
        params: z.object({ id: z.string() }),
        body: CommitOutputsBody,
        response: { 200: RunOutputList },
      },
    },
    async (req) => {
      const run = await heldRun(req, req.params.id, req.body.agent_id);
      for (const f of req.body.files) checkOutputPath(f.path);
      const stale = await ctx.store.outputs.commit(run.id, req.body.files, ctx.now());
      // Leftovers of uploads the commit did not name: removed after the commit, so nothing listed loses a byte.
      if (stale.length) await ctx.artifacts.delete(stale);
      ctx.bus.publish(`run:${run.id}`);
      const outputs = await ctx.store.outputs.list(run.id);
      return { outputs, total_bytes: outputs.reduce((n, o) => n + o.size, 0) };
    },
  );

  // The binary body parser lives in this scope only (as for code archives: other routes answer 415 unread).
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    scope.withTypeProvider<ZodTypeProvider>().put(
      '/api/runs/:id/outputs/uploads/:upload',
      {
        config: { uploadToken: true },
        schema: {
          tags: ['agent protocol'],
          params: z.object({ id: z.string(), upload: z.string() }),
          querystring: z.object({ agent_id: z.string().optional(), offset: ByteOffset }),
          response: { 200: OutputUpload },
        },
      },
      async (req) => {
        const run = await heldRun(req, req.params.id, req.query.agent_id);
        if (!(req.body instanceof Readable))
          throw new BadRequestError('Send the bytes as the request body with content-type application/octet-stream.');
        const row = await ctx.store.outputs.get(run.id, req.params.upload);
        if (row.state !== 'uploading' || (await ctx.store.outputs.committed(run.id)))
          throw new OutputUploadConflictError(`Run ${run.id}'s outputs were already committed.`);
        if (req.query.offset !== row.received)
          throw new OutputUploadConflictError(
            `The server holds ${row.received} bytes of ${JSON.stringify(row.path)}, not ${req.query.offset}; send from offset ${row.received} (start the upload again to read it).`,
          );
        const declared = Number(req.headers['content-length']);
        if (Number.isFinite(declared) && row.received + declared > row.size)
          throw new BadRequestError(
            `${JSON.stringify(row.path)} was started as ${row.size} bytes; ${declared} bytes from offset ${row.received} run past its end.`,
          );
        let final: { received: number; hash: Hash };
        try {
          final = await receive(ctx, row, req.body, await hashAt(ctx, hashes, row));
        } catch (e) {
          if (!(e instanceof DigestMismatch)) throw e;
          hashes.delete(row.id);
          await ctx.artifacts.delete(await ctx.store.outputs.reset(run.id, row.id));
          throw new OutputUploadConflictError(
            `The bytes received for ${JSON.stringify(row.path)} do not have the sha256 it was started with (the file changed while it was sent, or was damaged on the way); the upload was reset: send it again from offset 0.`,
          );
        }
        if (final.received === row.size) hashes.delete(row.id);
        else {
          if (hashes.size >= HASHES_KEPT) hashes.delete(hashes.keys().next().value as string);
          hashes.set(row.id, { hash: final.hash, at: final.received });
        }
        return answer({ ...row, received: final.received });
      },
    );
  });
}

const answer = (row: OutputRow) => ({ upload_id: row.id, path: row.path, size: row.size, offset: row.received });

/** The digest of the upload's first `row.received` bytes: kept from the last request, else read back from the store. */
async function hashAt(ctx: AppContext, hashes: Map<string, { hash: Hash; at: number }>, row: OutputRow): Promise<Hash> {
  const kept = hashes.get(row.id);
  if (kept && kept.at === row.received) return kept.hash;
  const hash = createHash('sha256');
  for (const c of await ctx.store.outputs.chunks(row.id))
    for await (const piece of await ctx.artifacts.get(c.key)) hash.update(piece as Buffer);
  return hash;
}

/**
 * Reads the body into chunks of the store's chunk size (the only bytes held in memory), putting each in the store
 * and then recording it, so what is recorded is always whole and stored: a connection cut mid-chunk loses that chunk
 * only, and the next request resumes after the last recorded one. The digest is advanced only by recorded chunks.
 */
async function receive(
  ctx: AppContext,
  row: OutputRow,
  body: Readable,
  hash: Hash,
): Promise<{ received: number; hash: Hash }> {
  const limit = ctx.artifacts.chunkBytes;
  let received = row.received;
  let seq = (await ctx.store.outputs.chunks(row.id)).at(-1)?.seq ?? -1;
  let pieces: Buffer[] = [];
  let pending = 0;
  const flush = async (chunk: Buffer) => {
    seq += 1;
    const key = chunkKey(row.run_id, row.id, seq);
    await ctx.artifacts.put(key, chunk);
    const next = hash.copy().update(chunk);
    // The last chunk is recorded only with the whole file's digest right: an upload recorded whole is a verified
    // one, even if the server stops between two statements.
    if (received + chunk.length === row.size && next.copy().digest('hex') !== row.sha256) {
      await ctx.artifacts.delete([key]);
      throw new DigestMismatch();
    }
    if (!(await ctx.store.outputs.addChunk(row.id, { seq, size: chunk.length, key }, received))) {
      await ctx.artifacts.delete([key]);
      throw new OutputUploadConflictError(
        `Another request wrote to the upload of ${JSON.stringify(row.path)} at the same time; start the upload again to read its offset.`,
      );
    }
    hash = next;
    received += chunk.length;
  };
  // Past a refusal the rest of the body is left to the error handler (hardening.ts dropRestOfBody).
  const pieces$ = body.iterator({ destroyOnReturn: false });
  for await (const piece of cutOffAs(pieces$, () => received, row.path)) {
    const buf = piece as Buffer;
    if (received + pending + buf.length > row.size)
      throw new BadRequestError(
        `More bytes arrived for ${JSON.stringify(row.path)} than the ${row.size} it was started with; start it again with its real size.`,
      );
    pieces.push(buf);
    pending += buf.length;
    while (pending >= limit) {
      const all = Buffer.concat(pieces, pending);
      await flush(all.subarray(0, limit));
      pieces = [all.subarray(limit)];
      pending -= limit;
    }
  }
  if (pending > 0) await flush(Buffer.concat(pieces, pending));
  return { received, hash };
}

/**
 * The body's pieces; a connection cut mid-body (the agent killed, the network gone) becomes a named refusal with the
 * offset kept, instead of an internal error in the server's log: nobody reads the answer, the next start does.
 */
async function* cutOffAs(
  pieces: AsyncIterable<unknown>,
  received: () => number,
  path: string,
): AsyncGenerator<unknown> {
  try {
    for await (const p of pieces) yield p;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'ECONNRESET' && code !== 'ERR_STREAM_PREMATURE_CLOSE') throw e;
    throw new BadRequestError(
      `The upload of ${JSON.stringify(path)} was cut off; ${received()} bytes of it are kept: start it again to resume from there.`,
    );
  }
}

/** receive(): the bytes do not have the digest the upload was started with (the route resets the upload). */
class DigestMismatch extends Error {}
