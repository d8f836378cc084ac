import type { FastifyRequest } from 'fastify';
import {
  BadRequestError,
  DEFAULT_PRIORITY,
  LiftoffError,
  NotFoundError,
  PRIORITIES,
  PrioritizationDisabledError,
  PushBatchBody,
  PushBatchResponse,
  SpecTooLargeError,
  type LaunchSpec,
  type TemplateVariables,
} from '@liftoff/core';
import { z } from 'zod';
import { assertRunConfigSize } from '../bodyLimits.js';
import { entityFor, type App, type AppContext } from '../context.js';
import { assertItemResourceArgs, checkResourceArgs, mergeResourceArgs } from '../resourceArgs.js';
import type { EntityRef } from '../store/store.js';
import type { QueueRow } from '../store/queues.js';
import { fillTemplate } from '../templates.js';
import { assertSecretsExist } from './secrets.js';
import { applyJobVersion } from './jobLaunch.js';

/** Archive ids a request has already looked up, and whether each is the entity's: a batch naming one reads it once. */
export type ArchiveChecks = Map<string, Promise<boolean>>;

/**
 * One pushed item checked against its queue (resource, source, code archive of the entity, secrets, locked and
 * templated resource args, priority) and made into the spec that is stored: the single push and every item of a
 * batched push go through here, so both keep the same rules.
 */
export async function prepareItem(
  ctx: AppContext,
  req: FastifyRequest,
  entity: EntityRef,
  queue: QueueRow,
  body: z.output<typeof PushBatchBody>['items'][number],
  archiveChecks: ArchiveChecks = new Map(),
): Promise<{ spec: LaunchSpec; priority: number }> {
  return prepareItemAs(ctx, req.principal.keyName, entity, queue, body, archiveChecks);
}

/** prepareItem for a push made on a key's behalf outside its request (a sweep's trials, pushed by the server). */
export async function prepareItemAs(
  ctx: AppContext,
  author: string,
  entity: EntityRef,
  queue: QueueRow,
  body: z.output<typeof PushBatchBody>['items'][number],
  archiveChecks: ArchiveChecks = new Map(),
): Promise<{ spec: LaunchSpec; priority: number }> {
  const spec = await applyJobVersion(ctx, entity, queue.resource, body.spec);
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
    const id = spec.source.archive_id;
    let owned = archiveChecks.get(id);
    if (!owned) {
      owned = ctx.store.archives.get(id).then(
        (archive) => archive.entity_id === entity.id,
        () => false,
      );
      archiveChecks.set(id, owned);
    }
    if (!(await owned)) {
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
        body.template_variables,
      ),
      spec.resource_args,
    ),
    author,
  };
  checkResourceArgs(queue.resource, merged.resource_args);
  const priority = body.priority ? PRIORITIES[body.priority] : DEFAULT_PRIORITY;
  if (priority !== DEFAULT_PRIORITY && queue.prioritization_mode !== 'V0') {
    throw new PrioritizationDisabledError(queue.name, body.priority ?? '');
  }
  return { spec: merged, priority };
}

/** A batched push's body may hold many specs: its limit is the single push's times this, at least 8 MiB. */
const BATCH_BODY_FACTOR = 8;

/**
 * `POST /api/entities/{entity}/queues/{queue}/items/batch`: up to PUSH_BATCH_MAX items in one request, each checked
 * as a single push is (and each at most the single push's body limit), stored in one transaction: all or none. A
 * refused item fails the batch, its index named, and nothing is stored.
 */
export function pushBatchRoute(app: App, ctx: AppContext): void {
  app.post(
    '/api/entities/:entity/queues/:queue/items/batch',
    {
      bodyLimit: Math.max(ctx.settings.pushBodyBytes * BATCH_BODY_FACTOR, 8 * 1024 * 1024),
      schema: {
        tags: ['items'],
        params: z.object({ entity: z.string(), queue: z.string() }),
        body: PushBatchBody,
        response: { 201: PushBatchResponse },
      },
    },
    async (req, reply) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      const queue = await ctx.store.queues.require(entity, req.params.queue);
      const prepared: Array<{ spec: LaunchSpec; priority: number; pushed: (typeof req.body.items)[number] }> = [];
      const archiveChecks: ArchiveChecks = new Map();
      for (const [i, item] of req.body.items.entries()) {
        try {
          const bytes = Buffer.byteLength(JSON.stringify(item));
          if (bytes > ctx.settings.pushBodyBytes)
            throw new SpecTooLargeError('The item (its spec with its run config)', bytes, ctx.settings.pushBodyBytes);
          prepared.push({ ...(await prepareItem(ctx, req, entity, queue, item, archiveChecks)), pushed: item });
        } catch (e) {
          if (!(e instanceof LiftoffError)) throw e;
          // The same refusal as a single push of this item, saying which one it is; nothing of the batch is kept.
          throw new LiftoffError(e.code, `items[${i}] of ${req.body.items.length}: ${e.message} Nothing was pushed.`);
        }
      }
      const ids = await ctx.store.items.pushMany(queue.id, prepared, ctx.now());
      ctx.bus.publish(`queue:${queue.id}`);
      return reply.code(201).send({ ids });
    },
  );
}
