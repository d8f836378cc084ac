import { Readable } from 'node:stream';
import { z } from 'zod';
import { create as contentDisposition } from 'content-disposition';
import { LogReadQuery, LogReadResponse, LogSearchQuery, LogSearchResponse, isTerminal } from '@liftoff/core';
import { canAccess, type App, type AppContext } from '../context.js';
import { searchLog } from '../store/logSearch.js';
import { runNotFound } from '../store/runs.js';

const IdParams = z.object({ id: z.string() });
/** Bytes one search request reads at most: its work is bounded however long the log or however many matches. */
const SEARCH_BUDGET_BYTES = 8 << 20;
/** Bytes of the log a raw download reads per query. */
const DOWNLOAD_BATCH_BYTES = 4 << 20;

/**
 * Reading a run's log as the log viewer does: pages by byte offset or by line, search, raw download. Access is the
 * log stream's: a run outside the caller's entities is answered exactly like an unknown one (404).
 */
export function logViewRoutes(app: App, ctx: AppContext): void {
  const runFor = async (req: Parameters<typeof canAccess>[0], id: string) => {
    const run = await ctx.store.runs.get(id);
    if (!canAccess(req, run.entity_id)) throw runNotFound(id);
    return run;
  };

  app.get(
    '/api/runs/:id/logs',
    { schema: { tags: ['runs'], params: IdParams, querystring: LogReadQuery, response: { 200: LogReadResponse } } },
    async (req) => {
      const run = await runFor(req, req.params.id);
      const windows = ctx.store.logWindows;
      const size = await windows.size(run.id);
      const lines = await windows.lineCount(run.id, size);
      const { limit, line } = req.query;
      if (limit === undefined && line === undefined) {
        // The CLI's paging, as before: whole chunks from the offset.
        const { data, next, segments } = await ctx.store.logs.read(run.id, req.query.offset);
        return {
          offset: req.query.offset,
          next_offset: next,
          data,
          notes: segments
            .filter((seg) => seg.kind === 'note')
            .map((seg) => ({ offset: seg.offset, size: Buffer.byteLength(seg.text) })),
          complete: isTerminal(run.status) && next >= run.log_size,
          size,
          line: (await windows.newlinesBefore(run.id, Math.min(req.query.offset, size))) + 1,
          lines,
        };
      }
      // A line past the last one, like an offset past the end, is answered as the empty page at the log's end.
      const start =
        line === undefined ? Math.min(req.query.offset, size) : ((await windows.offsetOfLine(run.id, line)) ?? size);
      const w = await windows.window(run.id, start, limit ?? 1 << 20);
      return {
        offset: w.offset,
        next_offset: w.next,
        data: w.data,
        notes: w.notes,
        complete: isTerminal(run.status) && w.next >= run.log_size,
        size,
        line: w.line,
        lines,
      };
    },
  );

  app.get(
    '/api/runs/:id/logs/search',
    {
      schema: { tags: ['runs'], params: IdParams, querystring: LogSearchQuery, response: { 200: LogSearchResponse } },
    },
    async (req) => {
      const run = await runFor(req, req.params.id);
      const page = await searchLog(ctx.store.logWindows, run.id, {
        query: req.query.q,
        caseSensitive: req.query.case_sensitive,
        cursor: req.query.cursor,
        limit: req.query.limit,
        budget: SEARCH_BUDGET_BYTES,
      });
      return {
        matches: page.matches,
        next_cursor: page.next,
        searched_from: page.from,
        searched_to: page.to,
        size: await ctx.store.logWindows.size(run.id),
      };
    },
  );

  /**
   * The stored log as one file (the job's output and the agent's notes, bytes as stored), streamed a batch of chunks
   * at a time: never held whole in memory. It ends at the size stored when the request came (content-length).
   */
  app.get('/api/runs/:id/logs/raw', { schema: { tags: ['runs'], params: IdParams } }, async (req, reply) => {
    const run = await runFor(req, req.params.id);
    const windows = ctx.store.logWindows;
    const size = await windows.size(run.id);
    async function* bytes() {
      for (let at = 0; at < size;) {
        const { bytes: part } = await windows.bytes(run.id, at, Math.min(size, at + DOWNLOAD_BATCH_BYTES));
        if (!part.length) return;
        yield part;
        at += part.length;
      }
    }
    void reply
      .header('content-type', 'text/plain; charset=utf-8')
      .header('content-length', String(size))
      .header('content-disposition', contentDisposition(`run-${run.id}.log`))
      .header('x-content-type-options', 'nosniff');
    return reply.send(Readable.from(bytes()));
  });
}
