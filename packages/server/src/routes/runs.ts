import { z } from 'zod';
import {
  RunListQuery,
  RunListResponse,
  RunKeys,
  ByteOffset,
  LOG_KINDS,
  LogAppendResponse,
  ReportRunBody,
  Run,
  RunDetail,
  isTerminal,
  type LaunchSpec,
  RunMetricsQuery,
  RunMetricsResponse,
  type LogKind,
} from '@liftoff/core';
import { canAccess, entityFor, type App, type AppContext } from '../context.js';
import type { PreemptionOutcome } from '../store/preemption.js';
import { runKeys } from '../store/runKeys.js';
import { runNotFound } from '../store/runs.js';
import { boundAgent } from './agentAuth.js';

const IdParams = z.object({ id: z.string() });
const KEEPALIVE_MS = 15_000;
/** Most metric points in one `metrics` event of the log stream. */
const METRIC_EVENT_POINTS = 1_000;

export function runRoutes(app: App, ctx: AppContext): void {
  /** A run of the caller's entities; a foreign one is answered exactly like an unknown one. */
  const runFor = async (req: Parameters<typeof canAccess>[0], id: string) => {
    const run = await ctx.store.runs.get(id);
    if (!canAccess(req, run.entity_id)) throw runNotFound(id);
    return run;
  };

  app.get(
    '/api/entities/:entity/runs',
    {
      schema: {
        tags: ['runs'],
        params: z.object({ entity: z.string() }),
        querystring: RunListQuery,
        response: { 200: RunListResponse },
      },
    },
    async (req) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      const { queue, state, agent, q, since, until, columns, sort, cursor, limit } = req.query;
      const queueId = queue ? (await ctx.store.queues.require(entity, queue)).id : undefined;
      return ctx.store.runs.list(
        { entityId: entity.id, queueId, states: state, agent, q, since, until },
        { columns, sort, cursor, limit },
      );
    },
  );

  app.get(
    '/api/entities/:entity/runs/keys',
    {
      schema: {
        tags: ['runs'],
        params: z.object({ entity: z.string() }),
        querystring: z.object({ queue: z.string().max(256).optional() }),
        response: { 200: RunKeys },
      },
    },
    async (req) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      const queueId = req.query.queue ? (await ctx.store.queues.require(entity, req.query.queue)).id : undefined;
      return runKeys(ctx.store.db, { entityId: entity.id, queueId });
    },
  );

  app.get(
    '/api/runs/:id',
    { schema: { tags: ['runs'], params: IdParams, response: { 200: RunDetail } } },
    async (req) => {
      const run = await runFor(req, req.params.id);
      const item = await ctx.store.items.get(run.item_id, ctx.now(), { explain: false });
      const { entity_id: _e, ...rest } = run;
      return { ...rest, spec: item.spec as LaunchSpec, queue_settings: await ctx.store.queues.settingsOfRun(run.id) };
    },
  );

  app.post(
    '/api/runs/:id/cancel',
    { schema: { tags: ['runs'], params: IdParams, response: { 200: Run } } },
    async (req) => {
      const run = await runFor(req, req.params.id);
      const { notifyAgent } = await ctx.store.items.cancel(run.item_id, ctx.now());
      if (notifyAgent) ctx.bus.publish(`agent:${notifyAgent}`);
      ctx.bus.publish(`run:${run.id}`);
      // A cancel may end the run at once (no agent to wait for): a sweep's next trial may go.
      ctx.bus.publish('sweeps:ended');
      const { entity_id: _e, ...rest } = await ctx.store.runs.get(run.id);
      return rest;
    },
  );

  app.post(
    '/api/runs/:id/status',
    { schema: { tags: ['agent protocol'], params: IdParams, body: ReportRunBody, response: { 200: Run } } },
    async (req) => {
      // Only the agent's own key reports, and only for runs of its entities (the store checks the run is its).
      await boundAgent(ctx, req, req.body.agent_id);
      await runFor(req, req.params.id);
      const { run, preemption } = await ctx.store.runs.report(req.params.id, req.body, ctx.now());
      await afterReport(ctx, run, preemption);
      return run;
    },
  );

  app.post(
    '/api/runs/:id/logs',
    {
      schema: {
        tags: ['agent protocol'],
        params: IdParams,
        querystring: z.object({
          offset: ByteOffset,
          agent_id: z.string(),
          kind: z.enum(LOG_KINDS).default('output'),
        }),
        body: z.string(),
        response: { 200: LogAppendResponse },
      },
    },
    async (req) => {
      await boundAgent(ctx, req, req.query.agent_id);
      return appendRunLog(ctx, req, req.params.id, req.query.agent_id, req.query.offset, req.body, req.query.kind);
    },
  );

  app.get(
    '/api/runs/:id/metrics',
    {
      schema: { tags: ['runs'], params: IdParams, querystring: RunMetricsQuery, response: { 200: RunMetricsResponse } },
    },
    async (req) => {
      const run = await runFor(req, req.params.id);
      const [keys, points, counters] = await Promise.all([
        ctx.store.metrics.keys(run.id),
        ctx.store.metrics.points(run.id, req.query.after_seq, req.query.limit, req.query.key),
        ctx.store.metrics.counters(run.id),
      ]);
      return {
        keys: req.query.key === undefined ? keys : keys.filter((k) => k.key === req.query.key),
        points,
        next_seq: points.at(-1)?.seq ?? req.query.after_seq,
        ...counters,
      };
    },
  );

  /**
   * Server-sent events: `log` events (the job's output) and `note` events (the agent's `[liftoff]` lines), each with
   * id = the offset after it and data = a JSON string, in log order, until an `end` event with the run. With
   * `metrics_after=SEQ` (-1 for all) also `metrics` events, data = a JSON array of the run's metric points after that
   * seq as they arrive (no id: Last-Event-ID stays the log offset; a follower resumes metrics from its last seq).
   */
  app.get(
    '/api/runs/:id/logs/stream',
    {
      schema: {
        tags: ['runs'],
        params: IdParams,
        querystring: z.object({
          offset: ByteOffset.default(0),
          metrics_after: RunMetricsQuery.shape.after_seq.removeDefault().optional(),
        }),
      },
    },
    async (req, reply) => {
      let run = await runFor(req, req.params.id);
      let metricSeq = req.query.metrics_after;
      const lastEventId = Number(req.headers['last-event-id']);
      let offset = Number.isFinite(lastEventId) && lastEventId > 0 ? lastEventId : req.query.offset;
      const abort = new AbortController();
      reply.raw.on('close', () => abort.abort());
      const sub = ctx.bus.subscribe([`run:${run.id}`], abort.signal);
      reply.hijack();
      const out = reply.raw;
      out.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      // Headers go out now, not with the first event: a follower of a quiet run learns at once that it is attached.
      out.flushHeaders();
      try {
        while (!abort.signal.aborted) {
          const { next, segments } = await ctx.store.logs.read(run.id, offset);
          if (segments.length) {
            for (const seg of segments) {
              const end = seg.offset + Buffer.byteLength(seg.text);
              out.write(
                `event: ${seg.kind === 'note' ? 'note' : 'log'}\nid: ${end}\ndata: ${JSON.stringify(seg.text)}\n\n`,
              );
            }
            offset = next;
            continue;
          }
          if (metricSeq !== undefined) {
            const points = await ctx.store.metrics.points(run.id, metricSeq, METRIC_EVENT_POINTS);
            if (points.length) {
              out.write(`event: metrics\ndata: ${JSON.stringify(points)}\n\n`);
              metricSeq = points.at(-1)?.seq ?? metricSeq;
              continue;
            }
          }
          const { entity_id: _e, ...current } = await ctx.store.runs.get(run.id);
          run = { ...current, entity_id: run.entity_id };
          if (isTerminal(current.status) && offset >= current.log_size) {
            out.write(`event: end\ndata: ${JSON.stringify(current)}\n\n`);
            break;
          }
          if (!(await sub.wait(KEEPALIVE_MS)) && !abort.signal.aborted) out.write(': keepalive\n\n');
        }
      } catch (e) {
        req.log.warn({ err: e }, 'log stream failed');
      } finally {
        sub.close();
        out.end();
      }
    },
  );
}

