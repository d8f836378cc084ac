import { z } from 'zod';
import {
  Agent,
  BadRequestError,
  ForbiddenError,
  HeartbeatBody,
  PollBody,
  PollResponse,
  RegisterAgentBody,
  RegisterAgentResponse,
} from '@liftoff/core';
import { entityFor, type App, type AppContext } from '../context.js';

const IdParams = z.object({ id: z.string() });

export function agentRoutes(app: App, ctx: AppContext): void {
  const ownAgent = async (req: { principal: { entityId: string | null } }, id: string) => {
    const agent = await ctx.store.getAgent(id);
    if (req.principal.entityId !== null && req.principal.entityId !== agent.entity_id) {
      throw new ForbiddenError(`Agent "${id}" belongs to another entity.`);
    }
    return agent;
  };

  app.get(
    '/api/entities/:entity/agents',
    {
      schema: {
        tags: ['agents'],
        params: z.object({ entity: z.string() }),
        response: { 200: z.object({ agents: z.array(Agent) }) },
      },
    },
    async (req) => ({ agents: await ctx.store.listAgents((await entityFor(ctx, req, req.params.entity)).id) }),
  );

  app.post(
    '/api/agents',
    { schema: { tags: ['agent protocol'], body: RegisterAgentBody, response: { 200: RegisterAgentResponse } } },
    async (req) => {
      const body = req.body;
      const entity = await entityFor(ctx, req, body.entity);
      const missing: string[] = [];
      for (const q of body.queues) if (!(await ctx.store.findQueue(entity.id, q))) missing.push(q);
      if (missing.length) {
        const available = (await ctx.store.listQueues(entity)).map((q) => q.name);
        throw new BadRequestError(
          `Queue${missing.length > 1 ? 's' : ''} ${missing.map((q) => `"${q}"`).join(', ')} not found in entity "${entity.name}". Available: ${available.join(', ') || 'none'}. Create one with "liftoff queue create NAME".`,
        );
      }
      const { agent, requeued } = await ctx.store.registerAgent(
        {
          id: body.id,
          name: body.name,
          entityId: entity.id,
          hostname: body.hostname,
          queues: body.queues,
          version: body.version,
          maxJobs: body.max_jobs,
          config: body.config,
        },
        ctx.now(),
      );
      for (const q of requeued) ctx.bus.publish(`queue:${q}`);
      const { entity_id: _e, ...publicAgent } = agent;
      return {
        agent: publicAgent,
        heartbeat_interval_ms: ctx.settings.heartbeatIntervalMs,
        poll_timeout_ms: ctx.settings.pollTimeoutMs,
        active_runs: await ctx.store.activeRunsOf(agent.id),
      };
    },
  );

  app.post(
    '/api/agents/:id/heartbeat',
    { schema: { tags: ['agent protocol'], params: IdParams, body: HeartbeatBody, response: { 200: Agent } } },
    async (req) => {
      await ownAgent(req, req.params.id);
      const { entity_id: _e, ...agent } = await ctx.store.heartbeat(
        req.params.id,
        req.body.status,
        req.body.current_jobs,
        ctx.now(),
      );
      return agent;
    },
  );

  app.post(
    '/api/agents/:id/stopped',
    { schema: { tags: ['agent protocol'], params: IdParams, response: { 200: Agent } } },
    async (req) => {
      await ownAgent(req, req.params.id);
      for (const q of await ctx.store.agentStopped(req.params.id, ctx.now())) ctx.bus.publish(`queue:${q}`);
      const { entity_id: _e, ...agent } = await ctx.store.getAgent(req.params.id);
      return agent;
    },
  );

  /**
   * The long-poll at the heart of dispatch. It subscribes to its queues and to its own agent topic *before* looking
   * in the database, so a push that lands in between still wakes it; it answers the moment there is an item it could
   * claim or a cancellation for it, or after the wait with nothing.
   */
  app.post(
    '/api/agents/:id/poll',
    { schema: { tags: ['agent protocol'], params: IdParams, body: PollBody, response: { 200: PollResponse } } },
    async (req) => {
      const agent = await ownAgent(req, req.params.id);
      const entity = await ctx.store.entityById(agent.entity_id);
      const queueIds: string[] = [];
      for (const name of req.body.queues) queueIds.push((await ctx.store.requireQueue(entity, name)).id);
      const wait = Math.min(req.body.wait_ms ?? ctx.settings.pollTimeoutMs, ctx.settings.pollTimeoutMs);
      const deadline = ctx.now() + wait;
      const abort = new AbortController();
      req.raw.socket.once('close', () => abort.abort());
      const topics = [
        `agent:${agent.id}` as const,
        ...(req.body.max_items > 0 ? queueIds.map((q) => `queue:${q}` as const) : []),
      ];
      const sub = ctx.bus.subscribe(topics, abort.signal);
      try {
        for (;;) {
          const cancel = await ctx.store.cancelsFor(agent.id);
          const claimed =
            req.body.max_items > 0 && !abort.signal.aborted
              ? await ctx.store.claim(agent.id, queueIds, req.body.max_items, ctx.settings.leaseMs, ctx.now())
              : [];
          if (claimed.length && abort.signal.aborted) {
            // The agent hung up while we claimed: hand the items straight back instead of waiting for the lease.
            for (const it of claimed) await ctx.store.releaseItem(it.id, agent.id);
            for (const q of queueIds) ctx.bus.publish(`queue:${q}`);
          }
          const remaining = deadline - ctx.now();
          if (claimed.length || cancel.length || remaining <= 0 || abort.signal.aborted) {
            return {
              items: claimed.map((it) => ({
                item_id: it.id,
                queue: it.queue,
                entity: it.entity,
                priority: it.priority,
                spec: it.spec,
                lease_expires_at: it.lease_expires_at,
              })),
              cancel,
            };
          }
          await sub.wait(remaining);
        }
      } finally {
        sub.close();
      }
    },
  );
}
