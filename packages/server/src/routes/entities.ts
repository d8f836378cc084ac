import { z } from 'zod';
import { CreateEntityBody, Entity, UpdateEntityBody } from '@liftoff/core';
import { assertAdmin, assertServerAdmin, entityFor, type App, type AppContext } from '../context.js';

const EntityParams = z.object({ entity: z.string() });

export function entityRoutes(app: App, ctx: AppContext): void {
  const view = async (id: string, name: string) => ({ name, max_concurrency: await ctx.store.entities.limit(id) });

  app.post(
    '/api/entities',
    { schema: { tags: ['entities'], body: CreateEntityBody, response: { 201: Entity } } },
    async (req, reply) => {
      // Creating entities is for server-wide admins; an admin of one entity administers only that one.
      assertServerAdmin(req, 'Creating entities');
      const e = await ctx.store.entities.create(req.body.name, req.body.max_concurrency, ctx.now());
      return reply.code(201).send(await view(e.id, e.name));
    },
  );

  app.get(
    '/api/entities/:entity',
    { schema: { tags: ['entities'], params: EntityParams, response: { 200: Entity } } },
    async (req) => {
      const e = await entityFor(ctx, req, req.params.entity);
      return view(e.id, e.name);
    },
  );

  app.patch(
    '/api/entities/:entity',
    { schema: { tags: ['entities'], params: EntityParams, body: UpdateEntityBody, response: { 200: Entity } } },
    async (req) => {
      const e = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, e.id);
      if (req.body.max_concurrency !== undefined) {
        await ctx.store.entities.setLimit(e.id, req.body.max_concurrency);
        for (const q of await ctx.store.queues.list(e)) ctx.bus.publish(`queue:${q.id}`);
      }
      return view(e.id, e.name);
    },
  );
}
