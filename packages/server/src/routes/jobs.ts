import { z } from 'zod';
import {
  BadRequestError,
  CreateJobVersionBody,
  CreatedJobVersion,
  ForbiddenError,
  Job,
  JobAlias,
  JobList,
  JobName,
  JobVersion,
  JobVersionList,
  SetJobAliasBody,
} from '@liftoff/core';
import { compileJobSchema } from '@liftoff/core/jobSchema';
import { assertAdmin, entityFor, roleIn, type App, type AppContext } from '../context.js';
import { Jobs } from '../store/jobs.js';

const EntityParams = z.object({ entity: z.string() });
const JobParams = EntityParams.extend({ name: JobName });

/**
 * Jobs of an entity (docs/jobs.md). Like queues: an entity outside the caller's is a 404 like an unknown one.
 * Members create versions and move aliases (as they push items); deleting a job is for the entity's admins; agent
 * keys only read.
 */
export function jobRoutes(app: App, ctx: AppContext): void {
  const jobs = new Jobs(ctx.store.db);
  const assertWriter = (req: Parameters<typeof roleIn>[0], entityId: string) => {
    if (roleIn(req, entityId) === 'agent') throw new ForbiddenError('Agent keys cannot change jobs; use a user key.');
  };

  app.get(
    '/api/entities/:entity/jobs',
    { schema: { tags: ['jobs'], params: EntityParams, response: { 200: JobList } } },
    async (req) => ({ jobs: await jobs.list(await entityFor(ctx, req, req.params.entity)) }),
  );

  app.post(
    '/api/entities/:entity/jobs/:name/versions',
    {
      schema: {
        tags: ['jobs'],
        params: JobParams,
        body: CreateJobVersionBody,
        response: { 200: CreatedJobVersion, 201: CreatedJobVersion },
      },
    },
    async (req, reply) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertWriter(req, entity.id);
      if (req.body.aliases.includes('latest'))
        throw new BadRequestError('"latest" always names the newest version; it cannot be given as an alias.');
      // The schema is checked as a JSON Schema now, so a launch never meets a broken one.
      if (req.body.schema) compileJobSchema(req.body.schema);
      const { version, created } = await jobs.createVersion(
        entity,
        req.params.name,
        req.body,
        req.principal.keyName,
        ctx.now(),
      );
      return reply.code(created ? 201 : 200).send({ ...version, created });
    },
  );

  app.get(
    '/api/entities/:entity/jobs/:name',
    { schema: { tags: ['jobs'], params: JobParams, response: { 200: Job } } },
    async (req) => jobs.get(await entityFor(ctx, req, req.params.entity), req.params.name),
  );

  app.get(
    '/api/entities/:entity/jobs/:name/versions',
    { schema: { tags: ['jobs'], params: JobParams, response: { 200: JobVersionList } } },
    async (req) => ({ versions: await jobs.versions(await entityFor(ctx, req, req.params.entity), req.params.name) }),
  );

  app.get(
    '/api/entities/:entity/jobs/:name/versions/:ref',
    {
      schema: {
        tags: ['jobs'],
        params: JobParams.extend({ ref: z.string().max(64) }),
        response: { 200: JobVersion },
      },
    },
    async (req) => jobs.resolve(await entityFor(ctx, req, req.params.entity), req.params.name, req.params.ref),
  );

  app.put(
    '/api/entities/:entity/jobs/:name/aliases/:alias',
    {
      schema: {
        tags: ['jobs'],
        params: JobParams.extend({ alias: JobAlias }),
        body: SetJobAliasBody,
        response: { 200: JobVersion },
      },
    },
    async (req) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertWriter(req, entity.id);
      if (req.params.alias === 'latest')
        throw new BadRequestError('"latest" always names the newest version; it cannot be moved by hand.');
      return jobs.setAlias(entity, req.params.name, req.params.alias, req.body.version);
    },
  );

  app.delete(
    '/api/entities/:entity/jobs/:name',
    { schema: { tags: ['jobs'], params: JobParams } },
    async (req, reply) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, entity.id);
      await jobs.delete(entity, req.params.name);
      return reply.code(204).send();
    },
  );
}
