import { z } from 'zod';
import {
  BadRequestError,
  CreateQueueBody,
  DEFAULT_PRIORITY,
  ITEM_STATES,
  Item,
  ItemSummary,
  ListQuery,
  NotFoundError,
  PRIORITIES,
  PrioritizationDisabledError,
  PushBody,
  Queue,
  UpdateQueueBody,
  type LaunchSpec,
  type TemplateVariables,
} from '@liftoff/core';
import { assertItemResourceArgs, checkQueueDefaults, checkResourceArgs, mergeResourceArgs } from '../resourceArgs.js';
import { assertValidTemplate, fillTemplate } from '../templates.js';
import { assertRunConfigSize } from '../bodyLimits.js';
import { assertAdmin, entityFor, type App, type AppContext } from '../context.js';
import { assertSecretsExist } from './secrets.js';

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
    { schema: { tags: ['queues'], params: EntityParams, body: CreateQueueBody, response: { 201: Queue } } },
    async (req, reply) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, entity.id);
      const unknown = Object.keys(req.body.resource_args).filter((k) => k !== req.body.resource);
      if (unknown.length) {
        throw new BadRequestError(
          `resource_args may only hold a "${req.body.resource}" section for a ${req.body.resource} queue; found ${unknown.map((k) => `"${k}"`).join(', ')}.`,
        );
      }
      assertValidTemplate(req.body.resource_args, req.body.template_variables);
      checkQueueDefaults(req.body.resource, req.body.resource_args);
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
        querystring: ListQuery.extend({ state: z.enum(ITEM_STATES).optional() }),
        response: { 200: z.object({ items: z.array(ItemSummary) }) },
      },
    },
    async (req) => {
      const q = await ctx.store.queues.require(await entityFor(ctx, req, req.params.entity), req.params.queue);
      return { items: await ctx.store.items.list(q.id, { state: req.query.state, limit: req.query.limit }) };
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
      const { spec } = req.body;
      assertRunConfigSize(spec, ctx.settings);
      if (spec.resource && spec.resource !== queue.resource) {
        throw new BadRequestError(
          `Queue "${queue.name}" runs ${queue.resource} jobs; the spec asks for ${spec.resource}. Push to a ${spec.resource} queue or drop --resource.`,
        );
      }
      if (spec.source.type === 'image' && queue.resource === 'local-process') {
        throw new BadRequestError(
          `Queue "${queue.name}" runs local processes; an image job needs a container queue (e.g. local-container).`,
        );
      }
      if (spec.source.type === 'code') {
        const archive = await ctx.store.archives.get(spec.source.archive_id).catch(() => undefined);
        if (!archive || archive.entity_id !== entity.id) {
          throw new NotFoundError(
            `Code archive "${spec.source.archive_id}" not found; upload it with "liftoff launch --code DIR".`,
          );
        }
      }
      await assertSecretsExist(ctx, entity, spec);
      const queueArgs = JSON.parse(queue.resource_args) as LaunchSpec['resource_args'];
      assertItemResourceArgs(
        {
          name: queue.name,
          resource: queue.resource,
          resourceArgs: queueArgs,
          lockedKeys: JSON.parse(queue.locked_keys) as string[],
        },
        spec.resource_args,
      );
      const merged: LaunchSpec = {
        ...spec,
        resource: queue.resource as LaunchSpec['resource'],
        resource_args: mergeResourceArgs(
          fillTemplate(
            queue.name,
            queueArgs,
            JSON.parse(queue.template_variables) as TemplateVariables,
            req.body.template_variables,
          ),
          spec.resource_args,
        ),
        author: req.principal.keyName,
      };
      checkResourceArgs(queue.resource, merged.resource_args);
      const priority = req.body.priority ? PRIORITIES[req.body.priority] : DEFAULT_PRIORITY;
      if (priority !== DEFAULT_PRIORITY && queue.prioritization_mode !== 'V0') {
        throw new PrioritizationDisabledError(queue.name, req.body.priority ?? '');
      }
      const id = await ctx.store.items.push(queue.id, merged, priority, ctx.now());
      ctx.bus.publish(`queue:${queue.id}`);
      return reply.code(201).send(await ctx.store.items.get(id, ctx.now(), { explain: false }));
    },
  );
}
