import { z } from 'zod';
import {
  CreateQueueBody,
  Item,
  ItemListQuery,
  ItemListResponse,
  PushBody,
  Queue,
  UpdateQueueBody,
} from '@liftoff/core';
import { assertQueueConfig, queueConfigProblems, schemaProblems } from '../queueConfig.js';
import { assertAdmin, entityFor, type App, type AppContext } from '../context.js';
import { prepareItem, pushBatchRoute } from './push.js';
import { toItem } from '../store/items.js';

const EntityParams = z.object({ entity: z.string() });
const QueueParams = EntityParams.extend({ queue: z.string() });

export function queueRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/entities/:entity/queues',
    { schema: { tags: ['queues'], params: EntityParams, response: { 200: z.object({ queues: z.array(Queue) }) } } },
    async (req) => ({ queues: await ctx.store.queues.list(await entityFor(ctx, req, req.params.entity)) }),
  );

  app.post(
    '/api/entities/:entity/queues',
    {
      schema: { tags: ['queues'], params: EntityParams, body: CreateQueueBody, response: { 201: Queue } },
      // The handler lists the body's schema issues with the config's own problems (assertQueueConfig).
      attachValidation: true,
    },
    async (req, reply) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, entity.id);
      // Schema issues and config checks together: every problem in one answer (queueConfig.ts).
      const schema = req.validationError ? schemaProblems(req.validationError) : [];
      assertQueueConfig([...schema, ...queueConfigProblems(req.body)]);
      const q = await ctx.store.queues.create(entity, req.body, ctx.now());
      return reply.code(201).send(q);
    },
  );

  app.get(
    '/api/entities/:entity/queues/:queue',
    { schema: { tags: ['queues'], params: QueueParams, response: { 200: Queue } } },
    async (req) => ctx.store.queues.get(await entityFor(ctx, req, req.params.entity), req.params.queue),
  );

  app.patch(
    '/api/entities/:entity/queues/:queue',
    { schema: { tags: ['queues'], params: QueueParams, body: UpdateQueueBody, response: { 200: Queue } } },
    async (req) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, entity.id);
      const q = await ctx.store.queues.update(entity, req.params.queue, req.body);
      // A raised limit or a new order may let waiting agents claim now.
      ctx.bus.publish(`queue:${q.id}`);
      return q;
    },
  );

  app.delete(
    '/api/entities/:entity/queues/:queue',
    { schema: { tags: ['queues'], params: QueueParams, response: { 204: z.null() } } },
    async (req, reply) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, entity.id);
      await ctx.store.queues.delete(entity, req.params.queue, ctx.now());
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/api/entities/:entity/queues/:queue/items',
    {
      schema: {
        tags: ['items'],
        params: QueueParams,
        querystring: ItemListQuery,
        response: { 200: ItemListResponse },
      },
    },
    async (req) => {
      const q = await ctx.store.queues.require(await entityFor(ctx, req, req.params.entity), req.params.queue);
      return ctx.store.items.list(q.id, req.query, ctx.now());
    },
  );

  app.post(
    '/api/entities/:entity/queues/:queue/items',
    {
      bodyLimit: ctx.settings.pushBodyBytes,
      schema: { tags: ['items'], params: QueueParams, body: PushBody, response: { 201: Item } },
    },
    async (req, reply) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      const queue = await ctx.store.queues.require(entity, req.params.queue);
      const { spec: merged, priority } = await prepareItem(ctx, req, entity, queue, req.body);
      const row = await ctx.store.items.push(queue.id, merged, priority, ctx.now(), req.body);
      ctx.bus.publish(`queue:${queue.id}`);
      // Built from the stored row: a new item has no position to explain yet (as `items.get` with explain off).
      return reply
        .code(201)
        .send(toItem({ ...row, queue_name: queue.name, entity_name: entity.name, entity_id: entity.id }, null));
    },
  );

  pushBatchRoute(app, ctx);
}