/**
 * A log upload of the agent `agentId` (already checked to be the caller's, boundAgent) to run `runId`: the single
 * upload route and each log entry of a sync (sync.ts) come through here, so both keep one set of rules (access,
 * offsets and 409, RUN_LOST, the log cap). The one place every uploaded byte passes, stored or dropped past the run's
 * log cap (logs.ts): metric-line parsing (issue #17) is to read `data` here, before the cap decides what is kept,
 * so metrics printed past the cap still count. Nothing parses them yet.
 */
export async function appendRunLog(
  ctx: AppContext,
  req: Parameters<typeof canAccess>[0],
  runId: string,
  agentId: string,
  offset: number,
  data: string,
  kind: LogKind,
): Promise<{ size: number }> {
  // The single route's bytes (a sync's go through Logs.appendIn in its transaction, store/sync.ts), stored or
  // dropped past the run's log cap; the append also parses metric lines (metricLines.ts) before the cap decides
  // what is kept, so metrics printed past the cap still count.
  const { size } = await ctx.store.logs.append(
    runId,
    agentId,
    offset,
    data,
    kind,
    ctx.settings.maxRunLogBytes,
    ctx.now(),
    // A run outside the caller's entities is "not found", checked on the store's own read of the run.
    (entity) => canAccess(req, entity),
  );
  ctx.bus.publish(`run:${runId}`);
  return { size };
}

