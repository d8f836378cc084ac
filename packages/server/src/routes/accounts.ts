import {
  AddMemberBody,
  BadRequestError,
  CreateKeyBody,
  CreatedKey,
  CreateTeamBody,
  CreateUserBody,
  ForbiddenError,
  Members,
} from '@liftoff/core';
import { z } from 'zod';
import { generateKey, hashKey } from '../auth.js';
import { assertAdmin, assertServerAdmin, entityFor, type App, type AppContext } from '../context.js';

/** Users, teams, memberships and keys. Every answer that creates a key shows its secret once. */
export function accountRoutes(app: App, ctx: AppContext): void {
  const a = ctx.store.accounts;

  app.post(
    '/api/users',
    { schema: { tags: ['accounts'], body: CreateUserBody, response: { 201: Members } } },
    async (req, reply) => {
      assertServerAdmin(req, 'Creating users');
      const user = await a.createUser(req.body.name, ctx.now());
      return reply.code(201).send({ entity: user.name, members: [user.name] });
    },
  );

  app.post(
    '/api/teams',
    { schema: { tags: ['accounts'], body: CreateTeamBody, response: { 201: Members } } },
    async (req, reply) => {
      assertServerAdmin(req, 'Creating teams');
      const team = await a.createTeam(req.body.name, ctx.now());
      return reply.code(201).send({ entity: team.name, members: [] });
    },
  );

  app.post(
    '/api/entities/:entity/members',
    {
      schema: {
        tags: ['accounts'],
        params: z.object({ entity: z.string() }),
        body: AddMemberBody,
        response: { 200: Members },
      },
    },
    async (req) => {
      assertAdmin(req);
      const entity = await entityFor(ctx, req, req.params.entity);
      const user = await a.requireUser(req.body.user);
      await a.addMember(entity.id, user.id, ctx.now());
      return { entity: entity.name, members: await a.members(entity.id) };
    },
  );

  /**
   * User keys (admin, member) are minted by a server admin; an entity's admin may mint agent keys for it, which
   * can pop and report for that entity only.
   */
  app.post(
    '/api/keys',
    { schema: { tags: ['accounts'], body: CreateKeyBody, response: { 201: CreatedKey } } },
    async (req, reply) => {
      const b = req.body;
      let userId: string | null = null;
      let entityId: string | null = null;
      if (b.role === 'agent') {
        if (!b.entity || b.user) throw new BadRequestError('An agent key needs --entity (and no --user).');
        assertAdmin(req);
        entityId = (await entityFor(ctx, req, b.entity)).id;
      } else {
        if (!b.user || b.entity)
          throw new BadRequestError(`An ${b.role} key belongs to a user: give --user (and no --entity).`);
        assertServerAdmin(req, 'Creating user keys');
        userId = (await a.requireUser(b.user)).id;
      }
      if (req.principal.role === 'agent') throw new ForbiddenError('Agent keys cannot mint keys.');
      const key = generateKey();
      await ctx.store.keys.create({
        name: b.name,
        role: b.role,
        entityId,
        userId,
        keyHash: hashKey(key),
        now: ctx.now(),
      });
      return reply.code(201).send({ name: b.name, role: b.role, user: b.user ?? null, entity: b.entity ?? null, key });
    },
  );
}
