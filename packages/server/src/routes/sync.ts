import { z } from 'zod';
import { LiftoffError, SYNC_BODY_BYTES, SyncBody, SyncResponse, type EntryError, type Run } from '@liftoff/core';
import { canAccess, type App, type AppContext } from '../context.js';
import { applySync, type EntryOutcome } from '../store/sync.js';
import { boundAgent } from './agentAuth.js';
import { afterReports } from './runs.js';

const IdParams = z.object({ id: z.string() });
const refusal = (e: LiftoffError): EntryError => ({ code: e.code, message: e.message });
/** The store's run rows carry their entity id, which the API does not show. */
const publicRun = (run: Run): Run => {
  const {
    entity_id: _e,
    queue_id: _q,
    entity_limited: _l,
    ...rest
  } = run as Run & { entity_id?: string; queue_id?: string; entity_limited?: boolean };
  return rest;
};

/**
 * `POST /api/agents/{id}/sync` (agent protocol 2): the heartbeat, acks, status reports and log appends of an agent's
 * runs in one request. The key must be the agent's (boundAgent), and every entry is checked as its single-item call
 * checks it: a run or item outside the caller's entities is "not found", another agent's run is refused, a lost one is
 * RUN_LOST, a log at the wrong offset is CONFLICT. Each refusal is that entry's answer alone; the rest is applied.
 * Everything commits in one transaction (store/sync.ts): log appends first, in order, through the single upload's
 * code (Logs.appendIn), then acks, reports and the heartbeat.
 */
export function syncRoute(app: App, ctx: AppContext): void {
  app.post(
    '/api/agents/:id/sync',
    {
      bodyLimit: SYNC_BODY_BYTES,
      schema: { tags: ['agent protocol'], params: IdParams, body: SyncBody, response: { 200: SyncResponse } },
    },
    async (req) => {
      const agent = await boundAgent(ctx, req, req.params.id);
      const { acks, reports, logs, heartbeat } = req.body;
      const { db, dialect } = ctx.store;
      // Entries for items and runs the caller may not see are answered "not found" by the store, checked on the rows
      // it reads anyway (no read of their entities of its own).
      const now = ctx.now();
      const outcome = await applySync(
        db,
        dialect,
        agent.id,
        {
          ...(heartbeat ? { heartbeat } : { touch: ctx.store.agents.touchDue(agent.id, now) }),
          logs: {
            appends: logs.map((l) => ({
              runId: l.run_id,
              offset: l.offset,
              data: Buffer.from(l.data_base64, 'base64').toString('utf8'),
              kind: l.kind,
            })),
            store: ctx.store.logs,
            cap: ctx.settings.maxRunLogBytes,
          },
          acks: acks.map((a) => a.item_id),
          reports: reports.map(({ run_id, ...body }) => ({ runId: run_id, body: { ...body, agent_id: agent.id } })),
          visible: (entity) => canAccess(req, entity),
        },
        now,
      );
      // After the commit: followers of a run's log read what was just appended.
      for (const [i, l] of logs.entries()) if (outcome.logs[i]?.ok) ctx.bus.publish(`run:${l.run_id}`);
      await afterReports(
        ctx,
        outcome.reports.flatMap((o) => (o.ok ? [o.value] : [])),
      );

      // The store answers every entry, in order.
      return {
        stop_runs: outcome.stopRuns,
        acks: acks.map((a, i) => answer(outcome.acks[i], { item_id: a.item_id }, (run) => ({ run: publicRun(run) }))),
        reports: reports.map((r, i) =>
          answer(outcome.reports[i], { run_id: r.run_id }, (v) => ({ run: publicRun(v.run) })),
        ),
        logs: logs.map((l, i) => answer(outcome.logs[i], { run_id: l.run_id }, (v) => v)),
      };
    },
  );
}

function answer<T, K extends object, V extends object>(
  o: EntryOutcome<T> | undefined,
  key: K,
  value: (v: T) => V,
): K & (V | { error: EntryError }) {
  if (!o) throw new LiftoffError('INTERNAL', 'The store answered a sync without an outcome for an entry.');
  return o.ok ? { ...key, ...value(o.value) } : { ...key, error: refusal(o.error) };
}
