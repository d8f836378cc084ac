import { z } from 'zod';
import type { FastifyRequest } from 'fastify';
import { AgentRef, Item, Run } from '@liftoff/core';
import { assertAccess, type App, type AppContext } from '../context.js';
import { boundAgent } from './agentAuth.js';

const IdParams = z.object({ id: z.string() });

export function itemRoutes(app: App, ctx: AppContext): void {
  app.get('/api/items/:id', { schema: { tags: ['items'], params: IdParams, response: { 200: Item } } }, async (req) => {
    const item = await ctx.store.items.get(req.params.id);
    assertAccess(req, item.entity_id, `Item "${req.params.id}"`);
    return item;
  });

  app.post(
    '/api/items/:id/cancel',
    { schema: { tags: ['items'], params: IdParams, response: { 200: Item } } },
    async (req) => {
      const item = await ctx.store.items.get(req.params.id);
      assertAccess(req, item.entity_id, `Item "${req.params.id}"`);
      const { notifyAgent } = await ctx.store.items.cancel(item.id, ctx.now());
      if (notifyAgent) ctx.bus.publish(`agent:${notifyAgent}`);
      if (item.run_id) ctx.bus.publish(`run:${item.run_id}`);
      ctx.bus.publish('sweeps:ended');
      // A cancelled claim frees its concurrency slot at once.
      if (item.state === 'claimed')
        for (const q of await ctx.store.queues.sharingLimits(item.queue_id)) ctx.bus.publish(`queue:${q}`);
      return ctx.store.items.get(item.id);
    },
  );

  app.post(
    '/api/items/:id/ack',
    { schema: { tags: ['agent protocol'], params: IdParams, body: AgentRef, response: { 200: Run } } },
    async (req) => {
      await agentOnItem(ctx, req, req.params.id, req.body.agent_id);
      return ctx.store.dispatch.ack(req.params.id, req.body.agent_id, ctx.now());
    },
  );

  app.post(
    '/api/items/:id/release',
    { schema: { tags: ['agent protocol'], params: IdParams, body: AgentRef, response: { 200: Item } } },
    async (req) => {
      await agentOnItem(ctx, req, req.params.id, req.body.agent_id);
      const queueId = await ctx.store.items.release(req.params.id, req.body.agent_id);
      ctx.bus.publish(`queue:${queueId}`);
      return ctx.store.items.get(req.params.id);
    },
  );
}

/**
 * The caller speaks for `agentId` (its key is the one the agent is bound to) about an item of its entities: a
 * foreign item is a 404 like an unknown one. Whether the agent holds the item is the store's check (409).
 */
async function agentOnItem(ctx: AppContext, req: FastifyRequest, itemId: string, agentId: string): Promise<void> {
  await boundAgent(ctx, req, agentId);
  const item = await ctx.store.items.get(itemId, ctx.now(), { explain: false });
  assertAccess(req, item.entity_id, `Item "${itemId}"`);
}
