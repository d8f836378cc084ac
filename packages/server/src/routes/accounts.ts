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
import { keyRoutes } from './keys.js';

const EntityParams = z.object({ entity: z.string() });

/** Users, teams, memberships and keys. Every answer that creates a key shows its secret once. */
export function accountRoutes(app: App, ctx: AppContext): void {
  const a = ctx.store.accounts;
  const membersOf = async (entity: { id: string; name: string }) => {
    const roles = await a.memberRoles(entity.id);
    return { entity: entity.name, members: Object.keys(roles), roles };
  };

  app.post(
    '/api/users',
    { schema: { tags: ['accounts'], body: CreateUserBody, response: { 201: Members } } },
    async (req, reply) => {
      assertServerAdmin(req, 'Creating users');
      const user = await a.createUser(req.body.name, ctx.now());
      return reply.code(201).send({ entity: user.name, members: [user.name], roles: { [user.name]: 'admin' } });
    },
  );

  app.post(
    '/api/teams',
    { schema: { tags: ['accounts'], body: CreateTeamBody, response: { 201: Members } } },
    async (req, reply) => {
      assertServerAdmin(req, 'Creating teams');
      const team = await a.createTeam(req.body.name, ctx.now());
      return reply.code(201).send({ entity: team.name, members: [], roles: {} });
    },
  );

  app.get(
    '/api/entities/:entity/members',
    { schema: { tags: ['accounts'], params: EntityParams, response: { 200: Members } } },
    async (req) => membersOf(await entityFor(ctx, req, req.params.entity)),
  );

  /** Adds a member or changes a member's role (admin of the entity; see AddMemberBody for the default role). */
  app.post(
    '/api/entities/:entity/members',
    { schema: { tags: ['accounts'], params: EntityParams, body: AddMemberBody, response: { 200: Members } } },
    async (req) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, entity.id);
      const user = await a.requireUser(req.body.user);
      await a.addMember(entity.id, user.id, req.body.role, ctx.now());
      return membersOf(entity);
    },
  );

  app.delete(
    '/api/entities/:entity/members/:user',
    {
      schema: {
        tags: ['accounts'],
        params: EntityParams.extend({ user: z.string() }),
        response: { 200: Members },
      },
    },
    async (req) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, entity.id);
      const user = await a.requireUser(req.params.user);
      await a.removeMember(entity.id, user.id, user.name);
      return membersOf(entity);
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
      if (req.principal.role === 'agent') throw new ForbiddenError('Agent keys cannot mint keys.');
      let userId: string | null = null;
      let entityId: string | null = null;
      if (b.role === 'agent') {
        if (!b.entity || b.user) throw new BadRequestError('An agent key needs --entity (and no --user).');
        entityId = (await entityFor(ctx, req, b.entity)).id;
        assertAdmin(req, entityId);
      } else {
        if (!b.user || b.entity)
          throw new BadRequestError(`An ${b.role} key belongs to a user: give --user (and no --entity).`);
        assertServerAdmin(req, 'Creating user keys');
        userId = (await a.requireUser(b.user)).id;
      }
      if (b.expires_at !== undefined && b.expires_at <= ctx.now())
        throw new BadRequestError('expires_at is in the past; give a time to come (e.g. --expires-in 30d).');
      const key = generateKey();
      const id = await ctx.store.keys.create({
        name: b.name,
        role: b.role,
        entityId,
        userId,
        keyHash: hashKey(key),
        now: ctx.now(),
        expiresAt: b.expires_at ?? null,
      });
      return reply.code(201).send({
        id,
        name: b.name,
        role: b.role,
        user: b.user ?? null,
        entity: b.entity ?? null,
        key,
        expires_at: b.expires_at ?? null,
      });
    },
  );

  keyRoutes(app, ctx);
}