/** After a status report committed (the single route, or an entry of a sync): wakes who must know. */
export async function afterReport(ctx: AppContext, run: Run, preemption: PreemptionOutcome | null): Promise<void> {
  await afterReports(ctx, [{ run, preemption }]);
}

/**
 * afterReport for a batch (a sync's reports): each run's followers are woken, and each queue whose limits an ended
 * run freed is looked up once, however many of its runs ended.
 */
export async function afterReports(
  ctx: AppContext,
  reports: ReadonlyArray<{
    run: Run & { queue_id?: string; entity_limited?: boolean };
    preemption: PreemptionOutcome | null;
  }>,
): Promise<void> {
  const freed = new Set<string>();
  const woken = new Set<string>();
  let ended = false;
  for (const { run, preemption } of reports) {
    // Every report, a warning alone included, wakes the run's followers (log streams, the UI).
    ctx.bus.publish(`run:${run.id}`);
    if (preemption) ctx.metrics.countPreemption(preemption.requeued);
    // An ended run frees a concurrency slot: pollers waiting on a limit re-check. That includes the run's own
    // queue, so an item requeued without backoff is picked up at once. Without an entity limit (known from the
    // report's own read) that is the only queue to wake; else every queue sharing the entity's limit.
    if (!isTerminal(run.status)) continue;
    ended = true;
    if (run.queue_id && run.entity_limited === false) woken.add(run.queue_id);
    else freed.add(run.queue_id ?? (await ctx.store.runs.queueIdOf(run.id)));
  }
  for (const queueId of freed) for (const q of await ctx.store.queues.sharingLimits(queueId)) woken.add(q);
  for (const q of woken) ctx.bus.publish(`queue:${q}`);
  // The sweep controller, on whichever replica leads, pushes the next trial at once instead of at its next tick.
  // One topic for every run (not only trials): no read to tell them apart, and PgBus sends it in the NOTIFY
  // statement the run topics already take.
  if (ended) ctx.bus.publish('sweeps:ended');
}
