import { z } from 'zod';
import {
  AgentListQuery,
  AgentListResponse,
  Agent,
  BadRequestError,
  ForbiddenError,
  HeartbeatBody,
  HeartbeatResponse,
  PollBody,
  PollResponse,
  RegisterAgentBody,
  RegisterAgentResponse,
  StopAgentBody,
  redactConfig,
  AGENT_PROTOCOL_VERSION,
  AgentProtocolInfo,
  MIN_AGENT_PROTOCOL_VERSION,
} from '@liftoff/core';
import { assertAdmin, canAccess, entityFor, pollHoldMs, type App, type AppContext } from '../context.js';
import { agentNotFound, type AgentView } from '../store/agents.js';
import { assertAgentProtocolKey, boundAgent } from './agentAuth.js';
import { syncRoute } from './sync.js';

const IdParams = z.object({ id: z.string() });
const publicView = ({ entity_id: _e, key_id: _k, ...agent }: AgentView) => agent;

export function agentRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/entities/:entity/agents',
    {
      schema: {
        tags: ['agents'],
        params: z.object({ entity: z.string() }),
        querystring: AgentListQuery,
        response: { 200: AgentListResponse },
      },
    },
    async (req) => ctx.store.agents.list((await entityFor(ctx, req, req.params.entity)).id, req.query),
  );

  app.post(
    '/api/agents',
    { schema: { tags: ['agent protocol'], body: RegisterAgentBody, response: { 200: RegisterAgentResponse } } },
    async (req) => {
      assertAgentProtocolKey(req);
      const body = req.body;
      const entity = await entityFor(ctx, req, body.entity);
      const missing: string[] = [];
      for (const q of body.queues) if (!(await ctx.store.queues.find(entity.id, q))) missing.push(q);
      if (missing.length) {
        const available = (await ctx.store.queues.list(entity)).map((q) => q.name);
        throw new BadRequestError(
          `Queue${missing.length > 1 ? 's' : ''} ${missing.map((q) => `"${q}"`).join(', ')} not found in entity "${entity.name}". Available: ${available.join(', ') || 'none'}. Create one with "liftoff queue create NAME".`,
        );
      }
      const { agent, requeued } = await ctx.store.agents.register(
        {
          id: body.id,
          name: body.name,
          entityId: entity.id,
          hostname: body.hostname,
          queues: body.queues,
          version: body.version,
          maxJobs: body.max_jobs,
          // Redacted before it is stored: the database never holds the agent's passwords and tokens.
          config: redactConfig(body.config),
          keyId: req.principal.keyId,
        },
        ctx.now(),
      );
      for (const q of requeued) ctx.bus.publish(`queue:${q}`);
      // The agent's old runs ended lost (it came back without them): their sweeps' trials may be replaced.
      if (requeued.length) ctx.bus.publish('sweeps:ended');
      return {
        agent: publicView(agent),
        heartbeat_interval_ms: ctx.settings.heartbeatIntervalMs,
        poll_timeout_ms: pollHoldMs(ctx.settings),
        active_runs: await ctx.store.runs.activeOf(agent.id),
        protocol_version: AGENT_PROTOCOL_VERSION,
        min_agent_protocol_version: MIN_AGENT_PROTOCOL_VERSION,
      };
    },
  );

  app.post(
    '/api/agents/:id/heartbeat',
    {
      schema: { tags: ['agent protocol'], params: IdParams, body: HeartbeatBody, response: { 200: HeartbeatResponse } },
    },
    async (req) => {
      await boundAgent(ctx, req, req.params.id);
      const agent = publicView(
        await ctx.store.agents.heartbeat(req.params.id, req.body.status, req.body.current_jobs, ctx.now()),
      );
      // Not refused: the agent is alive, and it learns here which of its runs to stop (fencing, see runs.ts).
      return { ...agent, stop_runs: await ctx.store.runs.lostAmong(agent.id, req.body.run_ids) };
    },
  );

  /**
   * `liftoff agents stop`: an admin of the agent's entity (user key, or the server admin key) asks it to stop; its
   * open poll is woken to tell it. Members may list agents but not stop shared ones; agent keys never stop agents.
   */
  app.post(
    '/api/agents/:id/stop',
    { schema: { tags: ['agents'], params: IdParams, body: StopAgentBody, response: { 200: Agent } } },
    async (req) => {
      if (req.principal.role === 'agent') throw new ForbiddenError('Agent keys cannot stop agents; use a user key.');
      const found = await ctx.store.agents.get(req.params.id);
      if (!canAccess(req, found.entity_id)) throw agentNotFound(req.params.id);
      assertAdmin(req, found.entity_id);
      const agent = publicView(await ctx.store.agents.requestStop(req.params.id, req.body.mode));
      ctx.bus.publish(`agent:${agent.id}`);
      return agent;
    },
  );

  app.post(
    '/api/agents/:id/stopped',
    { schema: { tags: ['agent protocol'], params: IdParams, response: { 200: Agent } } },
    async (req) => {
      await boundAgent(ctx, req, req.params.id);
      const requeued = await ctx.store.agents.stopped(req.params.id, ctx.now());
      for (const q of requeued) ctx.bus.publish(`queue:${q}`);
      if (requeued.length) ctx.bus.publish('sweeps:ended');
      return publicView(await ctx.store.agents.get(req.params.id));
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
    async (req, reply) => {
      const agent = await boundAgent(ctx, req, req.params.id);
      const entity = await ctx.store.entities.byId(agent.entity_id);
      const queueIds: string[] = [];
      for (const name of req.body.queues) queueIds.push((await ctx.store.queues.require(entity, name)).id);
      const hold = pollHoldMs(ctx.settings);
      const wait = Math.min(req.body.wait_ms ?? hold, hold);
      const deadline = ctx.now() + wait;
      await ctx.store.agents.touch(agent.id, ctx.now());
      // An agent polling after a silence long enough to lose runs is told at once which of its runs to stop: read
      // with the first poll state below (one statement), or here when it names more runs than that statement takes.
      const runIds = req.body.run_ids ?? [];
      let stopRuns = runIds.length > 1000 ? await ctx.store.runs.lostAmong(agent.id, runIds) : [];
      let first = runIds.length > 0 && runIds.length <= 1000;
      const abort = new AbortController();
      // The response closing before we answered means the agent hung up; the listener goes with this request
      // (a keep-alive socket serves many polls, so listening on the socket would leak a listener per poll).
      const onClose = () => {
        if (!reply.raw.writableEnded) abort.abort();
      };
      reply.raw.once('close', onClose);
      const topics = [
        `agent:${agent.id}` as const,
        ...(req.body.max_items > 0 ? queueIds.map((q) => `queue:${q}` as const) : []),
      ];
      const sub = ctx.bus.subscribe(topics, abort.signal);
      let woken = false;
      try {
        for (;;) {
          const { stop, cancel, lost } = await ctx.store.agents.pollState(agent.id, first ? runIds : []);
          if (first) stopRuns = lost;
          first = false;
          // An agent asked to stop is told at once if it can take work (it must not), or when the request wakes
          // this poll; a draining agent (max_items 0) re-polling is then held as usual instead of spinning.
          const stopNow = stop !== null && (req.body.max_items > 0 || woken);
          const claimed =
            req.body.max_items > 0 && !abort.signal.aborted && stop === null
              ? await ctx.store.dispatch.claim(agent.id, queueIds, req.body.max_items, ctx.settings.leaseMs, ctx.now())
              : [];
          if (claimed.length && abort.signal.aborted) {
            // The agent hung up while we claimed: hand the items straight back instead of waiting for the lease.
            for (const it of claimed) await ctx.store.items.release(it.id, agent.id);
            for (const q of queueIds) ctx.bus.publish(`queue:${q}`);
          }
          // A requeued item keeps its created_at (its place in line), so only first attempts measure dispatch.
          for (const it of claimed)
            if (it.preemptions === 0 && it.lost_runs === 0)
              ctx.metrics.observeDispatch((ctx.now() - it.created_at) / 1000);
          const remaining = deadline - ctx.now();
          if (claimed.length || cancel.length || stopRuns.length || stopNow || remaining <= 0 || abort.signal.aborted) {
            return {
              items: claimed.map((it) => ({
                item_id: it.id,
                queue: it.queue,
                entity: it.entity,
                priority: it.priority,
                spec: it.spec,
                lease_expires_at: it.lease_expires_at,
                queue_settings: it.queue_settings,
                attempt: it.preemptions + it.lost_runs + 1,
              })),
              cancel,
              stop,
              stop_runs: stopRuns,
            };
          }
          woken = await sub.wait(remaining);
        }
      } finally {
        sub.close();
        reply.raw.off('close', onClose);
        await ctx.store.agents.touch(agent.id, ctx.now()).catch(() => undefined);
      }
    },
  );

  /** The agent-protocol versions this server serves, for agents and tools that check before registering. */
  app.get(
    '/api/agent-protocol',
    { schema: { tags: ['agent protocol'], response: { 200: AgentProtocolInfo } } },
    async () => ({ protocol_version: AGENT_PROTOCOL_VERSION, min_agent_protocol_version: MIN_AGENT_PROTOCOL_VERSION }),
  );

  syncRoute(app, ctx);
}
